# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recycling workers after a code deploy, through supervisord's API: ask each program to exit after its
current work (its kind's restart command, or a stop and start), then wait until every process runs under
a new pid, and tell the others apart from the host: busy with a job, idle, stopped, FATAL or gone.

Used by the module elms.queue_workers.queue_workers_recycle (restart.yml).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import os
import re
import time

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc

POLL = 1.0


def connect(config_file):
    try:
        return rpc.connect(config_file)
    except layout.LayoutError as exc:
        raise rpc.RPCError(None, str(exc))


def pids_by_group(client, names):
    found = dict((name, {}) for name in names)
    for info in client.processes():
        if info["group"] in found:
            found[info["group"]]["%s:%s" % (info["group"], info["name"])] = info.get("pid") or None
    return found


def log_tail(client, process, lines=15):
    try:
        text = client.log_tail(process, 4000)
    except rpc.RPCError:
        return []
    return text.splitlines()[-lines:]


# A worker that still runs under its old pid after queue:restart is either busy with a job
# (it checks the signal only between jobs, and recycles after this one) or idle without
# having seen the signal (it polls the cache every --sleep seconds: a worker that reads
# another cache store than the CLI that wrote the signal never sees it). Which one is read
# from the host, never assumed:
# - the worker's children: a job that runs a tool (an encode runs ffmpeg) has a child
#   process; an idle queue:work is one process with no child. Certain, but only for such jobs.
# - the worker's log: queue:work writes a line when it takes a job and one when the job
#   ends (Laravel 8: "[time][id] Processing: Class" then "Processed:"/"Failed:"; Laravel 9+:
#   "time Class ... RUNNING" then "... DONE"/"FAIL"). A job whose start line has no end line
#   is running; its start time gives its age. Several processes of one program may write
#   one log file, so a running job is given to a process only when it started after the
#   process did and before the restart signal (a worker that saw the signal takes no job
#   after it), the latest-started process first.
# CPU time is not used: an idle worker burns some on every poll, a job waiting on the
# network burns none.
JOB_LINE_LARAVEL8 = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]\[([^\]]*)\] (Processing|Processed|Failed):\s+(\S.*?)\s*$")
JOB_LINE_LARAVEL9 = re.compile(r"^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S.*?)\s+(RUNNING|DONE|FAIL)\s*$")
JOB_LOG_BYTES = 65536
# Seconds past the wait given to a process that is between two states (a recycled worker
# STARTING for its startsecs, BACKOFF) before it counts as not running.
SETTLE = 30
SETTLING = ("STARTING", "BACKOFF", "STOPPING", "EXITED", "UNKNOWN")


def running_jobs(text, utc_offset):
    """Jobs a worker log shows as started and not ended, oldest first: [(job, started_epoch)].

    utc_offset: seconds east of UTC of the log's timestamps (the app's timezone).
    """
    running = []
    for line in text.splitlines():
        match = JOB_LINE_LARAVEL8.match(line)
        if match:
            stamp, key, status, job = match.groups()
            key, starts = key or job, status == "Processing"
        else:
            match = JOB_LINE_LARAVEL9.match(line)
            if not match:
                continue
            stamp, job, status = match.groups()
            # "Class [id] ........ 1.5s": drop the dots and the run time.
            job = re.sub(r"(\s+[\d.,]+(?:ms|s|m|h))+$", "", re.sub(r"\s+\.+(\s.*)?$", "", job))
            key, starts = job, status == "RUNNING"
            job = job.split()[0]
        try:
            started = calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) - utc_offset
        except ValueError:
            continue
        if starts:
            running.append((key, job, started))
        else:
            ended = [entry for entry in running if entry[0] == key][:1]
            if ended:
                running.remove(ended[0])
    return [(job, started) for _key, job, started in running]


