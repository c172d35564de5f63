# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The diagnose playbook's judgement, pure: observations of a host in, findings out.

The module (queue_workers_diagnose) only collects; everything that decides what is wrong
and what to do about it lives here, so that it is unit-tested on plain data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fnmatch
import os
import re
import shlex

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LABELS = {OK: " OK ", WARN: "WARN", FAIL: "FAIL", SKIP: "SKIP"}

# supervisor's fault code for a config it cannot read (supervisor/xmlrpc.py, Faults.CANT_REREAD).
CANT_REREAD = 92
# States of a process that cannot start: supervisor retries it (BACKOFF) or gave up (FATAL).
CANNOT_START = ("FATAL", "BACKOFF")
# States of a worker that is kept stopped on purpose (state: stopped, or autostart: false).
STOPPED_STATES = ("STOPPED", "EXITED")
# How far back a supervisord log line about a worker that could not start counts.
START_ERROR_WINDOW = 60
# Programs that exec the command they are given: the process supervisord watches shows
# only the command at the end of the chain (a worker with nice/ionice runs as php).
EXEC_WRAPPERS = frozenset(["nice", "ionice", "chrt", "taskset", "env", "stdbuf", "setpriv", "numactl"])

SECTION_RE = re.compile(r"^\s*\[program:([^\]]+)\]\s*$")
# supervisord's log: "2026-03-01 12:00:00,123 INFO gave up: NAME entered FATAL state, ..."
LOG_LINE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:,\d+)?\s+\S+\s+(.*)$")
GAVE_UP_RE = re.compile(r"^gave up: (\S+) ")
EXITED_RE = re.compile(r"^exited: (\S+) \(exit status \d+; not expected\)")
SPAWNERR_RE = re.compile(r"^spawnerr: (.*)$")
DOTENV_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")


def program_sections(text):
    """Names of the [program:x] sections of a supervisor config file's text."""
    return [m.group(1).strip() for m in (SECTION_RE.match(line) for line in (text or "").splitlines()) if m]


def parse_dotenv(text):
    """KEY=VALUE pairs of a Laravel .env (comments, 'export', single/double quotes)."""
    values = {}
    for line in (text or "").splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = DOTENV_RE.match(line)
        if not match:
            continue
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[match.group(1)] = value
    return values


def loaded_by(path, globs, config_file=None):
    """What makes supervisord load this file (its config file, or an include glob), or None."""
    if config_file and path == config_file:
        return config_file
    for pattern in globs or []:
        if fnmatch.fnmatchcase(path, pattern):
            return pattern
    return None


def _finding(check, status, summary, fix=None):
    return {"check": check, "status": status, "summary": summary, "fix": fix}


def _supervisord(obs):
    sup = obs.get("supervisor") or {}
    found = []
    service = sup.get("service_name") or "supervisor"
    if sup.get("running"):
        found.append(_finding("supervisord", OK, "running, pid %s, started with %s (%s)" % (
            sup.get("pid"), sup.get("config_file"), sup.get("config_source") or "?")))
    elif sup.get("supervisord_path"):
        # A supervisord that was killed leaves its workers running, unmanaged (see orphans).
        found.append(_finding("supervisord", FAIL, "supervisord is installed (%s) but not running, so no worker %s"
                              % (sup["supervisord_path"], "is managed" if obs.get("orphans") else "runs"),
                              "start it and enable it at boot: systemctl enable --now %s (or run the site playbook); "
                              "if it fails to start, read the supervisord log below" % service))
    else:
        found.append(_finding("supervisord", FAIL, "supervisor is not installed",
                              "run the site playbook (elms.queue_workers.site), which installs it"))
    for problem in sup.get("problems") or []:
        found.append(_finding("config", FAIL, problem, "see the problem's own advice; override with "
                              "queue_workers_supervisor_config_file / queue_workers_supervisor_include_dir / "
                              "queue_workers_supervisor_include_extension"))
    if sup.get("config_file") and sup.get("include_dir"):
        found.append(_finding("config", OK, "%s; [include] files = %s; program files go in %s/*%s" % (
            sup["config_file"], " ".join(sup.get("include_globs") or []), sup["include_dir"],
            sup.get("include_extension") or "")))
    return found


