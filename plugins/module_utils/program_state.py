# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a desired set of supervisor programs with what a host has and runs.

Pure functions: the modules read the host (program files, supervisord's reloadConfig
answer, process states, orphans) and pass plain data in; what comes out says, per
program, what is to be done and why. Nothing here reads or changes the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.elms.queue_workers.plugins.module_utils import diagnosis

# The first line of every program file written for OWNER starts with this.
MARKER = "; Managed by Ansible (%s)."
# States in which a process needs no start: it runs, or supervisor is bringing it up.
UP_STATES = frozenset(["RUNNING", "STARTING", "BACKOFF"])
# States in which supervisor will not start it again by itself.
DOWN_STATES = frozenset(["STOPPED", "EXITED", "FATAL", "UNKNOWN"])
# scaled: the program exists, and neither the converge nor the apply starts or stops its processes (a scaled
# worker's spare processes, which the alert listener starts and stops with the backlog).
DESIRED_STATES = ("started", "stopped", "absent", "scaled")

_SECRET_RE = re.compile(r"^(environment\s*=).*$", re.MULTILINE)


def marker(owner):
    return MARKER % owner


def owned_by(text, owner):
    """Whether a program file's text was written for this owner (its first line is the marker)."""
    return (text or "").startswith(marker(owner))


_MARKER_RE = re.compile(r"^; Managed by Ansible \((.+?)\)\.(?: |$)", re.MULTILINE)


def owner_of(text):
    """The owner named by a program file's marker line, or None for a file without one."""
    found = _MARKER_RE.match(text or "")
    return found.group(1) if found else None


def digest(text):
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def masked(text):
    """A program file's text with environment values hidden, for diffs and messages."""
    return _SECRET_RE.sub(r"\1 (values hidden)", text or "")


def group_states(processes):
    """{group: [{name, state, pid, spawnerr}]} from supervisor.getAllProcessInfo()."""
    groups = {}
    for info in processes or []:
        groups.setdefault(info["group"], []).append({
            "name": "%s:%s" % (info["group"], info["name"]),
            "state": info.get("statename"),
            "pid": info.get("pid") or None,
            "spawnerr": info.get("spawnerr") or "",
        })
    return groups


def _paths(argv):
    """The absolute paths a command line names before its options: the binary and what it runs (php, artisan)."""
    found = []
    for word in argv:
        if word.startswith("-"):
            break
        if word.startswith("/"):
            found.append(word)
    return found


def _same_app(argv, command):
    """Whether a process's argv runs what a command runs: past the command's exec wrappers (nice, ionice), the same
    binary and the same absolute paths before the options (php and the app's artisan, or a daemon's binary)."""
    if not argv or argv[0] not in command:
        return False
    return _paths(argv) == _paths(command[command.index(argv[0]):])


def runs_this_program(argvs, content, name):
    """Whether the running processes of a group whose file is gone (argvs: their command lines, as /proc shows
    them) are this program's app's: each runs the binary and script the desired command runs (its options may
    differ: the program may have changed since). Processes that do not run (no command line) say nothing."""
    wanted, _error = diagnosis.file_commands(content, name, here="")
    seen = [argv for argv in argvs or [] if argv]
    if not seen:
        return True
    return bool(wanted) and all(any(_same_app(argv, command) for command in wanted) for argv in seen)


