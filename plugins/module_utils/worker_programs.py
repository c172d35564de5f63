# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn queue worker definitions into supervisor [program:x] options, and check them.

Pure functions shared by the filter plugins (rendering) and the unit tests. Values are
escaped for the two parsers that read them: supervisor's RawConfigParser (a ';' or '#'
after whitespace starts a comment, '%' starts an expansion) and shlex (command=).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from shlex import quote as _shlex_quote

from ansible_collections.elms.queue_workers.plugins.module_utils import daemon_kinds, program_state

# Program files written for OWNER start with program_state.marker(OWNER); only such files are ever
# changed or removed. This collection's workers belong to DEFAULT_OWNER unless told otherwise.
DEFAULT_OWNER = "elms.queue_workers"
OWNED_PREFIX = program_state.marker(DEFAULT_OWNER)
MANAGED_MARKER = OWNED_PREFIX + " Local changes are overwritten."
# A worker's state: present is started (kept for existing inventories).
WORKER_STATES = ("started", "present", "stopped", "absent")
# numprocs as a range: the keys, and how to scale when they are not given. The minimum runs as the
# worker's own program; the processes above it are a second program, SPARE_SUFFIX, that only the
# alert listener (the scaler) starts and stops, from the backlog of the worker's queues.
SCALE_KEYS = ("min", "max", "clear_seconds", "step", "cooldown")
SCALE_DEFAULTS = {"clear_seconds": 300, "step": 1, "cooldown": 60}
SPARE_SUFFIX = "-spare"
# A spare program's desired state: it exists, and the converge neither starts nor stops its processes.
SCALED = "scaled"

# Worker keys: those of its kind (daemon_kinds: queue:work options, command, ...), then supervisor-side settings.
ARTISAN_OPTIONS = daemon_kinds.QUEUE_OPTIONS
WORKER_KEYS = frozenset(
    list(daemon_kinds.KIND_KEYS)
    + ["name", "kind", "numprocs", "log", "stopwaitsecs", "user", "state",
       "priority", "environment", "extra_args", "supervisor_options", "autostart", "startsecs",
       "startretries", "nice", "ionice_class", "ionice_level", "weight"])
# queue:work options the role renders from a worker's own keys; extra_args must not repeat them.
ROLE_FLAGS = dict([(flag, key) for key, flag in ARTISAN_OPTIONS] + [("--queue", "queue"), ("--force", "force")])
POSITIVE_INTS = ("sleep", "tries", "max_time", "memory", "timeout", "startretries", "stopwaitsecs")
NON_NEGATIVE_INTS = ("max_jobs", "backoff", "rest", "priority", "startsecs")

# Every [program:x] option supervisor 4.x accepts (docs/configuration.rst).
SUPERVISOR_PROGRAM_OPTIONS = frozenset([
    "command", "process_name", "numprocs", "numprocs_start", "priority", "autostart", "startsecs",
    "startretries", "autorestart", "exitcodes", "stopsignal", "stopwaitsecs", "stopasgroup",
    "killasgroup", "user", "redirect_stderr", "stdout_logfile", "stdout_logfile_maxbytes",
    "stdout_logfile_backups", "stdout_capture_maxbytes", "stdout_events_enabled", "stdout_syslog",
    "stderr_logfile", "stderr_logfile_maxbytes", "stderr_logfile_backups", "stderr_capture_maxbytes",
    "stderr_events_enabled", "stderr_syslog", "environment", "directory", "umask", "serverurl",
])
# Set from structured keys; passing them through would silently fight those keys.
STRUCTURED_OPTIONS = frozenset(["command", "numprocs", "user", "directory", "stdout_logfile", "environment"])

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# RawConfigParser(inline_comment_prefixes=(';', '#')) cuts a value at whitespace + ';'/'#'.
INLINE_COMMENT_RE = re.compile(r"\s[;#]")
# Laravel's own --timeout default: a job runs at most this long unless it says otherwise.
LARAVEL_DEFAULT_TIMEOUT = 60


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def queue_list(worker):
    queue = worker.get("queue")
    return list(queue) if isinstance(queue, (list, tuple)) else [queue]