def _program_files(obs):
    sup = obs.get("supervisor") or {}
    globs = sup.get("include_globs") or []
    found = []
    for prog in obs.get("programs") or []:
        name = prog["name"]
        check = "file %s" % name
        if prog.get("file_exists"):
            owner = "" if prog.get("file_owned") else " (not written by this collection)"
            found.append(_finding(check, OK, "%s is where supervisord reads it%s" % (prog["file"], owner)))
            continue
        elsewhere = prog.get("defined_in") or []
        loaded = [path for path in elsewhere if loaded_by(path, globs, sup.get("config_file"))]
        stray = [path for path in elsewhere if path not in loaded]
        if loaded:
            found.append(_finding(check, WARN, "[program:%s] is defined in %s, not in %s" % (
                name, ", ".join(loaded), prog["file"]),
                "remove the hand-made copy and let the site playbook write %s (queue_workers_take_over: true "
                "replaces it)" % prog["file"]))
        elif stray:
            found.append(_finding(check, FAIL, "[program:%s] is in %s, which supervisord does not load "
                                  "(it loads %s)" % (name, ", ".join(stray), " ".join(globs) or "no [include] at all"),
                                  "move it to %s (directory AND extension matter), or run the site playbook, "
                                  "which writes it there" % prog["file"]))
        else:
            found.append(_finding(check, FAIL, "no program file for %s: %s does not exist" % (name, prog["file"]),
                                  "run the site playbook (elms.queue_workers.site)"))
    return found


def file_commands(text, name, here, env=None, host_node_name=""):
    """The command line of each process of [program:NAME] in a file's text, as supervisord runs it.

    Follows supervisor/options.py (4.x), processes_from_section: command= gets
    %(program_name)s, %(group_name)s, %(process_num)d, %(numprocs)d, %(here)s,
    %(host_node_name)s and %(ENV_X)s (supervisord's own environment) expanded, '%%'
    becoming '%', for each process_num from numprocs_start on, and is split with shlex.
    Returns (argvs, error): the distinct argv lists (none when the text has no such
    section or no command=), and why they could not be worked out (or None).
    """
    try:
        parser = layout.parse_config(text or "")
    except layout.LayoutError as exc:
        return [], str(exc)
    section = "program:%s" % name
    if not parser.has_section(section) or not parser.has_option(section, "command"):
        return [], None
    common = {"here": here, "program_name": name, "group_name": name, "host_node_name": host_node_name or ""}
    for key, value in (env or {}).items():
        common["ENV_%s" % key] = value
    try:
        counts = []
        for option, default in (("numprocs", "1"), ("numprocs_start", "0")):
            value = parser.get(section, option, raw=True) if parser.has_option(section, option) else default
            counts.append(int(value % common))
    except (KeyError, ValueError, TypeError) as exc:
        return [], "[%s] numprocs cannot be read: %s" % (section, exc)
    numprocs, first = counts
    raw = parser.get(section, "command", raw=True)
    argvs = []
    for number in range(first, first + min(max(numprocs, 1), 1000)):
        try:
            argv = shlex.split(raw % dict(common, process_num=number, numprocs=numprocs))
        except KeyError as exc:
            return [], "[%s] command names %s, which supervisord cannot expand" % (section, exc)
        except (ValueError, TypeError) as exc:
            return [], "[%s] command cannot be expanded and split: %s" % (section, exc)
        if argv not in argvs:
            argvs.append(argv)
    return argvs, None


def runs_command(actual, expected):
    """Whether a process's argv is the expected command line.

    A command that starts with an exec wrapper (nice, ionice, ...) shows as the command
    at the end of the chain: /usr/bin/nice -n 10 /usr/bin/php artisan ... runs as
    /usr/bin/php artisan ...
    """
    actual, expected = list(actual or []), list(expected or [])
    if actual == expected:
        return True
    tail = len(actual)
    return (0 < tail < len(expected) and expected[-tail:] == actual
            and os.path.basename(expected[0]) in EXEC_WRAPPERS)