def process_table():
    """{pid: (ppid, cmdline)} of every process on the host, from /proc (readable by anyone)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().decode("utf-8", "replace").split("\0")
        except (IOError, OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (ppid, cmdline)
    return table


def worker_process(pid, table):
    """(pid of the queue:work process, its children). supervisord's pid is the worker itself
    (nice and ionice exec it); a wrapper that does not exec is looked through."""
    for _level in range(3):
        children = [p for p, (ppid, _c) in table.items() if ppid == pid]
        if "queue:work" in " ".join(table.get(pid, (0, []))[1]) or len(children) != 1:
            return pid, children
        pid = children[0]
    return pid, [p for p, (ppid, _c) in table.items() if ppid == pid]


def worker_sleep(cmdline):
    """queue:work's --sleep (how often an idle worker looks at the queue and the signal)."""
    for index, arg in enumerate(cmdline):
        value = arg[len("--sleep="):] if arg.startswith("--sleep=") else None
        if arg == "--sleep" and index + 1 < len(cmdline):
            value = cmdline[index + 1]
        if value is not None:
            try:
                return float(value)
            except ValueError:
                break
    return 3.0


def recycle_survey(client, before, signalled_at, utc_offset):
    """Where each process of before ({process: pid before}) stands now, and for a process
    still under its old pid, whether it is busy with a job or idle (see above).

    Returns (report, sleeps): report as RV(recycled); sleeps, each idle or busy process's --sleep.
    """
    now = time.time()
    current = dict(("%s:%s" % (i["group"], i["name"]), i) for i in client.processes())
    table = None
    report, unrecycled, sleeps = {}, {}, {}
    for name, pid in before.items():
        info = current.get(name)
        entry = dict(state="gone", pid_before=pid, pid_after=None, job=None, job_age_seconds=None)
        report[name] = entry
        if info is None:
            continue
        entry["pid_after"] = info.get("pid") or None
        if info["statename"] != "RUNNING":
            entry["state"] = info["statename"]
        elif entry["pid_after"] != pid:
            entry["state"] = "recycled"
        else:
            # Processes that write one log file (numprocs > 1 with one stdout_logfile) share its job lines.
            log_file = info.get("stdout_logfile") or name
            unrecycled.setdefault(log_file, []).append((info.get("start") or 0, name))
    for processes in unrecycled.values():
        if table is None:
            table = process_table()
        try:
            log = client.log_tail(processes[0][1], JOB_LOG_BYTES)
        except rpc.RPCError:
            log = ""
        jobs = [job for job in running_jobs(log, utc_offset) if job[1] <= signalled_at + 1]
        for start, name in sorted(processes, reverse=True):
            entry = report[name]
            mine = [job for job in jobs if job[1] >= start - 1][:1]
            if mine:
                jobs.remove(mine[0])
                entry["job"] = mine[0][0]
                entry["job_age_seconds"] = max(0, int(now - mine[0][1]))
            worker, children = worker_process(entry["pid_before"], table)
            entry["state"] = "busy" if mine or children else "idle"
            sleeps[name] = worker_sleep(table.get(worker, (0, []))[1])
    return report, sleeps


def wait_recycled(module, client, before, timeout, signalled_at=None, utc_offset=0):
    """Wait until every process of before runs under a new pid; returns recycle_survey's report.

    Stops early when a process is down for good (STOPPED, FATAL, gone) or idle for good, and
    nothing else is still starting: waiting would change nothing. An idle worker is idle for
    good once it stayed idle for twice its --sleep and 10 s more: time to wake up, see the
    signal and exit, also on a host too busy to run it at once.
    """
    signalled_at = time.time() if signalled_at is None else signalled_at
    deadline = time.time() + timeout
    idle_since = {}
    while True:
        report, sleeps = recycle_survey(client, before, signalled_at, utc_offset)
        now = time.time()
        unsure, settle = [], SETTLE
        for name, entry in report.items():
            grace = 2 * sleeps.get(name, 3.0) + 10
            settle = max(settle, grace)
            if entry["state"] != "idle":
                idle_since.pop(name, None)
            elif now - idle_since.setdefault(name, now) < grace:
                unsure.append(name)
        states = set(entry["state"] for entry in report.values())
        if states <= set(["recycled"]):
            return report
        settling = unsure + [n for n, e in report.items() if e["state"] in SETTLING]
        if not settling and states - set(["recycled", "busy"]):
            return report
        if now > deadline and (not settling or now > deadline + settle):
            return report
        time.sleep(POLL)


