#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_programs
short_description: Converge one owner's supervisor programs with the host's live state, in one call
version_added: "0.2.0"
description:
  - Takes the desired set of supervisor programs of one owner (their file text, mode and whether each
    should run) and compares it, in one remote call, with what the host has and runs; writes what
    differs and reports what the handler (M(elms.queue_workers.supervisor_apply)) must apply.
  - Finds the live supervisord, its config and its include directory the way
    M(elms.queue_workers.supervisor_facts) does, and returns the same facts in RV(supervisor).
  - Compares the program files (text, mode, owner) with the desired ones; asks supervisord
    (C(reloadConfig), what C(supervisorctl reread) shows, which applies nothing) whether it runs what
    the files say, so that a file written by an earlier run that never applied it is applied now;
    compares each program's processes with its desired state (a C(started) program that is
    C(STOPPED), C(EXITED) or C(FATAL) is started; a C(stopped) one that runs is stopped); notices a
    supervisord that does not run (the handler starts it through its service); and looks for
    processes of these programs that supervisord does not manage (orphans of a supervisord that
    crashed or was killed; their environment names the program and their parent is no supervisord).
  - Files are written atomically; the previous version is kept in O(backup_dir) (outside the include
    directory, where supervisord would load it) until the handler has applied the new one, so that
    a refused or failing version can be put back. Files of programs no longer listed are removed
    (O(purge)), but only files whose first line is this owner's marker
    (C(; Managed by Ansible (OWNER).)); files of anyone else are never written or removed.
  - Every input check (O(require), name collisions with programs of someone else, a broken program
    file of someone else that blocks supervisor) fails the module before anything is written.
  - File texts and environment values never appear in the result; the diff hides C(environment=) values.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  owner:
    description:
      - Who the programs belong to. Every file this module writes starts with C(; Managed by Ansible (OWNER).),
        and only files that start so are ever changed or removed.
    type: str
    required: true
  owners:
    description:
      - Every owner this call speaks for, besides O(owner) and the owners of O(programs). With O(purge), their files
        of programs not in O(programs) are removed; so an owner listed here with no program left (an app being
        removed) loses all its programs, and no other owner's.
      - A file marked for an owner not in this set is never written or removed; a program of that name is refused,
        whatever O(take_over) says (program names are unique on a host).
    type: list
    elements: str
    default: []
  adopt:
    description:
      - Owners whose files count as their program's own owner's, for the names in O(programs) only (for example
        the marker an earlier version of the deployer wrote). Such a file is rewritten with its program's marker.
    type: list
    elements: str
    default: []
  programs:
    description: The desired programs, one file each, named C(NAME + include extension).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The program (and group) name, also the file name without extension.
        type: str
        required: true
      owner:
        description: Who this program belongs to, when not O(owner) (several apps deployed by one call).
        type: str
      content:
        description:
          - The whole file text. It must start with its owner's marker line, and define the group C(NAME)
            (C([program:NAME]), or C([eventlistener:NAME]) for an event listener).
          - Required unless O(programs[].state=absent).
          - Never shown in output (it may carry environment values), even at C(-vvv).
        type: str
      state:
        description:
          - C(started) runs the program, C(stopped) keeps its file but its processes stopped, C(absent)
            removes the file and stops the program.
          - C(scaled) keeps the file and leaves its processes as they are (neither started nor stopped) - a
            scaled worker's spare processes, which the alert listener starts and stops with the backlog.
        type: str
        choices: [started, stopped, absent, scaled]
        default: started
      mode:
        description: The file's mode.
        type: str
        default: "0644"
      stopwaitsecs:
        description:
          - How long an orphaned process of this program may take to finish its job after SIGTERM before
            its process group is killed. Default 10, supervisor's own default.
        type: int
        default: 10
  extra_files:
    description:
      - Files the programs need outside the include directory (a script a program runs, its config), kept in the same
        call - written atomically (owned by root) when their text or mode differs, before any program file, or removed
        with C(state=absent). Their text never appears in the output or the diff (it may hold secrets); a program that
        must restart when one changes carries a digest of it in its own text.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The whole text. Required unless O(extra_files[].state=absent). Never shown.
        type: str
      mode:
        description: The file's mode.
        type: str
        default: "0644"
      state:
        description: C(present) or C(absent).
        type: str
        choices: [present, absent]
        default: present
  purge:
    description: Remove this owner's files of programs not in O(programs).
    type: bool
    default: true
  take_over:
    description: Replace a file of the same name that this owner did not write (it is kept in O(backup_dir)).
    type: bool
    default: false
  require:
    description:
      - Checks made before anything is changed; each failing one fails the module with its O(require[].msg),
        all of them listed.
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: What must hold for O(require[].value).
        type: str
        choices: [user, executable, file, directory]
        required: true
      value:
        description: The user name or absolute path.
        type: str
        required: true
      msg:
        description: The message when it does not hold (say which variable to fix).
        type: str
        required: true
  directories:
    description:
      - Directories to create when missing, before any file is written (supervisord refuses a whole config
        whose log file directory is missing). Existing ones are left as they are.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      owner:
        description: Owner of a created directory.
        type: str
        default: root
      mode:
        description: Mode of a created directory.
        type: str
        default: "0755"
  backup_dir:
    description: Where previous versions of program files are kept until the new ones are applied.
    type: path
    default: /var/lib/supervisor-programs/backups
  not_ready:
    description:
      - What to do when supervisor is not installed or has no include directory. C(fail) fails naming the
        problem; C(report) changes nothing and returns RV(ready)=false, so that a playbook can install or
        configure supervisor first and call again.
    type: str
    choices: [fail, report]
    default: fail
  tools:
    description:
      - Commands to look up on C(PATH) in the same call (RV(tools)), with an id (C(realpath:size:mtime;libs)) that
        changes when the binary or a shared library it links is replaced.
    type: list
    elements: str
    default: []
  tool_libraries:
    description:
      - For a tool of O(tools), a file that lists the shared libraries it links, one resolved path per line in
        the order C(ldd) prints them (the M(elms.queue_workers.ffmpeg) role writes one beside its stamp). When it
        can be read, the id's library part is computed from the files it names instead of running C(ldd) - the
        same id, without loading the binary's hundreds of libraries on every call. A library added to the binary
        changes the binary or a library already listed, so the id still changes.
    type: dict
    default: {}
  files:
    description: Small text files (up to 64 KiB) to read in the same call (RV(files)).
    type: list
    elements: path
    default: []
  config_file:
    description: The supervisord config to use instead of detecting it (see M(elms.queue_workers.supervisor_facts)).
    type: path
  supervisorctl_path:
    description: The supervisorctl reported in RV(supervisor) (detected by default; this module itself uses the XML-RPC interface).
    type: path
  include_dir:
    description: Put program files here instead of the first C(DIR/*.EXT) include glob. Requires O(include_extension).
    type: path
  include_extension:
    description: File extension for program files. Requires O(include_dir).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would be written, removed, applied, started and stopped; writes nothing.
  diff_mode:
    support: full
    description: Shows each file's change, with C(environment=) values hidden.
notes:
  - Talks to supervisord through its XML-RPC interface on the socket of the config's C([supervisorctl]
    serverurl), with that section's credentials, like C(supervisorctl) does.
seealso:
  - module: elms.queue_workers.supervisor_apply
  - module: elms.queue_workers.supervisor_facts
"""

EXAMPLES = r"""
- name: Converge this team's programs
  elms.queue_workers.supervisor_programs:
    owner: acme.reports
    programs:
      - name: acme-report-builder
        content: |
          ; Managed by Ansible (acme.reports).
          [program:acme-report-builder]
          command=/usr/local/bin/report-builder --queue reports
          user=reports
          autorestart=true
          stopwaitsecs=600
        stopwaitsecs: 600
      - name: acme-old-builder
        state: absent
    require:
      - kind: user
        value: reports
        msg: the user reports does not exist; create it first
  register: reports_programs
  notify: Apply acme programs

# handlers:
- name: Apply acme programs
  elms.queue_workers.supervisor_apply:
    config_file: "{{ reports_programs.supervisor.config_file }}"
    service: "{{ reports_programs.supervisor.service_name }}"
    programs: "{{ reports_programs.apply }}"
    rollback: "{{ reports_programs.rollback }}"
"""

RETURN = r"""
ready:
  description: Whether supervisor is installed with an include directory (false only with O(not_ready=report)).
  returned: always
  type: bool
problems:
  description: Why supervisor is not ready, each with the fix.
  returned: always
  type: list
  elements: str
supervisor:
  description: The detected supervisor, the same keys as M(elms.queue_workers.supervisor_facts) returns.
  returned: always
  type: dict
pending:
  description: Whether the handler has something to apply (also true when nothing was written but supervisord
    runs an older version, a process is down, supervisord does not run, or orphans run).
  returned: always
  type: bool
programs:
  description:
    - Per program name, C(action) (C(unchanged), C(added), C(changed), C(removed), C(pending) (written earlier,
      not applied yet), C(started), C(stopped)), C(reasons), C(path), C(sha256) of the desired text, and the
      C(processes) supervisord runs for it (C(state), C(pid)). Never the text.
  returned: always
  type: dict
apply:
  description: What the handler needs about each program (name, state, stopwaitsecs); pass it to M(elms.queue_workers.supervisor_apply).
  returned: always
  type: list
  elements: dict
rollback:
  description:
    - The files this run wrote or removed, or that an earlier run wrote and supervisord has not applied yet, with
      the kept previous version (C(backup), null for a new file); pass it to M(elms.queue_workers.supervisor_apply).
  returned: always
  type: list
  elements: dict
orphans:
  description: Processes of these programs that no supervisord manages (pid, group, process, cmdline).
  returned: always
  type: list
  elements: dict
supervisord_running:
  description: Whether supervisord runs (when not, the handler starts it through its service).
  returned: always
  type: bool
warnings_blocked:
  description: supervisor's message when it cannot read its config but nothing of this owner needed applying.
  returned: when supervisor refused its config
  type: str
tools:
  description: For each of O(tools), C(path) (empty when not found) and C(id).
  returned: always
  type: dict
files:
  description: The text of each of O(files), null when missing.
  returned: always
  type: dict
extra_files:
  description: Per path of O(extra_files), C(action) (C(added), C(changed), C(removed), C(unchanged)). Never the text.
  returned: always
  type: dict
host:
  description: The host's C(cpus) (usable by this process) and C(memory_mb).
  returned: always
  type: dict
"""

import hashlib
import os
import pwd
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import orphans as orphan_procs
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as state
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_detect
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc


def _read(path, limit=None):
    try:
        with open(path, "r") as handle:
            return handle.read(limit) if limit else handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def command_line(pid):
    """A process's argv from /proc (readable by root), or None when it does not run."""
    if not pid:
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            words = handle.read().decode("utf-8", "replace").split("\0")
    except (IOError, OSError):
        return None
    return words[:-1] if words and words[-1] == "" else words


def read_files(folder, ext):
    """{name: {path, text, mode, uid}} of the include directory's program files."""
    found = {}
    if not folder or not ext or not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not entry.endswith(ext) or entry.startswith(".") or not os.path.isfile(path):
            continue
        info = os.stat(path)
        found[entry[:-len(ext)]] = {"path": path, "text": _read(path), "mode": "%04o" % (info.st_mode & 0o7777),
                                    "uid": info.st_uid}
    return found


def backups_of(backup_dir, name, ext):
    """This program's kept previous versions, newest first."""
    if not os.path.isdir(backup_dir):
        return []
    prefix = name + ext + "."
    kept = [entry for entry in os.listdir(backup_dir) if entry.startswith(prefix) and entry[len(prefix):].isdigit()]
    return [os.path.join(backup_dir, entry) for entry in sorted(kept, key=lambda e: int(e[len(prefix):]), reverse=True)]


def keep_copy(path, backup_dir, name, ext):
    """Move the current file into backup_dir; returns the backup's path."""
    if not os.path.isdir(backup_dir):
        os.makedirs(backup_dir, 0o700)
    backup = os.path.join(backup_dir, "%s%s.%d" % (name, ext, time.time() * 1000000))
    with open(path, "rb") as source, open(backup, "wb") as copy:
        copy.write(source.read())
    os.chmod(backup, 0o600)
    return backup


def write_atomic(path, text, mode):
    """Write through a hidden temporary file in the same directory (no glob matches it), then rename."""
    folder, base = os.path.split(path)
    temp = os.path.join(folder, ".%s.%d.tmp" % (base, os.getpid()))
    with open(temp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chown(temp, 0, 0)
    os.chmod(temp, int(mode, 8))
    os.rename(temp, path)


def check_requirements(requirements):
    failed = []
    for item in requirements:
        kind, value = item["kind"], item["value"]
        if kind == "user":
            try:
                pwd.getpwnam(value)
                ok = True
            except KeyError:
                ok = False
        elif kind == "executable":
            ok = os.path.isfile(value) and os.access(value, os.X_OK)
        elif kind == "file":
            ok = os.path.isfile(value)
        else:
            ok = os.path.isdir(value)
        if not ok:
            failed.append(item["msg"])
    return failed


def tool_libraries(module, real, listed=None):
    """The resolved paths of a binary's shared libraries, sorted by the path ldd prints: read from
    `listed` (one per line, as the ffmpeg role writes them) when that file can be read, else from ldd."""
    text = _read(listed, 1 << 20) if listed else None
    if text is not None:
        return [line for line in text.splitlines() if line.startswith("/")]
    ldd = module.get_bin_path("ldd")
    if not ldd:
        return []
    rc, out, _err = module.run_command([ldd, real], environ_update={"LC_ALL": "C"})
    return [os.path.realpath(lib) for lib in sorted(set(re.findall(r"(/\S+)", out if rc == 0 else "")))]


def tool_id(module, path, listed=None):
    """REALPATH:SIZE:MTIME;LIBS of a binary, LIBS the first 16 hex digits of the sha256 of one
    'REALPATH:SIZE:MTIME' line per shared library ldd lists (sorted by the path ldd prints), so
    that the id changes when the binary or a library it links (libavcodec, libx264) is replaced.
    The ffmpeg role writes its stamp the same way, with the same tools."""
    real = os.path.realpath(path)
    info = os.stat(real)
    lines = []
    for lib in tool_libraries(module, real, listed):
        try:
            stat = os.stat(lib)
        except OSError:
            continue
        lines.append("%s:%d:%d\n" % (lib, stat.st_size, int(stat.st_mtime)))
    libs = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()[:16]
    return "%s:%d:%d;%s" % (real, info.st_size, int(info.st_mtime), libs)


def host_size():
    memory_kb = 0
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"cpus": cpus, "memory_mb": memory_kb // 1024}


def make_directories(directories):
    for item in directories:
        if os.path.isdir(item["path"]):
            continue
        os.makedirs(item["path"])
        entry = pwd.getpwnam(item["owner"])
        os.chown(item["path"], entry.pw_uid, entry.pw_gid)
        os.chmod(item["path"], int(item["mode"], 8))


def extra_file_actions(wanted):
    """{path: action} for each extra file: what writing it would do."""
    actions = {}
    for item in wanted:
        path = item["path"]
        exists = os.path.isfile(path)
        if item["state"] == "absent":
            actions[path] = "removed" if exists else "unchanged"
            continue
        if not exists:
            actions[path] = "added"
            continue
        info = os.stat(path)
        same = (_read(path) == item["content"] and "%04o" % (info.st_mode & 0o7777) == item["mode"] and info.st_uid == 0)
        actions[path] = "unchanged" if same else "changed"
    return actions


def write_extra_files(wanted, actions):
    for item in wanted:
        action = actions[item["path"]]
        if action == "removed":
            os.unlink(item["path"])
        elif action in ("added", "changed"):
            folder = os.path.dirname(item["path"])
            if not os.path.isdir(folder):
                os.makedirs(folder, 0o755)
            write_atomic(item["path"], item["content"], item["mode"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            owner=dict(type="str", required=True),
            programs=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                owner=dict(type="str"),
                content=dict(type="str", no_log=True),
                state=dict(type="str", default="started", choices=list(state.DESIRED_STATES)),
                mode=dict(type="str", default="0644"),
                stopwaitsecs=dict(type="int", default=10),
            ), required_if=[(wanted, value, ("content",)) for wanted, value in (
                ("state", "started"), ("state", "stopped"), ("state", "scaled"))]),
            owners=dict(type="list", elements="str", default=[]),
            extra_files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", no_log=True),
                mode=dict(type="str", default="0644"),
                state=dict(type="str", default="present", choices=["present", "absent"]),
            ), required_if=[("state", "present", ("content",))]),
            adopt=dict(type="list", elements="str", default=[]),
            purge=dict(type="bool", default=True),
            take_over=dict(type="bool", default=False),
            require=dict(type="list", elements="dict", default=[], options=dict(
                kind=dict(type="str", required=True, choices=["user", "executable", "file", "directory"]),
                value=dict(type="str", required=True),
                msg=dict(type="str", required=True),
            )),
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                owner=dict(type="str", default="root"),
                mode=dict(type="str", default="0755"),
            )),
            backup_dir=dict(type="path", default="/var/lib/supervisor-programs/backups"),
            not_ready=dict(type="str", default="fail", choices=["fail", "report"]),
            tools=dict(type="list", elements="str", default=[]),
            tool_libraries=dict(type="dict", default={}),
            files=dict(type="list", elements="path", default=[]),
            config_file=dict(type="path"),
            supervisorctl_path=dict(type="path"),
            include_dir=dict(type="path"),
            include_extension=dict(type="str"),
        ),
        required_together=[("include_dir", "include_extension")],
        supports_check_mode=True,
    )
    params = module.params
    owner = params["owner"]
    tools = {}
    for name in params["tools"]:
        path = module.get_bin_path(name) or ""
        listed = params["tool_libraries"].get(name)
        tools[name] = {"path": path, "id": tool_id(module, path, listed) if path else ""}
    result = dict(changed=False, ready=False, problems=[], pending=False, programs={}, apply=[], rollback=[],
                  orphans=[], supervisord_running=False, tools=tools, extra_files={},
                  files=dict((path, _read(path, 65536)) for path in params["files"]), host=host_size())

    context = {}
    facts = supervisor_detect.detect(module, context, version=False)
    result["supervisor"] = facts
    result["supervisord_running"] = facts["running"]

    # Bad input first: nothing has been changed yet.
    failed = check_requirements(params["require"])
    names = set()
    for program in params["programs"]:
        mark = state.marker(program["owner"] or owner)
        if program["state"] != "absent" and not program["content"].startswith(mark):
            failed.append("programs[%s].content must start with the marker line '%s'" % (program["name"], mark))
        if program["name"] in names:
            failed.append("programs[%s] is listed twice: program names are unique on a host" % program["name"])
        names.add(program["name"])
    if failed:
        module.fail_json(msg="; ".join(failed), errors=failed, **result)

    problems = []
    if not facts["supervisord_path"] and not facts["running"]:
        problems.append("supervisor is not installed")
    if not facts["include_dir"]:
        problems.append("supervisor's include directory is unknown: %s" % "; ".join(facts["problems"]))
    if problems:
        result["problems"] = problems
        if params["not_ready"] == "report":
            module.exit_json(**result)
        module.fail_json(msg="supervisor is not ready: %s" % "; ".join(problems), **result)
    result["ready"] = True

    folder, ext = facts["include_dir"], facts["include_extension"]
    files = read_files(folder, ext)
    loaded, processes, blocked = None, [], None
    client = None
    if facts["running"]:
        try:
            client = rpc.Client(rpc.endpoint(context["parser"], facts["config_file"], context.get("env")))
            facts["version"] = client.call("getSupervisorVersion")
            processes = client.processes()
            added, changed, removed = client.reload_config()
            loaded = {"added": added, "changed": changed, "removed": removed}
        except rpc.RPCError as exc:
            if exc.code == rpc.CANT_REREAD:
                blocked = exc.message
            elif processes or exc.code is not None:
                module.fail_json(msg="supervisord answered with an error: %s" % exc.message, **result)
            else:
                # It runs but cannot be reached: the handler cannot apply either.
                module.fail_json(msg="supervisord runs (pid %s) but cannot be reached: %s" % (facts["pid"], exc.message),
                                 **result)
    by_name = dict((p["name"], p) for p in params["programs"])
    backed_up = [name for name in (loaded or {}).get("removed", []) if backups_of(params["backup_dir"], name, ext)]
    # Groups supervisord runs whose file is gone (a wiped include directory, a careless clean-up): what their
    # processes run tells whose they are, so that their own program writes them back and no other may.
    vanished = dict((name, [command_line(p.get("pid")) for p in processes if p["group"] == name])
                    for name in (loaded or {}).get("removed", []))
    planned = state.plan(params["programs"], files, loaded, processes, owner, purge=params["purge"],
                         take_over=params["take_over"], running=facts["running"], backed_up=backed_up,
                         owners=params["owners"], adopt=params["adopt"], vanished=vanished)
    if planned["errors"]:
        module.fail_json(msg="; ".join(planned["errors"]), errors=planned["errors"], **result)
    writes = [n for n, e in planned["programs"].items() if e["write"] or e["remove"]]
    if blocked:
        if writes:
            module.fail_json(msg=(
                "supervisor cannot read its config: %s. Fix or remove that file first: until then supervisor can add or "
                "change no program on this host, and a restart of supervisord would stop every program. Nothing was "
                "written." % blocked), **result)
        result["warnings_blocked"] = blocked
        module.warn("supervisor cannot read its config (%s); nothing of %s needed writing" % (blocked, owner))

    found_orphans = orphan_procs.find_orphans(set(by_name) | set(planned["programs"]))
    result["orphans"] = [dict((k, o[k]) for k in ("pid", "group", "process", "cmdline")) for o in found_orphans]

    diffs = []
    for name, entry in sorted(planned["programs"].items()):
        desired = by_name.get(name)
        path = entry["path"] or os.path.join(folder, name + ext)
        entry["path"] = path
        entry["sha256"] = state.digest(desired["content"]) if desired and desired.get("content") else None
        before = files.get(name, {}).get("text") or ""
        if entry["write"] or entry["remove"]:
            after = "" if entry["remove"] else desired["content"]
            diffs.append({"before_header": path, "after_header": path,
                          "before": state.masked(before), "after": state.masked(after)})
        # A supervisord that does not run is started by the handler, which then waits for every program.
        if (entry["apply"] or entry["start"] or entry["stop"] or entry["write"] or entry["remove"]
                or not facts["running"]):
            result["apply"].append({"name": name, "state": desired["state"] if desired else "absent",
                                    "stopwaitsecs": desired["stopwaitsecs"] if desired else 10,
                                    "action": entry["action"]})
        if not (entry["write"] or entry["remove"]) and entry["apply"]:
            kept = backups_of(params["backup_dir"], name, ext)
            # Written by an earlier run whose handler never ran: what supervisord runs is the oldest kept copy.
            result["rollback"].append({"path": path, "backup": kept[-1] if kept else None, "new": False, "name": name,
                                       "mode": None})
        entry.pop("write")
        entry.pop("remove")
    result["programs"] = planned["programs"]
    result["pending"] = state.needs_apply(planned, facts["running"], found_orphans)
    extra = extra_file_actions(params["extra_files"])
    result["extra_files"] = dict((path, {"action": action}) for path, action in extra.items())
    for path, action in sorted(extra.items()):
        if action != "unchanged":
            diffs.append({"before_header": path, "after_header": path, "before": "(%s: text hidden)\n" % path,
                          "after": "" if action == "removed" else "(%s: text hidden, %s)\n" % (path, action)})
    extra_changed = any(action != "unchanged" for action in extra.values())

    if not module.check_mode and extra_changed:
        try:
            write_extra_files(params["extra_files"], extra)
        except (IOError, OSError) as exc:
            module.fail_json(msg="writing the extra files failed: %s" % exc, **result)

    if not module.check_mode and writes:
        try:
            make_directories(params["directories"])
            if not os.path.isdir(folder):
                # Some packages name an include directory in the config but do not create it (Alpine's).
                os.makedirs(folder, 0o755)
            for name in sorted(writes):
                entry = planned["programs"][name]
                path = entry["path"]
                mode = files[name]["mode"] if name in files else None
                kept = backups_of(params["backup_dir"], name, ext)
                if kept and loaded and (name in loaded["added"] or name in loaded["changed"]):
                    # An earlier run wrote a version supervisord never ran: what runs is the oldest kept copy.
                    backup, mode = kept[-1], None
                    stale = kept[:-1]
                else:
                    backup = keep_copy(path, params["backup_dir"], name, ext) if os.path.exists(path) else None
                    stale = kept
                for old in stale:
                    os.unlink(old)
                if entry["action"] == "removed":
                    os.unlink(path)
                else:
                    write_atomic(path, by_name[name]["content"], by_name[name]["mode"])
                result["rollback"].append({"path": path, "backup": backup, "new": backup is None and mode is None,
                                           "name": name, "mode": mode})
        except (IOError, OSError) as exc:
            module.fail_json(msg="writing the program files failed: %s" % exc, **result)
    result["changed"] = result["pending"] or extra_changed
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