def command_drift(prog, procs, cmdlines):
    """RUNNING processes of a program whose command line is not any its file gives.

    prog: an obs program (its ``commands``); procs: its getAllProcessInfo entries;
    cmdlines: {pid: argv} read from /proc (a pid missing there is not judged).
    """
    expected = prog.get("commands") or []
    drift = []
    if not expected:
        return drift
    for proc in procs:
        pid = proc.get("pid")
        if proc.get("statename") != "RUNNING" or not pid or not cmdlines.get(pid):
            continue
        if not any(runs_command(cmdlines[pid], argv) for argv in expected):
            drift.append({"pid": pid, "process": "%s:%s" % (proc.get("group"), proc.get("name")),
                          "cmdline": cmdlines[pid]})
    return drift


def _log_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return None


def start_errors(lines, names, commands, now, window=START_ERROR_WINDOW):
    """supervisord log lines of the last `window` seconds saying one of these processes could not start.

    lines: supervisord's log; names: process names as supervisord logs them (without the
    group: elms-default-worker_00); commands: the program's executables, since a spawnerr
    such as "can't find command '/usr/bin/php'" names no process; now: the host's local
    time ('YYYY-MM-DD HH:MM:SS'), which is what supervisord logs in. Counted: "gave up:
    NAME", "exited: NAME (exit status N; not expected)" and "spawnerr: ..." naming one of
    them. An expected exit (a worker recycling after --max-time exits 0) is not counted.
    """
    current = _log_time(now)
    if current is None:
        return []
    quoted = ["'%s'" % token for token in list(names) + list(commands) if token]
    found = []
    for line in lines or []:
        line = line.strip()
        match = LOG_LINE_RE.match(line)
        when = _log_time(match.group(1)) if match else None
        if when is None or abs((current - when).total_seconds()) > window:
            continue
        message = match.group(2)
        named = GAVE_UP_RE.match(message) or EXITED_RE.match(message)
        if named:
            if named.group(1) in names:
                found.append(line)
            continue
        spawnerr = SPAWNERR_RE.match(message)
        if spawnerr and any(token in spawnerr.group(1) for token in quoted):
            found.append(line)
    return found


def _one_line(text):
    return re.sub(r"\s*\n\s*", " ", (text or "").strip())


def _ctl(sup):
    return "%s -c %s" % (sup.get("supervisorctl_path") or "supervisorctl", sup.get("config_file"))


def _pids(items):
    return ", ".join("pid %s (%s)" % (item["pid"], item["process"]) for item in items)


