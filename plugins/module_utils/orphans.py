# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find and stop the programs a dead supervisord left running.

Debian's supervisor.service has KillMode=process: when supervisord itself dies
(crash, kill -9) its programs are not killed. They are reparented to pid 1 (or a
subreaper) and keep running on old code, beside the new set the restarted
supervisord spawns.

How such a process is recognised follows supervisor/process.py (4.x),
Subprocess._spawn_as_child: the forked child calls os.setpgrp() (it leads its own
process group), and execve()s the program with SUPERVISOR_ENABLED=1,
SUPERVISOR_PROCESS_NAME, SUPERVISOR_GROUP_NAME and, when supervisord serves
XML-RPC, SUPERVISOR_SERVER_URL added to supervisord's own environment; its parent
is that supervisord. Children of a program (ffmpeg started by a PHP worker)
inherit the environment but are not group leaders, and their parent is the
program. So an orphan is: supervisor environment of a managed group, pgid == pid,
and a parent that is not a running supervisord.

Stopping mirrors what supervisord does for stopsignal=TERM with the default
stopasgroup=false: SIGTERM to the program only (a Laravel worker finishes its job
and exits 0; its ffmpeg is left to finish), and SIGKILL to the whole process group
once stopwaitsecs have passed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal
import time

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils.supervisor_detect import read_file as _read
from ansible_collections.elms.queue_workers.plugins.module_utils.supervisor_detect import read_link as _readlink

# supervisor's own default for [program:x] stopwaitsecs.
DEFAULT_STOPWAITSECS = 10
# How long a process may take to disappear after SIGKILL (a task in
# uninterruptible sleep dies only when its I/O returns).
KILL_GRACE_SECS = 5.0
POLL_INTERVAL = 0.1

try:
    _CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _CLOCK_TICKS = 100


def read_stat(pid, proc_root="/proc"):
    """State, parent, process group and start time of one process, or None when it is gone.

    Returns a dict with ``state`` (one letter, "Z" for a zombie), ``ppid``, ``pgid``
    and ``started`` (seconds since boot, from field 22 of /proc/PID/stat).
    """
    raw = _read("%s/%s/stat" % (proc_root, pid))
    if not raw:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces
    # and parentheses: split after the last ')'.
    fields = raw.decode("utf-8", "replace").rpartition(")")[2].split()
    try:
        return {
            "state": fields[0],
            "ppid": int(fields[1]),
            "pgid": int(fields[2]),
            "started": int(fields[19]) / float(_CLOCK_TICKS),
        }
    except (IndexError, ValueError):
        return None


def _ids(pid, proc_root):
    """(real uid, real gid) from /proc/PID/status, or (None, None)."""
    raw = _read("%s/%s/status" % (proc_root, pid))
    uid = gid = None
    for line in (raw or b"").decode("utf-8", "replace").splitlines():
        key, _sep, value = line.partition(":")
        if key in ("Uid", "Gid") and value.split():
            number = int(value.split()[0])
            if key == "Uid":
                uid = number
            else:
                gid = number
    return uid, gid


def _read_environ_as(pid, uid, gid, proc_root="/proc"):
    """Read /proc/PID/environ in a child that runs as uid/gid; None when that fails.

    The kernel lets a process read another's environ when their uids and gids
    match, without CAP_SYS_PTRACE. The child drops to the target's ids, copies the
    file into a pipe and _exit()s without running any of this interpreter's
    cleanup.
    """
    read_fd, write_fd = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if child == 0:
        status = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            source = os.open("%s/%s/environ" % (proc_root, pid), os.O_RDONLY)
            while True:
                chunk = os.read(source, 65536)
                if not chunk:
                    break
                while chunk:
                    chunk = chunk[os.write(write_fd, chunk):]
            status = 0
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    try:
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        status = _wait(child)
    if status != 0:
        return None
    return b"".join(chunks)


def _wait(child):
    """Reap a child; its exit code, or 1 when it did not exit normally."""
    while True:
        try:
            _pid, status = os.waitpid(child, 0)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return 1
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def read_environ(pid, proc_root="/proc"):
    """The environment of a process as a dict, or None when it cannot be read.

    Root in a container without CAP_SYS_PTRACE gets EACCES (or an empty file) for
    a process of another uid; it then reads the file as that process's uid. A
    process that vanished meanwhile gives None, never an exception.
    """
    try:
        with open("%s/%s/environ" % (proc_root, pid), "rb") as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            return None  # gone
        raw = b""
    if raw:
        return layout.parse_environ(raw)
    # Denied, or empty (also what a kernel thread or a zombie shows): try as the
    # process's own user, which only root can become.
    uid, gid = _ids(pid, proc_root)
    if uid is None or gid is None or uid == os.geteuid() or os.geteuid() != 0:
        return None
    raw = _read_environ_as(pid, uid, gid, proc_root)
    return layout.parse_environ(raw) if raw else None


_READ_ENVIRON = read_environ


def _normalise_url(url):
    if url and url.startswith("unix://"):
        return "unix://" + os.path.normpath(url[len("unix://"):])
    return url


def _is_supervisord(pid, proc_root):
    raw = _read("%s/%s/cmdline" % (proc_root, pid))
    if not raw:
        return False
    return layout.supervisord_invocation(layout.split_cmdline(raw)) is not None