def plan(desired, files, loaded, processes, owner, purge=True, take_over=False, running=True, backed_up=(),
         owners=None, adopt=(), vanished=None):
    """What to do with each program, and what keeps the run from going on.

    desired: [{name, content, state, mode, uid, owner}] (state absent needs no content; owner
      defaults to the owner argument).
    files: {name: {path, text, mode, uid}} of the include directory (every file with the
      include extension; text may be None when unreadable).
    loaded: {"added": [...], "changed": [...], "removed": [...]} from reloadConfig before
      anything is written (groups whose file differs from what supervisord runs), or None
      when supervisord does not run or refused its config.
    processes: getAllProcessInfo() (empty when supervisord does not run).
    backed_up: names of programs of this owner that have a kept previous version: a group
      supervisord still runs whose file is gone is this owner's when it is among them (a
      run that removed the file and stopped before applying).
    owners: every owner this run speaks for (default: owner and the programs' owners); purge
      removes their files of programs not desired. A file marked for any other owner is never
      written or removed, take_over or not: a desired program of that name is refused.
    adopt: owners whose files count as the desired program's own, for the names desired only
      (an earlier marker of the same deployer); they are rewritten with the program's marker.
    vanished: {group: [argv, ...]} of groups supervisord runs whose file is gone (in loaded's
      removed): the command lines their processes run. A desired program of that name whose
      command runs the same binary and script is written back (supervisord then runs it on
      unchanged, no worker restarts); another app's is refused.
    Returns {"programs": {name: entry}, "errors": [...]} where entry has write (the file
    must be written), remove (the file must be deleted), apply (supervisord must load the
    group's file again: it was written now, or earlier and never applied), start / stop
    (processes to start or stop), action (one word for people) and reasons.
    """
    loaded = loaded or {"added": [], "changed": [], "removed": []}
    groups = group_states(processes)
    result, errors = {}, []
    wanted = {}
    for program in desired:
        wanted[program["name"]] = program
    owners = set(owners or []) | set([owner]) | set(p.get("owner") or owner for p in desired)
    for name, program in sorted(wanted.items()):
        state = program.get("state", "started")
        own = program.get("owner") or owner
        current = files.get(name)
        found_owner = owner_of(current.get("text")) if current is not None else None
        mine = current is not None and (found_owner == own or found_owner in adopt)
        entry = {"write": False, "remove": False, "apply": False, "start": [], "stop": [], "reasons": [],
                 "path": current["path"] if current else None}
        if current is not None and not mine and found_owner is not None:
            if state == "absent":
                # Another owner's program of that name: not ours to remove.
                entry["reasons"].append("%s belongs to %s" % (current["path"], found_owner))
                result[name] = _finish(entry, [])
                continue
            errors.append(
                "%s already belongs to %s (its first line is '%s'): program names are unique on a host, so "
                "rename this one (e.g. prefix it with its own app's name) or remove it from %s first"
                % (current["path"], found_owner, marker(found_owner), found_owner))
            continue
        if current is not None and not mine and not take_over and state != "absent":
            errors.append(
                "%s is a program file of someone else (its first line is not '%s'): rename the program, "
                "remove that file first, or allow taking it over" % (current["path"], marker(own)))
            continue
        gone = current is None and name in groups and name in loaded["removed"]
        if gone and state != "absent" and not runs_this_program((vanished or {}).get(name), program["content"], name):
            errors.append(
                "supervisor runs a program group named %s whose file is gone, and its processes run another command "
                "(%s): it is not this program's to write back. Rename the program, or remove that group first "
                "(supervisorctl remove %s, which stops its processes)" % (
                    name, " | ".join(" ".join(argv) for argv in (vanished or {}).get(name) or [] if argv), name))
            continue
        if current is None and name in groups and state != "absent" and not gone:
            errors.append(
                "supervisor already runs a program group named %s from a file outside the include directory: "
                "rename the program, or remove that group first" % name)
            continue
        if state == "absent":
            if current is not None and mine:
                entry.update(remove=True, apply=True)
                entry["reasons"].append("set to absent")
            elif name in groups and name in loaded["removed"]:
                entry["apply"] = True
                entry["reasons"].append("its file is gone but supervisord still runs it")
            result[name] = _finish(entry, groups.get(name))
            continue
        if gone:
            entry.update(write=True, apply=True)
            entry["reasons"].append("its file is gone while supervisord runs it: written back")
        elif current is None:
            entry.update(write=True, apply=True)
            entry["reasons"].append("no program file yet")
        elif (current.get("text") != program["content"] or current.get("mode") != program.get("mode", "0644")
              or current.get("uid") != program.get("uid", 0)):
            entry.update(write=True, apply=True)
            entry["reasons"].append("the file differs (%s)" % ", ".join(_differences(current, program)))
        if running and not entry["write"] and (name in loaded["added"] or name in loaded["changed"]):
            entry["apply"] = True
            entry["reasons"].append("the file was written but supervisord has not applied it")
        procs = groups.get(name, [])
        if running and not entry["apply"]:
            if not procs:
                entry["apply"] = True
                entry["reasons"].append("supervisord does not run it")
            elif state == "started":
                entry["start"] = [p["name"] for p in procs if p["state"] in DOWN_STATES]
                if entry["start"]:
                    entry["reasons"].append("%s not running (%s)" % (
                        ", ".join(entry["start"]), ", ".join(sorted(set(p["state"] for p in procs if p["state"] in DOWN_STATES)))))
            elif state == "stopped":
                entry["stop"] = [p["name"] for p in procs if p["state"] not in DOWN_STATES]
                if entry["stop"]:
                    entry["reasons"].append("%s should be stopped" % ", ".join(entry["stop"]))
        result[name] = _finish(entry, procs)
    if purge:
        for name, current in sorted(files.items()):
            if name in wanted or owner_of(current.get("text")) not in owners:
                continue
            entry = {"write": False, "remove": True, "apply": True, "start": [], "stop": [],
                     "reasons": ["no longer listed"], "path": current["path"]}
            result[name] = _finish(entry, groups.get(name))
        for name in sorted(set(loaded["removed"]) & set(backed_up)):
            if name not in result and name not in wanted:
                entry = {"write": False, "remove": False, "apply": True, "start": [], "stop": [],
                         "reasons": ["its file was removed but supervisord still runs it"], "path": None}
                result[name] = _finish(entry, groups.get(name))
                result[name]["action"] = "removed"
    return {"programs": result, "errors": errors}


def _differences(current, program):
    found = []
    if current.get("text") != program["content"]:
        found.append("text")
    if current.get("mode") != program.get("mode", "0644"):
        found.append("mode %s, not %s" % (current.get("mode"), program.get("mode", "0644")))
    if current.get("uid") != program.get("uid", 0):
        found.append("owner uid %s, not %s" % (current.get("uid"), program.get("uid", 0)))
    return found


def _finish(entry, procs):
    if entry["remove"]:
        action = "removed"
    elif entry["write"]:
        action = "changed" if entry["path"] else "added"
    elif entry["apply"]:
        action = "pending"
    elif entry["start"]:
        action = "started"
    elif entry["stop"]:
        action = "stopped"
    else:
        action = "unchanged"
    entry["action"] = action
    entry["processes"] = dict((p["name"], {"state": p["state"], "pid": p["pid"]}) for p in procs or [])
    return entry


def needs_apply(planned, supervisord_running=True, orphans=None):
    """Whether the handler has anything to do."""
    if not supervisord_running or orphans:
        return True
    return any(e["apply"] or e["start"] or e["stop"] for e in planned["programs"].values())