def _processes(obs):
    """What supervisord runs of each worker, and whether it has applied each program file."""
    sup = obs.get("supervisor") or {}
    programs = obs.get("programs") or []
    if not sup.get("running"):
        return [_finding("processes", SKIP, "not asked: supervisord is not running")]
    api = obs.get("rpc") or {}
    if api.get("error"):
        return [_finding("processes", FAIL, "cannot talk to supervisord: %s" % api["error"],
                         "check [supervisorctl] serverurl and [unix_http_server] file in %s; "
                         "run it as root" % sup.get("config_file"))]
    ctl_cmd = _ctl(sup)
    found = []
    problem = api.get("reread_error")
    message = problem and _one_line(problem.get("message"))
    if problem and problem.get("code") == CANT_REREAD:
        # supervisord says "CANT_REREAD: File contains parsing errors: PATH\n\t[line  3]: ...".
        message = re.sub(r"^CANT_REREAD:\s*", "", message)
        found.append(_finding("config", FAIL, "supervisord cannot read its config: %s" % message,
                              "fix or remove the file it names: until then supervisord adds and changes no program "
                              "(the site playbook writes none), and a restart of supervisord would fail on it"))
    elif problem:
        found.append(_finding("config", WARN, "supervisord did not say which program files changed: %s"
                              % message, "%s reread shows the same; read the supervisord log below"
                              % ctl_cmd))
    reread = api.get("reread") or {}
    groups = {}
    for info in api.get("processes") or []:
        groups.setdefault(info.get("group"), []).append(info)
    log = obs.get("log") or {}
    cmdlines = obs.get("cmdlines") or {}
    for prog in programs:
        name = prog["name"]
        procs = groups.get(name, [])
        if name in (reread.get("added") or []):
            found.append(_finding("loaded %s" % name, FAIL, "%s is read but not added: supervisord has its program "
                                  "file but runs no process of it" % name,
                                  "%s update %s (or run the site playbook)" % (ctl_cmd, name)))
            continue
        drift = command_drift(prog, procs, cmdlines)
        if name in (reread.get("changed") or []):
            text = "%s differs from what supervisord runs: a change was written but not applied" % (
                prog.get("file") if prog.get("file_exists") else "%s's program file" % name)
            if drift:
                text += "; %s still %s the older command line" % (_pids(drift), "runs" if len(drift) == 1 else "run")
            found.append(_finding("loaded %s" % name, FAIL, text, "run the site playbook, which applies it (or %s "
                                  "update %s)" % (ctl_cmd, name)))
        elif drift:
            if problem:
                fix = ("supervisord cannot read its config (see above), so it still has the older one: fix that "
                       "first, then run the site playbook, which applies the file (or %s update %s)" % (ctl_cmd, name))
            else:
                fix = ("supervisord has the file's command but these processes were started with another: %s "
                       "restart '%s:*' (each worker finishes its job first)" % (ctl_cmd, name))
            found.append(_finding("command %s" % name, FAIL, "%s %s an older command line than its file: %s; the "
                                  "file says: %s" % (_pids(drift), "runs" if len(drift) == 1 else "run",
                                                     " ".join(drift[0]["cmdline"]), " ".join(prog["commands"][0])),
                                  fix))
        if not procs:
            # A file supervisord does not load at all is the file finding's business.
            loaded = prog.get("file_exists") or any(
                loaded_by(path, sup.get("include_globs"), sup.get("config_file"))
                for path in prog.get("defined_in") or [])
            if loaded:
                found.append(_finding("loaded %s" % name, FAIL, "supervisord has not read %s's program file"
                                      % name, "%s reread && %s update (the site playbook applies it)"
                                      % (ctl_cmd, ctl_cmd)))
            continue
        names = [proc.get("name") for proc in procs]
        commands = [argv[0] for argv in prog.get("commands") or [] if argv]
        lines = start_errors(log.get("lines"), names, commands, log.get("now"))
        found.extend(_running(prog, procs, lines, ctl_cmd))
    return found


def _describe(proc):
    text = "%s:%s %s %s" % (proc.get("group"), proc.get("name"), proc.get("statename"), proc.get("description") or "")
    text = text.rstrip()
    if proc.get("spawnerr"):
        text += " (spawnerr: %s)" % proc["spawnerr"]
    return text


def _running(prog, procs, lines, ctl_cmd):
    name = prog["name"]
    recent = ""
    if lines:
        recent = "; supervisord log in the last minute: %s" % " | ".join(lines[-3:])
    fix = ("read %s's log below: a FATAL/BACKOFF worker dies at start (wrong app dir or php, storage/ not writable, "
           "the app does not boot); after the fix: %s start '%s:*'" % (name, ctl_cmd, name))
    if prog.get("state") == "stopped":
        stuck = [p for p in procs if p.get("statename") in CANNOT_START]
        if stuck:
            return [_finding("running %s" % name, FAIL, "%d of %d process(es) cannot start: %s%s" % (
                len(stuck), len(procs), "; ".join(_describe(p) for p in stuck), recent), fix)]
        return [_finding("running %s" % name, OK, "%d process(es), kept stopped (started by hand): %s" % (
            len(procs), ", ".join(sorted(set(p.get("statename") for p in procs)))))]
    if prog.get("state") == "scaled":
        stuck = [p for p in procs if p.get("statename") in CANNOT_START]
        if stuck:
            return [_finding("running %s" % name, FAIL, "%d of %d spare process(es) cannot start: %s%s" % (
                len(stuck), len(procs), "; ".join(_describe(p) for p in stuck), recent), fix)]
        up = [p for p in procs if p.get("statename") == "RUNNING"]
        return [_finding("running %s" % name, OK, "%d of %d spare process(es) RUNNING (the scaler starts and stops "
                                                  "them)" % (len(up), len(procs)))]
    bad = [p for p in procs if p.get("statename") != "RUNNING"]
    if bad:
        return [_finding("running %s" % name, FAIL, "%d of %d process(es) not RUNNING: %s%s" % (
            len(bad), len(procs), "; ".join(_describe(p) for p in bad), recent), fix)]
    found = [_finding("running %s" % name, OK, "%d process(es) RUNNING" % len(procs))]
    if lines:
        found.append(_finding("start %s" % name, WARN, "could not start in the last minute, runs now: %s"
                              % " | ".join(lines[-3:]),
                              "read %s's log below: a worker that keeps exiting at start ends FATAL" % name))
    return found


