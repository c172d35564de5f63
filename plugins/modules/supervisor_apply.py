#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_apply
short_description: Apply supervisor program changes group by group, wait for RUNNING, and roll back what fails
version_added: "0.1.0"
description:
  - The handler of M(elms.queue_workers.supervisor_programs). Through supervisord's XML-RPC interface (what
    C(supervisorctl) itself uses), and only for the programs in O(programs), it does what C(reread) and
    C(update) do - added groups are added, changed groups are stopped (each running job finishes within the
    program's C(stopwaitsecs)) and added again with their new config, removed groups are stopped and removed.
    Every other group, and supervisord itself, is left alone; supervisord is never restarted or reloaded.
  - A supervisord that does not answer is started through its service (O(service)), never restarted.
  - Processes of a C(started) program that are C(STOPPED), C(EXITED) or C(FATAL) are started; a C(stopped)
    program's processes are stopped. Orphans of these programs (processes no supervisord manages, left by a
    supervisord that died) are sent SIGTERM, so that a running job finishes, and their process group is killed
    only after the program's C(stopwaitsecs).
  - Then it waits (at most O(wait_timeout) seconds) until every process of the C(started) programs is RUNNING.
  - When supervisor refuses the config because of a file in O(rollback), every file in O(rollback) is put back
    as it was and nothing is applied. When a changed program does not reach RUNNING, its previous version (and
    any file removed in the same run) is put back and applied, and the module waits for the old version to run
    again, then fails naming the program, the reason (its log's last lines) and that the previous version runs.
    A new program has no previous version; it is stopped and reported.
  - Returns the process ids before and after, per program.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  config_file:
    description: The supervisord config (see RV(elms.queue_workers.supervisor_programs#module:supervisor)).
    type: path
    required: true
  service:
    description: The service that runs supervisord, started when supervisord does not answer.
    type: str
  programs:
    description: The programs to apply, as returned by M(elms.queue_workers.supervisor_programs) in RV(elms.queue_workers.supervisor_programs#module:apply).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Program (group) name.
        type: str
        required: true
      state:
        description: Desired state.
        type: str
        choices: [started, stopped, absent]
        default: started
      stopwaitsecs:
        description: Longest time an orphan of this program may take to stop after SIGTERM.
        type: int
        default: 10
      action:
        description: What the write step did (C(added), C(changed), C(removed), ...); decides what a failure rolls back.
        type: str
        default: pending
  rollback:
    description: Files written or removed for these programs, with their kept previous version (null when new).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The program file.
        type: path
        required: true
      backup:
        description: The kept previous version, or null.
        type: path
      new:
        description: Whether the file did not exist before.
        type: bool
        default: false
      name:
        description: The program the file defines.
        type: str
      mode:
        description: The file's mode before the write step (kept copies are private); null means C(0644).
        type: str
  wait_timeout:
    description: Seconds to wait for the processes of started programs to be RUNNING.
    type: int
    default: 60
  stop_orphans:
    description: Stop orphaned processes of these programs.
    type: bool
    default: true
  recycle_command:
    description:
      - Instead of applying, run this command (argv), which asks the programs to exit when their current work is done
        (C(artisan queue:restart)), and wait (at most O(wait_timeout) seconds) until every process of the C(started)
        programs in O(programs) runs under a new pid.
      - A process still under its old pid is told apart from the host, never assumed. It is C(busy) when it has a
        child process (an encode runs ffmpeg) or its log shows a job that started and did not end (Laravel's
        C(Processing)/C(Processed)/C(Failed) lines, C(RUNNING)/C(DONE)/C(FAIL) from Laravel 9); the log also gives the
        job's class and age. Otherwise it is C(idle) - it had its C(--sleep) and 5 s more to see the signal and did not,
        so it reads another cache store than the one the signal was written to.
      - The module fails naming every process that is C(idle), C(STOPPED), C(FATAL) or gone, and why; it stops waiting
        as soon as one is, when nothing else is still starting. Busy processes fail it only with O(recycle_require_all).
        A process STARTING when the wait ends is given up to 30 s more.
    type: list
    elements: str
  recycle_chdir:
    description: The directory O(recycle_command) runs in.
    type: path
  recycle:
    description:
      - Several ways of recycling in one call (several apps, several kinds), each for its own programs. An item with a
        C(command) runs it as O(recycle_command) does; an item without one has its programs stopped (each waits for its
        job up to its C(stopwaitsecs), as supervisor does) and started again through supervisord. Then every process of
        every item is waited for and told apart as with O(recycle_command).
      - Mutually exclusive with O(recycle_command).
    type: list
    elements: dict
    suboptions:
      command:
        description: The argv that asks these programs to exit after their current work; null stops and starts them.
        type: list
        elements: str
      chdir:
        description: The directory C(command) runs in.
        type: path
      programs:
        description: The programs (of O(programs)) this item recycles.
        type: list
        elements: str
        required: true
      app:
        description: Whose programs these are (for messages).
        type: str
  recycle_require_all:
    description:
      - With O(recycle_command), fail when a process is still busy with a job at the end of the wait, naming it with its
        job and the job's age (a rollout gates on that). False reports it in RV(recycled) and succeeds (it recycles
        when its job ends).
    type: bool
    default: false
  recycle_log_utc_offset:
    description:
      - Seconds east of UTC of the timestamps in the workers' logs (the app's C(app.timezone), or its
        C(queue.output_timezone)), to tell a job's age from its start line.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: Reports what supervisord would be asked to do (from C(reloadConfig), which applies nothing).
  diff_mode:
    support: none
    description: M(elms.queue_workers.supervisor_programs) shows the file changes.
seealso:
  - module: elms.queue_workers.supervisor_programs
"""

EXAMPLES = r"""
# A handler, notified by elms.queue_workers.supervisor_programs registered as programs_result:
- name: Apply program changes
  elms.queue_workers.supervisor_apply:
    config_file: "{{ programs_result.supervisor.config_file }}"
    service: "{{ programs_result.supervisor.service_name | default(omit, true) }}"
    programs: "{{ programs_result.apply }}"
    rollback: "{{ programs_result.rollback }}"
    wait_timeout: 60

- name: Recycle the workers gracefully after a code deploy, and wait until each runs under a new pid
  elms.queue_workers.supervisor_apply:
    config_file: /etc/supervisor/supervisord.conf
    programs: [{name: elms-default-worker}, {name: elms-video-worker}]
    recycle_command: [runuser, -u, www-data, --, /usr/bin/php, artisan, queue:restart]
    recycle_chdir: /var/www/html
    wait_timeout: 120
"""

RETURN = r"""
supervisord_started:
  description: Whether supervisord did not answer and was started through its service.
  returned: always
  type: bool
added:
  description: Groups added.
  returned: always
  type: list
  elements: str
updated:
  description: Groups stopped and added again with their new config.
  returned: always
  type: list
  elements: str
removed:
  description: Groups stopped and removed.
  returned: always
  type: list
  elements: str
started:
  description: Processes that were down and were started.
  returned: always
  type: list
  elements: str
stopped:
  description: Processes stopped because their program is C(stopped).
  returned: always
  type: list
  elements: str
orphans:
  description: Orphaned processes stopped, with the signal that ended them (C(TERM) or C(KILL)) and how long it took.
  returned: always
  type: list
  elements: dict
pids:
  description: Per program, C(before) and C(after), each a map of process name to pid (null when not running).
  returned: always
  type: dict
not_running:
  description: Per program that did not reach RUNNING, its processes' states and the last lines of its log.
  returned: always
  type: dict
rolled_back:
  description: Files put back (the previous version restored, or a new file removed).
  returned: always
  type: list
  elements: str
recycled:
  description:
    - With O(recycle_command), per process (C(group:name)), where it stands after the wait.
  type: dict
  returned: with O(recycle_command)
  contains:
    state:
      description:
        - C(recycled) (RUNNING under a new pid), C(busy) (RUNNING under its old pid, in a job; it recycles when the job
          ends), C(idle) (RUNNING under its old pid with no job, so it did not see the restart signal), or its supervisor
          state (C(STOPPED), C(FATAL), C(STARTING), ...; C(gone) when supervisord no longer has it).
      type: str
      sample: busy
    pid_before:
      description: Its pid when the command ran (null when it was not running).
      type: int
    pid_after:
      description: Its pid at the end of the wait (null when not running).
      type: int
    job:
      description: When C(busy), the job's class as the log names it; null when the log does not show it.
      type: str
      sample: App\Jobs\EncodeVideoToHls
    job_age_seconds:
      description: When C(busy) and the log shows the job's start, seconds since it started; null otherwise.
      type: int
      sample: 42
"""

import calendar
import os
import re
import shutil
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import orphans as orphan_procs
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as state
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc

POLL = 1.0


def connect(config_file):
    try:
        return rpc.connect(config_file)
    except layout.LayoutError as exc:
        raise rpc.RPCError(None, str(exc))


def start_service(module, service, config_file, timeout=60):
    """Start supervisord through its service manager (a start, never a restart) and wait until it answers."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl and os.path.isdir("/run/systemd/system"):
        # A unit whose supervisord died waits in 'auto-restart' (Debian's for 50 s), and a start
        # then waits for that delay too; a restart runs it now. Nothing of it runs to be stopped:
        # its main process is dead, and KillMode=process leaves the orphaned workers to us.
        rc, out, _err = module.run_command([systemctl, "show", "-p", "SubState", "--value", service],
                                           environ_update={"LC_ALL": "C"})
        argv = [systemctl, "restart" if rc == 0 and out.strip() == "auto-restart" else "start", service]
    else:
        argv = [module.get_bin_path("service") or "service", service, "start"]
    rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
    if rc != 0:
        return "'%s' failed (%d): %s" % (" ".join(argv), rc, (err or out).strip())
    deadline = time.time() + timeout
    while True:
        try:
            client = connect(config_file)
            if client.state() == "RUNNING":
                return None
        except (rpc.RPCError, IOError, OSError) as exc:
            last = str(getattr(exc, "message", exc))
        else:
            last = "supervisord is not RUNNING yet"
        if time.time() > deadline:
            return "supervisord did not answer within %d s after '%s': %s" % (timeout, " ".join(argv), last)
        time.sleep(POLL)


def pids_by_group(client, names):
    found = dict((name, {}) for name in names)
    for info in client.processes():
        if info["group"] in found:
            found[info["group"]]["%s:%s" % (info["group"], info["name"])] = info.get("pid") or None
    return found


def restore(entries):
    """Put each file back as it was before the write step; returns the paths restored."""
    restored = []
    for entry in entries:
        path, backup = entry["path"], entry.get("backup")
        if backup and os.path.exists(backup):
            shutil.copyfile(backup, path)
            os.chmod(path, int(entry.get("mode") or "0644", 8))
            os.unlink(backup)
            restored.append(path)
        elif entry.get("new") and os.path.exists(path):
            os.unlink(path)
            restored.append(path)
    return restored


def forget_backups(entries):
    for entry in entries:
        if entry.get("backup") and os.path.exists(entry["backup"]):
            os.unlink(entry["backup"])


def apply_groups(client, names, added, changed, removed, result):
    """What 'supervisorctl update' does, for these groups only: removed and changed ones are stopped (each
    running job finishes within stopwaitsecs) and removed, changed and added ones are added."""
    for name in names:
        if name in removed or name in changed:
            client.stop_group(name)
            client.remove_group(name)
            (result["removed"] if name in removed else result["updated"]).append(name)
        if name in added or name in changed:
            client.add_group(name)
            if name in added:
                result["added"].append(name)


def reapply(client, names, result):
    """Make supervisord run what the files now say for these groups."""
    added, changed, removed = client.reload_config()
    apply_groups(client, names, added, changed, removed, result)


def wait_running(client, names, timeout):
    """Wait until every process of these groups is RUNNING; returns {group: [(process, state, spawnerr)]} of the rest.

    A FATAL or STOPPED process is not waited for: supervisor gave up on it, or it was
    stopped. EXITED is waited for: with autorestart it is about to start again.
    """
    deadline = time.time() + timeout
    while True:
        pending = {}
        for info in client.processes():
            if info["group"] in names and info["statename"] != "RUNNING":
                pending.setdefault(info["group"], []).append(
                    ("%s:%s" % (info["group"], info["name"]), info["statename"], info.get("spawnerr") or ""))
        waiting = [g for g, procs in pending.items() if any(s not in ("FATAL", "STOPPED") for _p, s, _e in procs)]
        if not waiting or time.time() > deadline:
            return pending
        time.sleep(POLL)


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
    items = params["recycle"] or [{"command": params["recycle_command"], "chdir": params["recycle_chdir"],
                                   "programs": [p["name"] for p in params["programs"]]}]
    wanted = dict((p["name"], p) for p in params["programs"])
    started = [n for item in items for n in item["programs"] if n in wanted and wanted[n]["state"] == "started"]
    unknown = sorted(set(n for item in items for n in item["programs"]) - set(wanted))
    if unknown:
        module.fail_json(msg="recycle names programs that are not in programs: %s" % ", ".join(unknown), **result)
    old = dict((process, pid) for name in started for process, pid in before.get(name, {}).items())
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": before.get(n, {})}) for n in started)
    if module.check_mode:
        result["changed"] = True
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
                                       params["recycle_log_utc_offset"])
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, started).items())
    down = sorted((p, e) for p, e in result["recycled"].items() if e["state"] not in ("recycled", "busy"))
    busy = sorted((p, e) for p, e in result["recycled"].items() if e["state"] == "busy")
    problems = []
    if down:
        problems.append("Did not recycle, and will not by themselves: %s." % "; ".join(
            recycle_problem(client, p, e) for p, e in down))
    if busy and params["recycle_require_all"]:
        problems.append(
            "Still busy with a job after %d s (each recycles when its job ends): %s. Wait longer (wait_timeout; "
            "queue_workers_restart_wait in restart.yml), or accept workers that recycle after their job "
            "(recycle_require_all: false; queue_workers_restart_require_all)." % (
                params["wait_timeout"], "; ".join(describe_busy(p, e) for p, e in busy)))
    if problems:
        module.fail_json(msg="'%s' ran, but not every worker process recycled. %s" % (
            "', '".join(commands), " ".join(problems)), **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="path", required=True),
            service=dict(type="str"),
            programs=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", default="started", choices=list(state.DESIRED_STATES)),
                stopwaitsecs=dict(type="int", default=10),
                action=dict(type="str", default="pending"),
            )),
            rollback=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                backup=dict(type="path"),
                new=dict(type="bool", default=False),
                name=dict(type="str"),
                mode=dict(type="str"),
            )),
            wait_timeout=dict(type="int", default=60),
            stop_orphans=dict(type="bool", default=True),
            recycle_command=dict(type="list", elements="str"),
            recycle_chdir=dict(type="path"),
            recycle=dict(type="list", elements="dict", options=dict(
                command=dict(type="list", elements="str"),
                chdir=dict(type="path"),
                programs=dict(type="list", elements="str", required=True),
                app=dict(type="str"),
            )),
            recycle_require_all=dict(type="bool", default=False),
            recycle_log_utc_offset=dict(type="int", default=0),
        ),
        mutually_exclusive=[("recycle", "recycle_command")],
        supports_check_mode=True,
    )
    params = module.params
    recycling = bool(params["recycle_command"] or params["recycle"])
    programs = dict((p["name"], p) for p in params["programs"])
    names = sorted(programs)
    result = dict(changed=False, supervisord_started=False, added=[], updated=[], removed=[], started=[], stopped=[],
                  orphans=[], pids={}, not_running={}, rolled_back=[])

    try:
        client = connect(params["config_file"])
        client.state()
    except rpc.RPCError as exc:
        if recycling:
            module.fail_json(msg="supervisord does not answer: %s" % exc.message, **result)
        if not params["service"]:
            module.fail_json(msg="supervisord does not answer (%s) and no service is known to start it: set service"
                             % exc.message, **result)
        result["changed"] = result["supervisord_started"] = True
        if module.check_mode:
            module.exit_json(**result)
        problem = start_service(module, params["service"], params["config_file"])
        if problem:
            module.fail_json(msg="supervisord was not running and could not be started: %s" % problem, **result)
        client = connect(params["config_file"])

    before = pids_by_group(client, names)
    if recycling:
        recycle(module, client, params, before, result)

    # Orphans get SIGTERM now and finish their jobs while the programs are applied.
    orphan_thread, orphan_report = None, []
    if params["stop_orphans"] and names and not module.check_mode:
        found = orphan_procs.find_orphans(set(names))
        if found:
            waits = dict((n, p["stopwaitsecs"]) for n, p in programs.items())

            def stop():
                orphan_report.extend(orphan_procs.stop_orphans(found, waits))
            orphan_thread = threading.Thread(target=stop)
            orphan_thread.start()
            result["changed"] = True

    try:
        added, changed, removed = client.reload_config()
    except rpc.RPCError as exc:
        if exc.code != rpc.CANT_REREAD:
            module.fail_json(msg="supervisord answered with an error: %s" % exc.message, **result)
        written = [e["path"] for e in params["rollback"]]
        if written and not module.check_mode and any(path in exc.message for path in written):
            result["rolled_back"] = restore(params["rollback"])
            module.fail_json(msg=(
                "supervisor refused the program file(s) this run wrote: %s. They were put back as they were (%s); "
                "nothing was applied and every running program was left as it was." % (exc.message, ", ".join(written))),
                **result)
        module.fail_json(msg=(
            "supervisor cannot read its config: %s. That is not a file of these programs: fix or remove it. Until then "
            "supervisor can add or change no program on this host." % exc.message), **result)

    if module.check_mode:
        result["updated"] = [n for n in names if n in changed]
        result["added"] = [n for n in names if n in added]
        result["removed"] = [n for n in names if n in removed]
        result["changed"] = result["changed"] or any((result["updated"], result["added"], result["removed"]))
        module.exit_json(**result)

    try:
        apply_groups(client, names, added, changed, removed, result)
        current = dict(("%s:%s" % (i["group"], i["name"]), i) for i in client.processes())
        for process, info in sorted(current.items()):
            program = programs.get(info["group"])
            if program is None:
                continue
            if program["state"] == "started" and info["statename"] in state.DOWN_STATES:
                try:
                    client.start_process(process, wait=False)
                except rpc.RPCError as exc:
                    if exc.code != rpc.ALREADY_STARTED:
                        raise
                result["started"].append(process)
            elif program["state"] == "stopped" and info["statename"] not in state.DOWN_STATES:
                client.stop_process(process)
                result["stopped"].append(process)
    except rpc.RPCError as exc:
        module.fail_json(msg="supervisord refused a step: %s" % exc.message, **result)
    result["changed"] = result["changed"] or any(
        result[k] for k in ("added", "updated", "removed", "started", "stopped"))

    running = [n for n in names if programs[n]["state"] == "started"]
    failing = wait_running(client, set(running), params["wait_timeout"]) if running else {}
    for group, procs in sorted(failing.items()):
        result["not_running"][group] = {
            "states": dict((p, s) for p, s, _e in procs),
            "spawnerr": sorted(set(e for _p, _s, e in procs if e)),
            "log": log_tail(client, procs[0][0]),
        }

    if failing:
        changed_now = [g for g in failing if programs[g]["action"] in ("changed", "pending")]
        # The failing programs' previous versions, and every file removed in this run.
        removed_now = [n for n, p in programs.items() if p["action"] == "removed"]
        files_back = [e for e in params["rollback"] if not e.get("new") and e.get("backup")
                      and (e.get("name") in changed_now or e.get("name") in removed_now or not e.get("name"))]
        new_now = [g for g in failing if programs[g]["action"] == "added"]
        try:
            if files_back:
                result["rolled_back"] = restore(files_back)
                reapply(client, names, {"added": [], "updated": [], "removed": []})
            for group in new_now:
                client.stop_group(group)
            old_running = wait_running(client, set(g for g in changed_now), params["wait_timeout"])
        except rpc.RPCError as exc:
            module.fail_json(msg="rolling back failed: %s" % exc.message, **result)
        result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, names).items())
        parts = []
        for group in sorted(failing):
            info = result["not_running"][group]
            reason = "; ".join(info["spawnerr"]) or " | ".join(info["log"][-5:]) or "no log output"
            if group in changed_now and files_back and group not in old_running:
                outcome = "its previous version was put back and runs again"
            elif group in changed_now and files_back:
                outcome = "its previous version was put back but does not run either"
            elif group in new_now:
                outcome = "it is new, so there is no previous version: it was stopped"
            else:
                outcome = "there is no previous version to go back to"
            parts.append("%s did not reach RUNNING within %d s (%s): %s; %s" % (
                group, params["wait_timeout"], ", ".join("%s %s" % kv for kv in sorted(info["states"].items())),
                reason, outcome))
        # The programs that did reach RUNNING keep their new version: their old one is not needed.
        forget_backups([e for e in params["rollback"] if e not in files_back])
        if orphan_thread:
            orphan_thread.join()
            result["orphans"] = orphan_report
        module.fail_json(msg="; ".join(parts), **result)

    forget_backups(params["rollback"])
    if orphan_thread:
        orphan_thread.join()
        result["orphans"] = orphan_report
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, names).items())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