def auto_numprocs(weight, cpus, memory_mb):
    """Processes for 'numprocs: auto', from the host's CPUs and memory (GB rounded).

    light (mail, notifications): half the CPUs, at most one per 2 GB, 1..4.
    heavy (FFmpeg encodes): one per 2 CPUs beyond the first two, one per 2 GB beyond
    the first 2 GB, 1..3. So 2 CPUs/2 GB gives 1 and 1, 4/4 gives 2 and 1, 6/6 gives 3
    and 2, and 8+ CPUs with 8+ GB gives 4 and 3.
    """
    gigabytes = int(round((memory_mb or 0) / 1024.0))
    cpus = cpus or 1
    if weight == "heavy":
        return max(1, min(3, (cpus - 2) // 2, (gigabytes - 2) // 2))
    return max(1, min(4, cpus // 2, gigabytes // 2))


def numprocs(worker, settings):
    """The worker's own program's process count: 'auto' resolved for this host; a range's minimum."""
    value = worker.get("numprocs", 1)
    if isinstance(value, dict):
        return value["min"]
    if value == "auto":
        return auto_numprocs(worker.get("weight", "light"), settings.get("cpus"), settings.get("memory_mb"))
    return value


def scale_range(worker, settings):
    """How a worker with numprocs: {min, max, ...} scales on this host, or None for a fixed count.

    max: auto is the numprocs: auto size of the worker's weight on this host, and never below min: a heavy
    worker is never scaled past what the host holds. Returns min, max and how to scale (SCALE_KEYS), and
    its spare program's name."""
    value = worker.get("numprocs", 1)
    if not isinstance(value, dict):
        return None
    found = dict(SCALE_DEFAULTS, **value)
    if found["max"] == "auto":
        found["max"] = max(found["min"], auto_numprocs(worker.get("weight", "light"), settings.get("cpus"),
                                                       settings.get("memory_mb")))
    found["spare"] = spare_name(worker["name"])
    return dict((key, found[key]) for key in SCALE_KEYS + ("spare",))


def spare_name(name):
    return name + SPARE_SUFFIX


def desired_state(worker):
    """started, stopped or absent: what the worker's processes should be doing.

    present means started, except for a worker with autostart: false, which is then kept
    stopped (it is started by hand).
    """
    value = worker.get("state", "present")
    if value == "present":
        return "started" if worker.get("autostart", True) else "stopped"
    return value


def select(workers, which):
    """The workers that are 'present' (not absent), 'absent', or 'autostarted' (to be running)."""
    if which not in ("present", "absent", "autostarted"):
        raise ValueError("select() takes present, absent or autostarted, not %r" % which)
    if which == "absent":
        return [w for w in workers or [] if desired_state(w) == "absent"]
    if which == "autostarted":
        return [w for w in workers or [] if desired_state(w) == "started"]
    return [w for w in workers or [] if desired_state(w) != "absent"]


def job_timeout(worker):
    """The longest a job of this worker may run: --timeout, or Laravel's default."""
    return worker.get("timeout") or LARAVEL_DEFAULT_TIMEOUT


def stopwaitsecs(worker, margin):
    """How long supervisor waits for a worker to finish its job before SIGKILL.

    Without an explicit --timeout a job class may set its own $timeout, so the
    bound is --max-time (the worker recycles after it) rather than Laravel's 60 s.
    Other kinds: their timeout (Horizon's longest supervisor timeout), or Laravel's 60 s.
    """
    if worker.get("stopwaitsecs"):
        return worker["stopwaitsecs"]
    longest = worker.get("timeout") or (worker.get("max_time") if daemon_kinds.kind_of(worker) == "queue" else None) \
        or LARAVEL_DEFAULT_TIMEOUT
    return longest + margin


def escape_value(value):
    """Escape '%' for supervisor's %(name)s expansion."""
    return str(value).replace("%", "%%")


IONICE_CLASSES = {"realtime": "1", "best-effort": "2", "idle": "3"}


def priority_prefix(worker, settings):
    """nice/ionice in front of php: both exec, so supervisor still signals the PHP worker itself."""
    argv = []
    if worker.get("nice") is not None:
        argv += [settings.get("nice") or "nice", "-n", str(worker["nice"])]
    if worker.get("ionice_class"):
        argv += [settings.get("ionice") or "ionice", "-c", IONICE_CLASSES[worker["ionice_class"]]]
        if worker.get("ionice_level") is not None and worker["ionice_class"] != "idle":
            argv += ["-n", str(worker["ionice_level"])]
    return argv


def artisan_argv(worker, settings):
    """The program's whole command line: nice/ionice, then what its kind runs (daemon_kinds)."""
    artisan = settings["app_dir"].rstrip("/") + "/artisan"
    return priority_prefix(worker, settings) + daemon_kinds.argv(worker, settings, artisan)


def command_line(argv):
    """A command= value: shlex-quoted words (supervisor splits with shlex), '%' escaped."""
    return escape_value(" ".join(_shlex_quote(str(arg)) for arg in argv))


def environment_value(env):
    """environment=KEY="value",... that supervisor reads back byte for byte.

    supervisor splits the option with a non-POSIX shlex: a quoted value runs to the
    next quote of the same kind, with no escape processing (a backslash is literal),
    and the quotes at both ends are stripped. So a value is quoted with '"', or with
    "'" when it contains '"'; '%' is doubled for supervisor's %(name)s expansion.
    Values environment_problem() refuses cannot be written this way.
    """
    items = []
    for key in sorted(env):
        value = str(env[key])
        quote = "'" if '"' in value else '"'
        items.append("%s=%s%s%s" % (key, quote, value, quote))
    return escape_value(",".join(items))


def environment_problem(value):
    """Why supervisor's environment= cannot carry this value (as its string form), or None.

    The reasons come from how supervisor reads the option: RawConfigParser cuts a
    line at whitespace + ';'/'#' even inside quotes, and ends it at a line break;
    after each included file it replaces '%(here)s' in every raw value, before
    '%%' is unescaped; dict_of_key_value_pairs quotes a value with ' or " (it
    cannot hold the quote it is written in) and strips every ' and " from both
    ends of it; the process environment is C strings.
    """
    text = str(value)
    if "\n" in text or "\r" in text:
        return "contains a line break, which would end the supervisor option: remove it"
    if "\0" in text:
        return "contains a NUL character, which no process environment can carry: remove it"
    if "'" in text and '"' in text:
        return ("contains both ' and \", which supervisor's environment= cannot carry (a value is quoted "
                "with one kind and cannot contain it): drop one kind, or have the application read the "
                "value from a file")
    if text[:1] in ("'", '"') or text[-1:] in ("'", '"'):
        return ("starts or ends with a quote character, which supervisor strips from environment= "
                "values: remove it, or add the quotes in the application")
    if INLINE_COMMENT_RE.search(text):
        return ("contains whitespace followed by ';' or '#', which supervisor's config parser cuts off "
                "as a comment even inside quotes: remove the whitespace before it")
    if "%(here)s" in text:
        return ("contains '%(here)s', which supervisor replaces with the config file's directory even "
                "when escaped: write it some other way, e.g. build it in the application")
    return None


def log_path(worker, settings):
    log = worker.get("log") or "%s/%s.log" % ((settings.get("log_dir") or "storage/logs").rstrip("/"), worker["name"])
    return log if log.startswith("/") else settings["app_dir"].rstrip("/") + "/" + log


def _bool(value):
    return "true" if value else "false"


def program_options(worker, settings):
    """The ordered [program:NAME] options for one worker, as (key, value) pairs."""
    user = worker.get("user") or settings["user"]
    options = [
        ("command", command_line(artisan_argv(worker, settings))),
        ("directory", escape_value(settings["app_dir"])),
        ("process_name", "%(program_name)s_%(process_num)02d"),
        ("numprocs", numprocs(worker, settings)),
        ("user", escape_value(user)),
        ("autostart", _bool(worker.get("autostart", True))),
        # Laravel workers exit 0 when they recycle (--max-time, --max-jobs, queue:restart):
        # supervisor's default 'unexpected' would leave them down.
        ("autorestart", "true"),
        # A PHP worker that cannot boot or reach its queue dies within a few seconds;
        # supervisor's default of 1 s would call it RUNNING first on a loaded host.
        ("startsecs", worker.get("startsecs", 5)),
        ("startretries", worker.get("startretries", 3)),
        ("stopsignal", "TERM"),
        ("stopwaitsecs", stopwaitsecs(worker, settings.get("stopwait_margin", 30))),
        # TERM goes to the worker alone: Laravel then finishes the running job, ffmpeg
        # included (a TERM to the whole group, stopasgroup, makes ffmpeg exit 255 and the
        # job fail). Only when stopwaitsecs runs out is the whole group KILLed.
        ("stopasgroup", "false"),
        ("killasgroup", "true"),
        ("redirect_stderr", "true"),
        ("stdout_logfile", escape_value(log_path(worker, settings))),
        ("stdout_logfile_maxbytes", settings.get("log_maxbytes", "50MB")),
        ("stdout_logfile_backups", settings.get("log_backups", 5)),
    ]
    if worker.get("priority") is not None:
        options.append(("priority", worker["priority"]))
    if worker.get("environment"):
        options.append(("environment", environment_value(worker["environment"])))
    passthrough = dict(worker.get("supervisor_options") or {})
    options = [(key, passthrough.pop(key)) if key in passthrough else (key, value) for key, value in options]
    options.extend(sorted(passthrough.items()))
    return [[key, _bool(value) if isinstance(value, bool) else value] for key, value in options]


def spare_options(worker, settings):
    """The spare program of a scaled worker: the same worker, numbered on from its minimum (its processes are
    NAME_01, ... beside NAME_00), never started by supervisord itself: the scaler starts and stops them."""
    scale = scale_range(worker, settings)
    options = dict(program_options(worker, settings))
    options.update(process_name=worker["name"] + "_%(process_num)02d", numprocs=scale["max"] - scale["min"],
                   numprocs_start=scale["min"], autostart="false")
    return [[key, value] for key, value in options.items()]


def render_spare(worker, settings):
    lines = [managed_marker(settings), "[program:%s]" % spare_name(worker["name"])]
    lines += ["%s=%s" % (key, value) for key, value in spare_options(worker, settings)]
    return "\n".join(lines) + "\n"


def managed_marker(settings):
    return program_state.marker(settings.get("owner") or DEFAULT_OWNER) + " Local changes are overwritten."


def render_program(worker, settings):
    """The whole program file text."""
    lines = [managed_marker(settings), "[program:%s]" % worker["name"]]
    lines += ["%s=%s" % (key, value) for key, value in program_options(worker, settings)]
    return "\n".join(lines) + "\n"


def _check_text(errors, where, value):
    text = str(value)
    if "\n" in text or "\r" in text:
        errors.append("%s contains a line break, which would end the supervisor option: remove it" % where)
    elif INLINE_COMMENT_RE.search(text):
        errors.append("%s = %r contains ' ;' or ' #', which supervisor reads as the start of a comment: "
                      "remove the space before it" % (where, text))


SETTING_VARS = {"app_dir": "queue_workers_app_dir", "php": "queue_workers_php", "user": "queue_workers_user",
                "nice": "queue_workers_nice_path", "ionice": "queue_workers_ionice_path"}


def settings_errors(settings, workers=None, names=None):
    """Errors in the role-wide settings, each naming the variable (names: key -> variable) and the fix."""
    names = dict(SETTING_VARS, **(names or {}))
    errors = []
    if not settings.get("php"):
        errors.append("%s is empty: set it to the absolute path of php (e.g. /usr/bin/php, or a "
                      "panel's /www/server/php/82/bin/php)" % names["php"])
    for key in ("app_dir", "php", "nice", "ionice"):
        var = names[key]
        value = settings.get(key)
        if key != "app_dir" and not value:
            continue
        # In a container supervisor finds a bare 'php' on its PATH itself (php_on_path).
        bare_ok = key == "php" and settings.get("php_on_path") and "/" not in str(value)
        if not value or not (str(value).startswith("/") or bare_ok):
            errors.append("%s = %r must be an absolute path" % (var, value))
        else:
            _check_text(errors, var, value)
    if not settings.get("user"):
        errors.append("%s must name the user the workers run as (e.g. www-data)" % names["user"])
    maxbytes = settings.get("log_maxbytes", "50MB")
    if not re.match(r"^[0-9]+(KB|MB|GB)?$", str(maxbytes), re.IGNORECASE):
        errors.append("queue_workers_log_maxbytes = %r must be a size supervisor reads: a number of bytes, or a number "
                      "followed by KB, MB or GB with no space (e.g. 50MB)" % (maxbytes,))
    backups = settings.get("log_backups", 5)
    if not _is_int(backups) or backups < 0:
        errors.append("queue_workers_log_backups = %r must be a whole number >= 0 (0 keeps no rotated log)" % (backups,))
    margin = settings.get("stopwait_margin", 30)
    if not _is_int(margin) or margin < 0:
        errors.append("queue_workers_stopwait_margin = %r must be a whole number >= 0: a negative margin gives a "
                      "stopwaitsecs below the job's time, and supervisor would SIGKILL jobs on every deploy" % (margin,))
    return errors


def range_errors(worker, where, is_queue=True):
    """Problems in numprocs: {min, max, clear_seconds, step, cooldown}, each naming the key and the fix."""
    value = worker["numprocs"]
    where = "%s.numprocs" % where
    if not is_queue:
        if daemon_kinds.KINDS.get(daemon_kinds.kind_of(worker), {}).get("single"):
            return []  # its kind runs one process, which kind_errors says
        return ["%s is a range, but only queue workers scale with their backlog (kind %s): give a whole number"
                % (where, daemon_kinds.kind_of(worker))]
    errors = []
    unknown = sorted(set(value) - set(SCALE_KEYS))
    if unknown:
        errors.append("%s has unknown keys %s; a range takes %s" % (where, ", ".join(map(str, unknown)), ", ".join(SCALE_KEYS)))
    low, high = value.get("min"), value.get("max")
    if not _is_int(low) or not 1 <= low <= 64:
        errors.append("%s.min = %r must be a whole number from 1 to 64: the processes that always run" % (where, low))
    if high != "auto" and (not _is_int(high) or not 1 <= high <= 64):
        errors.append("%s.max = %r must be a whole number from 1 to 64, or auto (the host's numprocs: auto size)"
                      % (where, high))
    elif _is_int(low) and _is_int(high) and high <= low:
        errors.append("%s: max (%d) must be above min (%d); for a fixed count set numprocs: %d" % (where, high, low, low))
    for key, least, what in (("clear_seconds", 1, "the time to clear the backlog in"),
                             ("step", 1, "the processes started or stopped at a time"),
                             ("cooldown", 0, "the seconds between two scaling steps")):
        if key in value and (not _is_int(value[key]) or value[key] < least):
            errors.append("%s.%s = %r must be a whole number >= %d (%s)" % (where, key, value[key], least, what))
    name = worker.get("name")
    if isinstance(name, str) and len(spare_name(name)) > 64:
        errors.append("%s: the name of a scaled worker is at most %d characters (its spare program is %s)"
                      % (where, 64 - len(SPARE_SUFFIX), spare_name(name)))
    return errors


def worker_errors(workers, margin=30, allow_root=False, default_user=None, retry_after=0, var="queue_workers_programs"):
    """Every problem in a list of worker definitions, each naming the variable and the fix."""
    if not isinstance(workers, (list, tuple)):
        return ["%s must be a list of worker definitions, got %s" % (var, type(workers).__name__)]
    errors = []
    seen = set()
    for index, worker in enumerate(workers):
        where = "%s[%d]" % (var, index)
        if not isinstance(worker, dict):
            errors.append("%s must be a mapping with at least name and queue, got %r" % (where, worker))
            continue
        name = worker.get("name")
        if name is not None:
            where = "%s[%d] (%s)" % (var, index, name)
        unknown = sorted(set(worker) - WORKER_KEYS)
        if unknown:
            errors.append("%s has unknown keys %s; allowed keys: %s (supervisor options go in supervisor_options)"
                          % (where, ", ".join(unknown), ", ".join(sorted(WORKER_KEYS))))
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append("%s.name = %r must be 1-64 letters, digits or '-', starting with a letter or digit "
                          "(no '_': panels split program names at it)" % (where, name))
        elif name in seen:
            errors.append("%s.name %r is used twice: program names must be unique" % (where, name))
        else:
            seen.add(name)
        if worker.get("state", "present") not in WORKER_STATES:
            errors.append("%s.state = %r must be one of %s" % (where, worker.get("state"), ", ".join(WORKER_STATES)))
        if worker.get("state") == "absent":
            continue
        kind_problems = daemon_kinds.kind_errors(worker, where)
        errors.extend(kind_problems)
        is_queue = daemon_kinds.kind_of(worker) == "queue"
        queues = queue_list(worker)
        if is_queue and (not queues or not all(isinstance(q, str) and QUEUE_RE.match(q) for q in queues)):
            errors.append("%s.queue = %r must be a queue name (letters, digits, '_', '-', '.', ':') or a list of them"
                          % (where, worker.get("queue")))
        for key in POSITIVE_INTS + NON_NEGATIVE_INTS:
            if key not in worker or worker[key] is None:
                continue
            value = worker[key]
            low = 1 if key in POSITIVE_INTS else 0
            if not _is_int(value) or value < low:
                errors.append("%s.%s = %r must be a whole number >= %d" % (where, key, value, low))
        if worker.get("nice") is not None and (not _is_int(worker["nice"]) or not -20 <= worker["nice"] <= 19):
            errors.append("%s.nice = %r must be a whole number from -20 to 19 (10 lowers a CPU-heavy worker)" % (where, worker["nice"]))
        runs_as = worker.get("user") or default_user
        if runs_as != "root" and _is_int(worker.get("nice")) and worker["nice"] < 0:
            errors.append("%s.nice = %d needs root, but the worker runs as %s: nice would warn and run it at 0. Use 0 to "
                          "19 (a higher number is a lower priority)" % (where, worker["nice"], runs_as))
        if runs_as != "root" and worker.get("ionice_class") == "realtime":
            errors.append("%s.ionice_class = realtime needs root, but the worker runs as %s: ionice would refuse to "
                          "start it. Use best-effort or idle" % (where, runs_as))
        if worker.get("ionice_class") is not None and worker["ionice_class"] not in IONICE_CLASSES:
            errors.append("%s.ionice_class = %r must be one of %s" % (where, worker["ionice_class"], ", ".join(sorted(IONICE_CLASSES))))
        level = worker.get("ionice_level")
        if level is not None and (not _is_int(level) or not 0 <= level <= 7):
            errors.append("%s.ionice_level = %r must be a whole number from 0 to 7" % (where, level))
        count = worker.get("numprocs", 1)
        if isinstance(count, dict):
            errors.extend(range_errors(worker, where, is_queue))
        elif count != "auto" and (not _is_int(count) or not 1 <= count <= 64):
            errors.append("%s.numprocs = %r must be a whole number from 1 to 64, auto (sized from the host's CPUs "
                          "and memory), or a range {min: 1, max: 4} (scaled with the backlog)" % (where, count))
        if worker.get("weight", "light") not in ("light", "heavy"):
            errors.append("%s.weight = %r must be light or heavy (how numprocs: auto sizes it)" % (where, worker.get("weight")))
        wait = worker.get("stopwaitsecs")
        if _is_int(wait) and wait >= 1 and wait < job_timeout(worker) + margin:
            errors.append(
                "%s.stopwaitsecs = %d is shorter than the job timeout (%d s) plus the %d s margin: supervisor would "
                "SIGKILL a running job on every deploy. Set stopwaitsecs to at least %d or leave it unset"
                % (where, wait, job_timeout(worker), margin, job_timeout(worker) + margin))
        if retry_after and _is_int(worker.get("timeout", 0)) and job_timeout(worker) >= retry_after:
            errors.append(
                "%s: its job timeout (%d s) is not below the connection's retry_after (%d s, queue_workers_retry_after), "
                "so a long job would be picked up a second time while it still runs. Set timeout below %d, or raise "
                "retry_after in config/queue.php" % (where, job_timeout(worker), retry_after, retry_after))
        user = worker.get("user") or default_user
        if user == "root" and not allow_root:
            errors.append("%s runs as root; queue workers must not. Set user (or queue_workers_user) to the app's user, "
                          "or queue_workers_allow_root: true if you really mean it" % where)
        for key in ("connection", "log", "user"):
            if worker.get(key) is not None:
                _check_text(errors, "%s.%s" % (where, key), worker[key])
        env = worker.get("environment") or {}
        if not isinstance(env, dict):
            errors.append("%s.environment must be a mapping of NAME: value" % where)
        else:
            for key, value in env.items():
                if not ENV_KEY_RE.match(str(key)):
                    errors.append("%s.environment key %r is not a valid variable name" % (where, key))
                problem = environment_problem(value)
                if problem:
                    errors.append("%s.environment.%s %s" % (where, key, problem))
        for key in ("command", "restart_command"):
            words = worker.get(key)
            if isinstance(words, (list, tuple)):
                for word in words:
                    _check_text(errors, "%s.%s" % (where, key), word)
        extra = worker.get("extra_args") or []
        if not isinstance(extra, (list, tuple)):
            errors.append("%s.extra_args must be a list of arguments, e.g. ['--rest=1']" % where)
        else:
            for arg in extra:
                _check_text(errors, "%s.extra_args" % where, arg)
                flag = str(arg).split("=", 1)[0]
                if is_queue and flag in ROLE_FLAGS:
                    errors.append("%s.extra_args sets %s, which the role sets itself from the worker's %s key: use "
                                  "that key (an extra %s would silently override it)" % (where, flag, ROLE_FLAGS[flag], flag))
        passthrough = worker.get("supervisor_options") or {}
        if not isinstance(passthrough, dict):
            errors.append("%s.supervisor_options must be a mapping of supervisor option: value" % where)
            continue
        if passthrough.get("stopasgroup") in (True, "true") and passthrough.get("killasgroup") in (False, "false"):
            errors.append("%s.supervisor_options sets stopasgroup without killasgroup, which supervisor refuses: "
                          "drop killasgroup: false" % where)
        for key, value in passthrough.items():
            if key in STRUCTURED_OPTIONS:
                errors.append("%s.supervisor_options.%s is set by the role; use the worker's own key instead" % (where, key))
            elif key not in SUPERVISOR_PROGRAM_OPTIONS:
                errors.append("%s.supervisor_options.%s is not a supervisor [program:x] option" % (where, key))
            else:
                _check_text(errors, "%s.supervisor_options.%s" % (where, key), value)
    for index, worker in enumerate(workers):
        if isinstance(worker, dict) and isinstance(worker.get("numprocs"), dict) and isinstance(worker.get("name"), str) \
                and spare_name(worker["name"]) in seen:
            errors.append("%s[%d] (%s): its numprocs is a range, so its spare processes run as program %s, which is "
                          "also a worker's name: rename that worker" % (var, index, worker["name"], spare_name(worker["name"])))
    return errors


# A supervisord.conf for an app's own 'queue' container: supervisord in the foreground
# (the container's main process), its own log and the workers' logs on the container's
# stdout/stderr (docker logs), no include directory, a socket for supervisorctl.
STANDALONE_HEADER = """\
[supervisord]
nodaemon=true
user=root
; nodaemon already logs to stdout; a log file as well would only fill the container.
logfile=/dev/null
logfile_maxbytes=0
pidfile=/tmp/supervisord.pid

[unix_http_server]
file=/tmp/supervisor.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix:///tmp/supervisor.sock
"""
STANDALONE_LOGS = [
    ("redirect_stderr", "false"),
    ("stdout_logfile", "/dev/stdout"),
    ("stdout_logfile_maxbytes", 0),
    ("stderr_logfile", "/dev/stderr"),
    ("stderr_logfile_maxbytes", 0),
]


def render_standalone(workers, settings):
    """The whole supervisord.conf of a queue container, from the same worker definitions."""
    parts = [managed_marker(settings), STANDALONE_HEADER]
    replaced = set(dict(STANDALONE_LOGS)) | set(["stdout_logfile_backups"])
    for worker in select(workers, "present"):
        options = [(k, v) for k, v in program_options(worker, settings) if k not in replaced]
        lines = ["[program:%s]" % worker["name"]]
        lines += ["%s=%s" % (key, value) for key, value in options + STANDALONE_LOGS]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def desired_programs(workers, settings, content=True):
    """The desired set for elms.queue_workers.supervisor_programs: name, content, state, stopwaitsecs.

    Without content, what elms.queue_workers.supervisor_apply takes as its programs.
    """
    found = []
    for worker in workers or []:
        wanted = desired_state(worker)
        if wanted == "absent":
            found.append({"name": worker["name"], "state": "absent"})
            if isinstance(worker.get("numprocs"), dict):
                found.append({"name": spare_name(worker["name"]), "state": "absent"})
            continue
        wait = stopwaitsecs(worker, settings.get("stopwait_margin", 30))
        found.append({"name": worker["name"], "state": wanted, "stopwaitsecs": wait})
        if content:
            found[-1]["content"] = render_program(worker, settings)
        scale = scale_range(worker, settings)
        if scale is not None:
            # Without room above the minimum on this host (max: auto), there is nothing to scale: no spare program,
            # and a spare program of an earlier run is removed as no longer listed.
            if scale["max"] > scale["min"]:
                found.append({"name": scale["spare"], "state": SCALED if wanted == "started" else wanted,
                              "stopwaitsecs": wait})
                if content:
                    found[-1]["content"] = render_spare(worker, settings)
    return found


def host_requirements(workers, settings, names=None):
    """What the host must have before any worker is written (each with the variable to fix, names:
    key -> variable), and the log directories to create: {"require": [...], "directories": [...]}."""
    names = dict(SETTING_VARS, **(names or {}))
    present = select(workers, "present")
    require = [{"kind": "file", "value": settings["app_dir"].rstrip("/") + "/artisan",
                "msg": "%s/artisan does not exist: set %s to the Laravel app root" % (settings["app_dir"].rstrip("/"), names["app_dir"])}]
    if not settings.get("php_on_path"):
        require.append({"kind": "executable", "value": settings["php"],
                        "msg": "php %s is not an executable file: set %s to php's absolute path" % (settings["php"], names["php"])})
    users = []
    for worker in present:
        user = worker.get("user") or settings["user"]
        if user not in users:
            users.append(user)
    for user in users:
        require.append({"kind": "user", "value": user,
                        "msg": "user %s does not exist: create it, or set %s (or the worker's user)" % (user, names["user"])})
    for key, tool in (("nice", "nice"), ("ionice_class", "ionice")):
        if any(w.get(key) is not None for w in present):
            path = settings.get(tool) or tool
            require.append({"kind": "executable", "value": path,
                            "msg": "%s is not an executable file, but a worker sets %s: install it (coreutils/util-linux), "
                                   "set queue_workers_%s_path, or remove %s from the workers" % (path, key, tool, key)})
    for worker in present:
        for key in ("command", "restart_command"):
            words = worker.get(key) if daemon_kinds.kind_of(worker) == "command" else None
            if words and str(words[0]).startswith("/"):
                require.append({"kind": "executable", "value": str(words[0]),
                                "msg": "%s is not an executable file, but program %s runs it (%s): install it or fix the path"
                                       % (words[0], worker["name"], key)})
    directories = []
    for worker in present:
        folder = log_path(worker, settings).rsplit("/", 1)[0] or "/"
        owner = worker.get("user") or settings["user"]
        if folder not in [d["path"] for d in directories]:
            directories.append({"path": folder, "owner": owner, "mode": "0755"})
    return {"require": require, "directories": directories}