def _orphans(obs):
    orphans = obs.get("orphans")
    if orphans is None:
        return []
    if not orphans:
        return [_finding("orphans", OK, "no worker left running by a supervisord that is gone")]
    items = []
    for orphan in orphans:
        process = orphan.get("process") or orphan.get("group")
        if process != orphan.get("group"):
            process = "%s:%s" % (orphan.get("group"), process)
        items.append({"pid": orphan["pid"], "process": process})
    return [_finding("orphans", FAIL, "%d worker process(es) left running by a supervisord that is gone (it crashed "
                     "or was killed): %s" % (len(items), _pids(items)),
                     "they run old code unmanaged beside the managed ones; the site playbook stops them gracefully "
                     "(SIGTERM, the job finishes), or kill -TERM %s" % " ".join(str(o["pid"]) for o in orphans))]


def _app(obs):
    app = obs.get("app") or {}
    found = []
    user = app.get("user")
    if not app.get("artisan_exists"):
        return [_finding("app", FAIL, "%s/artisan does not exist" % app.get("dir"),
                         "set queue_workers_app_dir to the Laravel app's root")]
    if not app.get("user_exists"):
        return [_finding("app", FAIL, "the worker user %s does not exist" % user,
                         "create it, or set queue_workers_user")]
    unwritable = app.get("unwritable") or []
    if unwritable:
        found.append(_finding("storage", FAIL, "%s cannot write %s" % (user, ", ".join(unwritable)),
                              "chown -R %s %s/storage %s/bootstrap/cache (workers log, cache and write the HLS "
                              "output there)" % (user, app["dir"], app["dir"])))
    elif app.get("writable_checked"):
        found.append(_finding("storage", OK, "%s can write storage/ and bootstrap/cache" % user))
    once = app.get("queue_work") or {}
    if once.get("skipped"):
        found.append(_finding("queue:work", SKIP, once["skipped"]))
    elif once:
        if once.get("rc") == 0:
            found.append(_finding("queue:work", OK, "%s runs 'artisan queue:work --once' (exit 0)" % user))
        else:
            found.append(_finding("queue:work", FAIL, "'artisan queue:work --once' as %s exits %s: %s" % (
                user, once.get("rc"), _last(once.get("output"))),
                "this is what every worker hits at start: fix the error (php extensions, .env, database, "
                "permissions), then supervisorctl start the workers"))
    for probe in app.get("kind_probes") or []:
        check = "%s" % probe["command"].split()[0]
        if probe.get("rc") == 0:
            found.append(_finding(check, OK, "%s runs 'artisan %s' (exit 0): the %s program can start"
                                  % (user, probe["command"], probe["kind"])))
        else:
            found.append(_finding(check, FAIL, "'artisan %s' as %s exits %s: %s" % (
                probe["command"], user, probe.get("rc"), _last(probe.get("output"))),
                "the %s program hits the same error at start: fix it (for horizon: the laravel/horizon package "
                "and its Redis connection)" % probe["kind"]))
    return found