def recycle_problem(client, name, entry):
    """Why a process did not recycle, and what to do."""
    if entry["state"] == "idle":
        return ("%s is idle under its old pid %s: it never saw the restart signal (queue:restart writes it to the "
                "app's cache store, and this worker reads another one: a CACHE_DRIVER or cache config of its own, or a "
                "store that is not shared); give it the app's cache store" % (name, entry["pid_before"]))
    if entry["state"] == "gone":
        return "%s is gone: supervisord no longer has it" % name
    if entry["state"] == "STOPPED":
        return "%s is STOPPED (stopped by hand): start it, or run the site playbook" % name
    log = " | ".join(log_tail(client, name, 3))
    return "%s is %s, not RUNNING%s" % (name, entry["state"], (" (its log: %s)" % log) if log else "")


def describe_busy(name, entry):
    job = entry["job"] or "a job (a child process runs; the log does not name it)"
    age = " running for %d s" % entry["job_age_seconds"] if entry["job_age_seconds"] is not None else ""
    return "%s (pid %s) busy with %s%s" % (name, entry["pid_before"], job, age)


def recycle(module, client, params, before, result):
    """Run each recycle item's command (or stop and start its programs), then wait for them all."""
    items = params["recycle"]
    wanted = dict((p["name"], p) for p in params["programs"])
    started = [n for item in items for n in item["programs"] if n in wanted and wanted[n]["state"] == "started"]
    unknown = sorted(set(n for item in items for n in item["programs"]) - set(wanted))
    if unknown:
        module.fail_json(msg="recycle names programs that are not in programs: %s" % ", ".join(unknown), **result)
    old = dict((process, pid) for name in started for process, pid in before.get(name, {}).items())
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": before.get(n, {})}) for n in started)
    if module.check_mode:
        result["changed"] = True
        result["report"] = ["%d worker process(es) would be asked to recycle after their current work." % len(old)]
        module.exit_json(**result)
    signalled_at = time.time()
    commands = []
    for item in items:
        mine = [n for n in item["programs"] if n in started]
        if not mine:
            continue
        if item.get("command"):
            commands.append(" ".join(item["command"]))
            rc, out, err = module.run_command(item["command"], cwd=item.get("chdir"))
            if rc != 0:
                module.fail_json(msg="'%s' failed (%d): %s" % (" ".join(item["command"]), rc, (err or out).strip()),
                                 **result)
            continue
        commands.append("a stop and start of %s%s" % (", ".join(mine), " (app %s)" % item["app"] if item.get("app") else ""))
        try:
            for name in mine:
                # Waits for each process to stop, as supervisorctl restart does (up to its stopwaitsecs).
                client.stop_group(name)
                client.start_group(name, wait=False)
        except rpc.RPCError as exc:
            module.fail_json(msg="supervisord refused to restart %s: %s" % (", ".join(mine), exc.message), **result)
    result["changed"] = True
    result["recycled"] = wait_recycled(module, client, old, params["wait_timeout"], signalled_at,
                                       params["log_utc_offset"])
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, started).items())
    down = sorted((p, e) for p, e in result["recycled"].items() if e["state"] not in ("recycled", "busy"))
    busy = sorted((p, e) for p, e in result["recycled"].items() if e["state"] == "busy")
    problems = []
    if down:
        problems.append("Did not recycle, and will not by themselves: %s." % "; ".join(
            recycle_problem(client, p, e) for p, e in down))
    if busy and params["require_all"]:
        problems.append(
            "Still busy with a job after %d s (each recycles when its job ends): %s. Wait longer (wait_timeout; "
            "queue_workers_restart_wait in restart.yml), or accept workers that recycle after their job "
            "(require_all: false; queue_workers_restart_require_all)." % (
                params["wait_timeout"], "; ".join(describe_busy(p, e) for p, e in busy)))
    if problems:
        module.fail_json(msg="'%s' ran, but not every worker process recycled. %s" % (
            "', '".join(commands), " ".join(problems)), **result)
    result["report"] = report_lines(result["recycled"], params["wait_timeout"])
    module.exit_json(**result)


def report_lines(recycled, wait):
    """What the restart says: how many processes run the new code, and a line per one still busy with a job."""
    busy = sorted((name, entry) for name, entry in recycled.items() if entry["state"] == "busy")
    if not busy:
        return ["All %d worker processes run the new code (each recycled after its job)." % len(recycled)]
    return ["%d of %d worker processes run the new code; still busy with a job after %s s (each recycles when its job "
            "ends):" % (len(recycled) - len(busy), len(recycled), wait)] + [describe_busy(n, e) for n, e in busy]
