# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The long-running processes of a Laravel app, by kind: the one table that says how each runs.

A program's kind decides its command line, how many processes it may have, which of the
worker keys mean something for it, how it is recycled after a code deploy (a command that
asks it to finish its work and exit, or a stop and start through supervisor), and what the
diagnosis asks of it. Adding a kind is adding an entry here (and its name to the argument
spec's choices, which a unit test keeps in step).

  queue     php artisan queue:work CONNECTION --queue=... (the default kind)
            recycled with artisan queue:restart (each worker exits after its job)
  schedule  php artisan schedule:work: one process runs the app's scheduler every minute
            recycled through supervisor (it holds no job: a scheduled command it started
            goes on to its end, it is not its child's parent once stopped)
  horizon   php artisan horizon: one master process, its own workers under it
            recycled with artisan horizon:terminate (the master waits for its workers' jobs);
            timeout is the longest timeout of Horizon's supervisors (config/horizon.php)
  command   any other daemon: an artisan command (reverb:start, pulse:work, octane:start,
            your own) or an absolute binary; recycled with its restart_command when it has
            one (e.g. [reverb:restart]), else through supervisor (SIGTERM, stopwaitsecs)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# queue:work options rendered from a worker's keys (key, flag).
QUEUE_OPTIONS = (
    ("sleep", "--sleep"), ("tries", "--tries"), ("max_time", "--max-time"), ("max_jobs", "--max-jobs"),
    ("memory", "--memory"), ("timeout", "--timeout"), ("backoff", "--backoff"), ("rest", "--rest"),
)
# Keys that only mean something for queue:work.
QUEUE_KEYS = frozenset([key for key, _flag in QUEUE_OPTIONS] + ["queue", "connection", "force"])

# name: {single: one process only; requires / allows: kind-specific keys (allows adds to the
# common ones); restart: the artisan command (argv after 'php artisan') that recycles every
# program of this kind in an app, None: each through supervisor, "own": its restart_command
# or else through supervisor; probe: what the diagnosis runs for it}.
KINDS = {
    "queue": {
        "single": False,
        # queue is needed too; worker_programs checks it with the queue names' rules.
        "requires": (),
        "allows": QUEUE_KEYS,
        "restart": ["queue:restart"],
        "probe": "queue:work --once",
    },
    "schedule": {
        "single": True,
        "requires": (),
        "allows": frozenset(),
        "restart": None,
        "probe": "schedule:list",
    },
    "horizon": {
        "single": True,
        "requires": (),
        "allows": frozenset(["timeout"]),
        "restart": ["horizon:terminate"],
        "probe": "horizon:status",
    },
    "command": {
        "single": False,
        "requires": ("command",),
        "allows": frozenset(["command", "restart_command", "timeout"]),
        "restart": "own",
        "probe": None,
    },
}
DEFAULT_KIND = "queue"
# Every kind-specific key: a worker may set those its kind allows.
KIND_KEYS = frozenset(k for kind in KINDS.values() for k in kind["allows"]) | frozenset(["restart_command"])


def kind_of(worker):
    return worker.get("kind") or DEFAULT_KIND


def daemon_argv(words, php, artisan):
    """An artisan command's words (reverb:start --port=8080) run as php artisan ..., or an
    absolute binary's argv as it is."""
    words = [str(word) for word in words]
    if words and words[0].startswith("/"):
        return words
    return [php, artisan] + words


def argv(worker, settings, artisan):
    """The program's command line after any nice/ionice prefix."""
    kind = kind_of(worker)
    php = settings["php"]
    if kind == "queue":
        words = ["queue:work"]
        connection = worker.get("connection") or settings.get("connection")
        if connection:
            words.append(connection)
        queue = worker.get("queue")
        words.append("--queue=" + ",".join(list(queue) if isinstance(queue, (list, tuple)) else [queue]))
        for key, flag in QUEUE_OPTIONS:
            if worker.get(key) is not None:
                words.append("%s=%s" % (flag, worker[key]))
        if worker.get("force"):
            words.append("--force")
    elif kind == "schedule":
        words = ["schedule:work"]
    elif kind == "horizon":
        words = ["horizon"]
    else:
        words = list(worker.get("command") or [])
    return daemon_argv(list(words) + [str(arg) for arg in worker.get("extra_args") or []], php, artisan)


def restart_words(worker):
    """How a program of this worker is recycled: (artisan-or-binary words, None) to run a command,
    or (None, "supervisor") for a stop and start through supervisor."""
    kind = KINDS[kind_of(worker)]
    if kind["restart"] == "own":
        own = worker.get("restart_command")
        return (list(own), None) if own else (None, "supervisor")
    if kind["restart"] is None:
        return None, "supervisor"
    return list(kind["restart"]), None


def kind_errors(worker, where):
    """What this worker sets that its kind does not take, or lacks that it needs."""
    name = kind_of(worker)
    if name not in KINDS:
        return ["%s.kind = %r must be one of %s" % (where, name, ", ".join(sorted(KINDS)))]
    kind = KINDS[name]
    errors = []
    for key in kind["requires"]:
        if worker.get(key) in (None, "", []):
            errors.append("%s (kind %s) needs %s" % (where, name, key))
    foreign = sorted(key for key in KIND_KEYS - kind["allows"] if worker.get(key) not in (None, "", [], False))
    if foreign:
        errors.append("%s (kind %s) sets %s, which only mean%s something for %s: remove %s" % (
            where, name, ", ".join(foreign), "s" if len(foreign) == 1 else "",
            " or ".join(sorted(set(k for k, v in KINDS.items() if set(foreign) & v["allows"]))) or "other kinds",
            "it" if len(foreign) == 1 else "them"))
    if kind["single"] and worker.get("numprocs", 1) != 1:
        errors.append("%s (kind %s) runs as one process: numprocs = %r must be 1 (or unset)%s" % (
            where, name, worker.get("numprocs"),
            "; Horizon sizes its own workers in config/horizon.php" if name == "horizon" else
            "; a second scheduler would run every scheduled task twice" if name == "schedule" else ""))
    for key in ("command", "restart_command"):
        words = worker.get(key)
        if words in (None, "", []) or key not in kind["allows"]:
            continue
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, (str, int)) and str(w) for w in words):
            errors.append("%s.%s must be a list of words, e.g. [reverb:start, --port=8080] (an artisan command) or "
                          "[/usr/local/bin/daemon, --flag] (an absolute binary)" % (where, key))
        elif str(words[0]).startswith("-"):
            errors.append("%s.%s = %r starts with an option: its first word is an artisan command or an absolute "
                          "binary" % (where, key, list(words)))
        elif "/" in str(words[0]) and not str(words[0]).startswith("/"):
            errors.append("%s.%s: %r must be an absolute path (or an artisan command, without '/')" % (
                where, key, words[0]))
    return errors