def _last(text, lines=3):
    kept = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _queue(obs):
    app = obs.get("app") or {}
    probe = obs.get("probe") or {}
    env = app.get("dotenv")
    found = []
    connection = probe.get("default")
    source = "the app's config"
    if not connection and env is not None:
        connection = env.get("QUEUE_CONNECTION")
        source = ".env"
    if probe.get("error"):
        found.append(_finding("queue", WARN, "the app could not be asked about its queue: %s" % _last(probe["error"], 2),
                              "the same error stops the workers; see queue:work above"))
    if env is None:
        found.append(_finding("queue", WARN, "%s/.env does not exist" % app.get("dir"),
                              "create it (cp .env.example .env; php artisan key:generate) with QUEUE_CONNECTION=database "
                              "or redis"))
    if connection == "sync":
        found.append(_finding("queue", FAIL, "QUEUE_CONNECTION is sync (%s): jobs run inside the web request and "
                              "the workers never get any" % source,
                              "set QUEUE_CONNECTION=database (php artisan queue:table && php artisan migrate) or redis "
                              "in .env, then php artisan config:cache if the config is cached"))
    elif connection:
        found.append(_finding("queue", OK, "the app queues on the '%s' connection (%s)" % (connection, source)))
    if env is not None and app.get("config_cached") and probe.get("default") and \
            env.get("QUEUE_CONNECTION", probe["default"]) != probe["default"]:
        found.append(_finding("queue", WARN, ".env says QUEUE_CONNECTION=%s but the cached config says %s" % (
            env.get("QUEUE_CONNECTION"), probe["default"]),
            "php artisan config:cache (or config:clear), then php artisan queue:restart"))
    sizes = probe.get("sizes") or {}
    if sizes:
        found.append(_finding("jobs", OK, "pending: %s" % ", ".join("%s %s" % (q, n) for q, n in sorted(sizes.items()))))
    if probe.get("failed"):
        found.append(_finding("jobs", WARN, "%s failed job(s)" % probe["failed"],
                              "php artisan queue:failed shows why; php artisan queue:retry all runs them again"))
    elif "failed" in probe:
        found.append(_finding("jobs", OK, "no failed jobs"))
    return found


def _ffmpeg(obs):
    ff = obs.get("ffmpeg") or {}
    if ff.get("skipped"):
        return [_finding("ffmpeg", SKIP, ff["skipped"])]
    if not ff.get("path"):
        return [_finding("ffmpeg", FAIL, "ffmpeg is not on PATH: video-encoding jobs fail",
                         "run the site playbook (its ffmpeg role installs and verifies it)")]
    if ff.get("rc") == 0:
        return [_finding("ffmpeg", OK, "%s encodes HLS (%s)" % (ff["path"], ff.get("encoders")))]
    return [_finding("ffmpeg", FAIL, "%s cannot encode HLS: %s" % (ff["path"], _last(ff.get("output"))),
                     "install an FFmpeg with the hls muxer, an H.264 and an AAC encoder (Debian: apt install ffmpeg)")]


def _isolation(obs):
    """Whether the running workers got the CPU and I/O priority their definition asks for."""
    found = []
    priorities = obs.get("priorities") or {}
    groups = {}
    for info in (obs.get("rpc") or {}).get("processes") or []:
        groups.setdefault(info.get("group"), []).append(info)
    for prog in obs.get("programs") or []:
        if prog.get("nice") is None and not prog.get("ionice_class"):
            continue
        wrong = []
        for proc in groups.get(prog["name"], []):
            seen = priorities.get(proc.get("pid"))
            if not seen:
                continue
            if prog.get("nice") is not None and seen.get("nice") is not None and seen["nice"] != prog["nice"]:
                wrong.append("pid %s runs at nice %s, not %s" % (proc["pid"], seen["nice"], prog["nice"]))
            want = prog.get("ionice_class")
            io = seen.get("io") or ""
            if want and io and not io.startswith(want):
                wrong.append("pid %s has I/O class '%s', not %s" % (proc["pid"], io, want))
            elif (want and want != "idle" and prog.get("ionice_level") is not None and io
                  and not io.endswith("prio %s" % prog["ionice_level"])):
                wrong.append("pid %s has I/O priority '%s', not level %s" % (proc["pid"], io, prog["ionice_level"]))
        if wrong:
            found.append(_finding("isolation %s" % prog["name"], FAIL, "%s: %s" % (prog["name"], "; ".join(wrong)),
                                  "the program's command must start with nice/ionice as the site playbook writes it "
                                  "(a hand-made file, or one not applied yet?); run the site playbook"))
        elif any(priorities.get(proc.get("pid")) for proc in groups.get(prog["name"], [])):
            found.append(_finding("isolation %s" % prog["name"], OK, "%s runs at the CPU and I/O priority it asks for"
                                  % prog["name"]))
    return found