def find_orphans(groups, proc_root="/proc", read_environ=None, server_url=None):
    """Programs of the given supervisor groups whose supervisord is gone.

    ``groups``: supervisor group names ([program:x] or [group:x] names).
    ``read_environ(pid, proc_root)`` returns a dict or None (default: this
    module's read_environ). ``server_url``: when given, only processes spawned by
    the supervisord serving that URL count (SUPERVISOR_SERVER_URL, which
    supervisord sets from [unix_http_server] file or [inet_http_server] port, or a
    program's own serverurl=); a process without that variable then never matches.

    Processes in another mount namespace than the caller's, zombies and processes
    whose environment cannot be read are left out.

    Returns a list sorted by pid of dicts: ``pid``, ``ppid``, ``pgid``, ``uid``
    (real uid), ``group``, ``process`` (SUPERVISOR_PROCESS_NAME), ``cmdline``
    (argv list) and ``started`` (seconds since boot, float: /proc/PID/stat field
    22 divided by the clock tick rate; stop_orphans compares it to tell a reused
    pid from the process that was found).
    """
    if read_environ is None:
        read_environ = _READ_ENVIRON
    wanted = set(groups)
    url = _normalise_url(server_url)
    own_ns = _readlink("%s/self/ns/mnt" % proc_root)
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = read_stat(pid, proc_root)
        # supervisord's setpgrp() makes every program its own group leader; a
        # zombie has exited (and its environ reads empty).
        if stat is None or stat["state"] in ("Z", "X") or stat["pgid"] != pid:
            continue
        ns = _readlink("%s/%s/ns/mnt" % (proc_root, pid))
        if own_ns and ns and ns != own_ns:
            continue
        # Checked before the environment: a managed program needs no environ read
        # (which may cost a fork, see read_environ).
        if _is_supervisord(stat["ppid"], proc_root):
            continue
        env = read_environ(pid, proc_root)
        if not env or "SUPERVISOR_ENABLED" not in env:
            continue
        group = env.get("SUPERVISOR_GROUP_NAME")
        if group not in wanted:
            continue
        if url is not None and _normalise_url(env.get("SUPERVISOR_SERVER_URL")) != url:
            continue
        raw_cmdline = _read("%s/%s/cmdline" % (proc_root, pid))
        if raw_cmdline is None:
            continue  # exited meanwhile
        uid, _gid = _ids(pid, proc_root)
        found.append({
            "pid": pid,
            "ppid": stat["ppid"],
            "pgid": stat["pgid"],
            "uid": uid,
            "group": group,
            "process": env.get("SUPERVISOR_PROCESS_NAME"),
            "cmdline": layout.split_cmdline(raw_cmdline),
            "started": stat["started"],
        })
    return sorted(found, key=lambda orphan: orphan["pid"])


def _still_running(orphan, proc_root):
    """True while the process found is alive: not gone, not a zombie, pid not reused.

    An orphan reparented to a pid 1 that does not reap stays a zombie: it has
    exited and counts as gone.
    """
    stat = read_stat(orphan["pid"], proc_root)
    if stat is None or stat["state"] in ("Z", "X"):
        return False
    started = orphan.get("started")
    if started is not None and abs(stat["started"] - started) > 0.5 / _CLOCK_TICKS:
        return False
    return True


def stop_orphans(orphans, stopwaitsecs, sleep=time.sleep, clock=time.monotonic, proc_root="/proc",
                 poll_interval=POLL_INTERVAL):
    """Stop orphans gracefully: SIGTERM to all at once, SIGKILL to a process group after stopwaitsecs.

    ``orphans``: dicts as find_orphans returns them. ``stopwaitsecs``: group ->
    seconds (supervisor's default, 10, for a group not in it). A process that is
    already gone, or whose pid now belongs to another process (its start time
    differs from ``started``), is not signalled.

    Returns, in the order given, per orphan: ``pid``, ``group``, ``process``,
    ``signal`` ("TERM" when it exited after SIGTERM, "KILL" when its process group
    was killed, None when it was not signalled), ``seconds`` (from the SIGTERM
    until it was gone; 0 when not signalled) and ``error`` (None, or why it could
    not be signalled or did not go away).
    """
    results = []
    pending = []
    for orphan in orphans:
        result = {"pid": orphan["pid"], "group": orphan.get("group"), "process": orphan.get("process"),
                  "signal": None, "seconds": 0.0, "error": None}
        results.append(result)
        if not _still_running(orphan, proc_root):
            continue
        try:
            os.kill(orphan["pid"], signal.SIGTERM)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                result["error"] = "cannot send SIGTERM to pid %s: %s" % (orphan["pid"], exc.strerror)
            continue
        result["signal"] = "TERM"
        pending.append((orphan, result))

    start = clock()
    killed_at = {}
    while pending:
        elapsed = clock() - start
        waiting = []
        for orphan, result in pending:
            if not _still_running(orphan, proc_root):
                result["seconds"] = round(elapsed, 3)
                continue
            pid = orphan["pid"]
            if pid in killed_at:
                if elapsed - killed_at[pid] >= KILL_GRACE_SECS:
                    result["seconds"] = round(elapsed, 3)
                    result["error"] = "pid %s still exists %.0f s after SIGKILL" % (pid, KILL_GRACE_SECS)
                    continue
            elif elapsed >= float(stopwaitsecs.get(orphan.get("group"), DEFAULT_STOPWAITSECS)):
                result["signal"] = "KILL"
                killed_at[pid] = elapsed
                try:
                    os.killpg(orphan.get("pgid") or pid, signal.SIGKILL)
                except OSError as exc:
                    if exc.errno != errno.ESRCH:
                        result["seconds"] = round(elapsed, 3)
                        result["error"] = "cannot send SIGKILL to process group %s: %s" % (
                            orphan.get("pgid") or pid, exc.strerror)
                        continue
            waiting.append((orphan, result))
        pending = waiting
        if pending:
            sleep(poll_interval)
    return results