def _alerts(obs):
    """Whether the alert listener is installed and runs, and when it last sent (from its state file)."""
    alerts = obs.get("alerts")
    if not alerts:
        return []
    if not alerts.get("installed"):
        return [_finding("alerts", SKIP, "not installed: no alert channel is set (queue_workers_alert_webhook, "
                                         "queue_workers_alert_syslog, queue_workers_alert_mail_to)")]
    states = alerts.get("states")
    if states is not None and states != ["RUNNING"]:
        return [_finding("alerts", FAIL, "the alert listener %s is %s, so no worker failure is alerted" % (
            alerts.get("program"), ", ".join(states) or "not loaded"),
            "see its log %s; run the site playbook" % alerts.get("log"))]
    state = alerts.get("state") or {}
    last = state.get("last_sent")
    if not last:
        sent = "has sent nothing yet"
    else:
        sent = "last sent %s at %s (%s)" % (last.get("event"), last.get("time"), last.get("process"))
        if last.get("channels_failed"):
            sent += ", which failed on %s" % ", ".join(last["channels_failed"])
    counts = "%s sent, %s held back by the rate limit, %s failed" % (
        state.get("sent", 0), state.get("suppressed", 0), state.get("failed", 0))
    retrying = state.get("retrying") or {}
    if retrying:
        counts += "; starting again: %s" % ", ".join("%s (attempt %s)" % (p, r.get("attempt")) for p, r in sorted(retrying.items()))
    status = WARN if last and last.get("channels_failed") else OK
    return [_finding("alerts", status, "installed, %s; %s" % (sent, counts),
                     "check the webhook URL, syslog or mail setup (the listener's log: %s)" % alerts.get("log"))]


def _scaling(obs):
    """Each scaled worker as the listener last saw it: its processes, its range, the backlog and the last decision."""
    alerts = obs.get("alerts") or {}
    scaling = (alerts.get("state") or {}).get("scaling") or {}
    found = []
    for name, scaled in sorted(scaling.items()):
        if not isinstance(scaled, dict):
            continue
        text = "%s: %s process(es) up, range %s-%s, backlog %s" % (
            name, _or_unknown(scaled.get("current")), scaled.get("min"), scaled.get("max"),
            _or_unknown(scaled.get("backlog")))
        if scaled.get("avg_job_seconds") is not None:
            text += ", average job %s s over %s" % (scaled["avg_job_seconds"], scaled.get("jobs_measured"))
        last = scaled.get("last_decision") or {}
        if last:
            text += "; last decision at %s: %s -> %s, %s" % (last.get("at"), last.get("from"), last.get("to"),
                                                             last.get("reason"))
        else:
            text += "; no decision yet"
        status = OK if alerts.get("states") in (None, ["RUNNING"]) else WARN
        found.append(_finding("scaling", status, text, "the listener scales the spares; see its log %s"
                              % alerts.get("log")))
    return found


def _or_unknown(value):
    return "unknown" if value is None else value


def evaluate(obs):
    """Every finding, in the order of the guide's checklist."""
    return (_supervisord(obs) + _program_files(obs) + _processes(obs) + _isolation(obs) + _orphans(obs) + _app(obs)
            + _queue(obs) + _ffmpeg(obs) + _alerts(obs) + _scaling(obs))


def summary(findings):
    fails = sum(1 for f in findings if f["status"] == FAIL)
    warns = sum(1 for f in findings if f["status"] == WARN)
    if not fails and not warns:
        return "healthy: nothing to do"
    return "%d problem(s), %d warning(s)" % (fails, warns)


def format_report(host, findings, logs):
    """The report text: findings first (what is wrong, what to do), then the log tails."""
    lines = ["eLMS queue workers: diagnosis of %s" % host, "Result: %s" % summary(findings), ""]
    for item in findings:
        lines.append("[%s] %-22s %s" % (LABELS[item["status"]], item["check"], item["summary"]))
        if item["fix"] and item["status"] in (FAIL, WARN):
            lines.append("       %-22s fix: %s" % ("", item["fix"]))
    for log in logs:
        lines.append("")
        lines.append("--- last lines of %s (%s)" % (log["path"], log["what"]))
        if log.get("missing"):
            lines.append("(no such file)")
        lines.extend(log.get("tail") or ([] if log.get("missing") else ["(empty)"]))
    return "\n".join(lines) + "\n"
