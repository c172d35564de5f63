#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_facts
short_description: Detect the live supervisord, its config file and where it loads program files from
version_added: "0.1.0"
description:
  - Finds the running C(supervisord) from C(/proc) (also when it runs under a Python interpreter or
    as C(python -m supervisor.supervisord)), reads its config file from its command line the way
    supervisord parses it (C(-c FILE), C(-cFILE), C(--configuration=FILE), C(--configuration FILE),
    unambiguous long-option prefixes), falls back to supervisord's own search order, and expands
    the C([include] files) globs with C(%(here)s), C(%(host_node_name)s) and C(%(ENV_X)s) taken from
    the process's own environment.
  - Picks the include directory and file extension from the first glob of the form C(DIR/*.EXT).
  - Never changes anything. Always returns every key of C(ansible_facts.supervisor); unknown values
    are C(null) or empty, and C(problems) says what could not be worked out and how to fix it.
  - Fails only when several supervisord processes with different config files run and
    O(config_file) does not say which one to use.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  config_file:
    description:
      - Use this supervisord config file instead of detecting it.
      - With several supervisord processes, selects the one started with this file.
    type: path
  supervisorctl_path:
    description:
      - The supervisorctl to use. By default the one beside the running supervisord, then C(PATH).
    type: path
  include_dir:
    description:
      - Put program files in this directory instead of the first C(DIR/*.EXT) include glob.
      - It must be loaded by the config's C([include] files); requires O(include_extension).
    type: path
  include_extension:
    description:
      - File extension for program files, with or without the leading dot. Requires O(include_dir).
    type: str
  programs:
    description:
      - Also list the program files in the include directory (RV(ansible_facts.supervisor.program_files)), and
        read the text of these programs' files, so that a caller can tell what would change without another call.
    type: list
    elements: str
    default: []
  status:
    description: Also return C(supervisorctl status) (RV(ansible_facts.supervisor.status)) when supervisord runs.
    type: bool
    default: false
  tools:
    description: Commands to find on C(PATH) in the same call (RV(ansible_facts.elms_host)).
    type: list
    elements: str
    default: []
  users:
    description: Users whose existence to check in the same call (RV(ansible_facts.elms_host)).
    type: list
    elements: str
    default: []
  paths:
    description: Paths to look at in the same call (RV(ansible_facts.elms_host)).
    type: list
    elements: path
    default: []
  files:
    description: Small files (up to 64 KiB) to read in the same call (RV(ansible_facts.elms_host)).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - elms.queue_workers.read_only
attributes:
  facts:
    support: full
    description: Returns C(ansible_facts.supervisor).
notes:
  - Processes in another mount namespace (containers seen from their host) are ignored.
  - Only supervisord reads C([include]); supervisorctl must be called with C(-c CONFIG) to reach
    the same server, which RV(ansible_facts.supervisor.supervisorctl_path) and
    RV(ansible_facts.supervisor.config_file) together allow.
"""

EXAMPLES = r"""
- name: Detect supervisor
  elms.queue_workers.supervisor_facts:

- name: Show where program files go
  ansible.builtin.debug:
    msg: "{{ ansible_facts.supervisor.include_dir }}/NAME{{ ansible_facts.supervisor.include_extension }}"

- name: Several supervisords run on this host; manage the panel's one
  elms.queue_workers.supervisor_facts:
    config_file: /etc/supervisor/supervisord.conf
"""

RETURN = r"""
ansible_facts:
  description: Facts about the supervisord that manages this host's programs.
  returned: always
  type: dict
  contains:
    supervisor:
      description: The detected layout.
      returned: always
      type: dict
      contains:
        running:
          description: Whether a supervisord process with this config runs.
          type: bool
          returned: always
        pid:
          description: Its process id, or null.
          type: int
          returned: always
        supervisord_path:
          description: The supervisord script or binary (absolute), or null.
          type: str
          returned: always
        supervisorctl_path:
          description: The supervisorctl to use, or null when none was found.
          type: str
          returned: always
        config_file:
          description: Absolute path of the config file, or null.
          type: str
          returned: always
        config_file_exists:
          description: Whether the config file exists.
          type: bool
          returned: always
        config_source:
          description: How the config was found, C(argv), C(search) or C(option); null when not found.
          type: str
          returned: always
        include_globs:
          description: The C([include] files) globs, expanded and absolute, in file order.
          type: list
          elements: str
          returned: always
        include_dir:
          description: Where program files go, or null.
          type: str
          returned: always
        include_dir_exists:
          description: Whether O(include_dir) exists yet (some packages do not create it).
          type: bool
          returned: always
        include_extension:
          description: Program file extension with the leading dot, or null.
          type: str
          returned: always
        server_url:
          description: The URL supervisorctl reaches with this config.
          type: str
          returned: always
        platform:
          description: Layout name, one of C(debian), C(rhel), C(alpine), C(aapanel), C(plesk), C(pip), C(unknown).
          type: str
          returned: always
        version:
          description: supervisor's version, or null.
          type: str
          returned: always
        processes:
          description: Every supervisord process seen, with its pid, parent pid, command line and config.
          type: list
          elements: dict
          returned: always
        service_name:
          description: The systemd unit that runs this supervisord (from its cgroup), or null.
          type: str
          returned: always
        chosen_because:
          description: Why this supervisord and config were chosen.
          type: str
          returned: always
        problems:
          description: What could not be worked out, each with the fix.
          type: list
          elements: str
          returned: always
        service_enabled:
          description: Whether the systemd unit is enabled at boot; null when unknown (no systemd, no unit).
          type: bool
          returned: always
        program_files:
          description:
            - Every file of the include directory with the include extension, by program file name, with C(path),
              C(owned) (it starts with this collection's marker line), C(mode) and C(uid); C(content) too for
              the names in O(programs).
          type: dict
          returned: when O(programs) is given
        status:
          description: The output of C(supervisorctl status), or null when supervisord does not run.
          type: str
          returned: when O(status) is true
    elms_host:
      description:
        - What O(tools), O(users), O(paths) and O(files) asked for, plus the host's C(cpus) and C(memory_kb).
        - C(tools) maps each name to its path (empty when missing) and C(tool_ids) to C(realpath:size:mtime),
          which changes when the binary is replaced.
      returned: when O(tools), O(users), O(paths) or O(files) is given
      type: dict
"""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as workers

PROC = "/proc"
KNOWN_SUPERVISORD = (
    "/usr/bin/supervisord",
    "/usr/local/bin/supervisord",
    "/www/server/panel/pyenv/bin/supervisord",
)


def _read(path, mode="rb"):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _readlink(path):
    try:
        return os.readlink(path)
    except (IOError, OSError):
        return None


def _ppid(pid):
    stat = _read("%s/%s/stat" % (PROC, pid))
    if not stat:
        return None
    fields = stat.decode("utf-8", "replace").rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


def read_processes():
    """Every supervisord process in this mount namespace, with what supervisord saw at start."""
    own_ns = _readlink("%s/self/ns/mnt" % PROC)
    found = []
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        raw = _read("%s/%s/cmdline" % (PROC, entry))
        if not raw:
            continue
        argv = layout.split_cmdline(raw)
        invocation = layout.supervisord_invocation(argv)
        if invocation is None:
            continue
        ns = _readlink("%s/%s/ns/mnt" % (PROC, entry))
        if own_ns and ns and ns != own_ns:
            continue
        invocation.update(
            pid=int(entry),
            ppid=_ppid(entry),
            argv=argv,
            cwd=_readlink("%s/%s/cwd" % (PROC, entry)),
            exe=_readlink("%s/%s/exe" % (PROC, entry)),
            env=layout.parse_environ(_read("%s/%s/environ" % (PROC, entry)) or b""),
            service=layout.systemd_unit((_read("%s/%s/cgroup" % (PROC, entry)) or b"").decode("utf-8", "replace")),
        )
        found.append(invocation)
    return sorted(found, key=lambda proc: proc["pid"])


def resolve_process_config(proc, exists=os.path.exists):
    """(config path, source, problem) for one supervisord process."""
    try:
        opts = layout.parse_supervisord_args(proc["args"])
    except layout.LayoutError as exc:
        return None, None, "pid %s: %s" % (proc["pid"], exc)
    if "configuration" in opts:
        path = layout.absolute(opts["configuration"], proc.get("cwd"))
        if path is None:
            return None, "argv", "pid %s was started with the relative config %r and its working directory cannot be read" % (
                proc["pid"], opts["configuration"])
        return path, "argv", None
    path = layout.first_existing(layout.search_paths(proc.get("script"), proc.get("cwd")), exists)
    if path is None:
        return None, "search", "pid %s was started without -c and none of supervisord's search paths exists" % proc["pid"]
    return path, "search", None


def choose_process(procs, config_file=None):
    """Pick the supervisord to manage. Returns (proc or None, reason, fatal error or None)."""
    if not procs:
        return None, "no supervisord process runs", None
    pids = set(proc["pid"] for proc in procs)
    # A supervisord that is the child of another one with the same config is a fork
    # about to exec a program; the parent is the server.
    by_pid = dict((proc["pid"], proc) for proc in procs)
    servers = [proc for proc in procs
               if not (proc.get("ppid") in pids and by_pid[proc["ppid"]].get("config_file") == proc.get("config_file"))]
    if config_file:
        matching = [proc for proc in servers if proc.get("config_file") == os.path.normpath(config_file)]
        if matching:
            return matching[0], "pid %s runs with the requested config_file %s" % (matching[0]["pid"], config_file), None
        return None, "no running supervisord uses the requested config_file %s" % config_file, None
    configs = sorted(set(proc.get("config_file") or "" for proc in servers))
    if len(configs) == 1:
        chosen = servers[0]
        if len(servers) == 1:
            return chosen, "the only supervisord running (pid %s)" % chosen["pid"], None
        return chosen, "%d supervisord processes share %s; chose the lowest pid, %s" % (
            len(servers), configs[0] or "an unknown config", chosen["pid"]), None
    listing = "; ".join("pid %s: %s (config %s)" % (proc["pid"], " ".join(proc["argv"]), proc.get("config_file") or "unknown")
                        for proc in servers)
    return None, None, (
        "several supervisord processes run with different configs: %s. Set config_file "
        "(role variable supervisor_config_file) to the config of the one to manage." % listing)


def find_installed_supervisord(module):
    for path in [module.get_bin_path("supervisord")] + list(KNOWN_SUPERVISORD):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_supervisorctl(module, facts, proc, override):
    if override:
        return override
    candidates = []
    if facts["supervisord_path"]:
        candidates.append(os.path.join(os.path.dirname(facts["supervisord_path"]), "supervisorctl"))
    if proc and proc.get("exe"):
        candidates.append(os.path.join(os.path.dirname(proc["exe"]), "supervisorctl"))
    candidates.append(module.get_bin_path("supervisorctl"))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def read_version(module, facts, proc):
    env = {"LC_ALL": "C", "LANG": "C"}
    commands = []
    if facts["running"] and facts["supervisorctl_path"] and facts["config_file"]:
        commands.append([facts["supervisorctl_path"], "-c", facts["config_file"], "version"])
    if facts["supervisord_path"]:
        interpreter = proc.get("interpreter") if proc else None
        commands.append(([interpreter] if interpreter else []) + [facts["supervisord_path"], "--version"])
    for argv in commands:
        rc, out, _err = module.run_command(argv, environ_update=env)
        # Only stdout: old supervisors print setuptools warnings on stderr.
        version = layout.parse_version(out) if rc == 0 else None
        if version:
            return version
    return None


def empty_facts():
    return {
        "running": False, "pid": None, "supervisord_path": None, "supervisorctl_path": None,
        "config_file": None, "config_file_exists": False, "config_source": None,
        "include_globs": [], "include_dir": None, "include_dir_exists": False,
        "include_extension": None, "server_url": None, "platform": "unknown", "version": None,
        "processes": [], "service_name": None, "chosen_because": None, "problems": [],
    }


def detect(module):
    params = module.params
    facts = empty_facts()
    problems = facts["problems"]

    procs = read_processes()
    for proc in procs:
        proc["config_file"], proc["config_source"], problem = resolve_process_config(proc)
        if problem:
            problems.append(problem)
    facts["processes"] = [
        {"pid": p["pid"], "ppid": p.get("ppid"), "cmdline": p["argv"], "config_file": p["config_file"]}
        for p in procs
    ]

    proc, reason, fatal = choose_process(procs, params["config_file"])
    if fatal:
        module.fail_json(msg=fatal, ansible_facts={"supervisor": facts})
    facts["chosen_because"] = reason
    if proc:
        facts["running"] = True
        facts["pid"] = proc["pid"]
        facts["config_file"] = proc["config_file"]
        facts["config_source"] = "option" if params["config_file"] else proc["config_source"]
        facts["supervisord_path"] = layout.absolute(proc["script"], proc.get("cwd")) if proc["script"] else proc.get("exe")
        facts["service_name"] = proc.get("service")
        env = proc.get("env") or {}
    else:
        env = dict(os.environ)
        facts["supervisord_path"] = find_installed_supervisord(module)
        if params["config_file"]:
            facts["config_file"] = os.path.normpath(params["config_file"])
            facts["config_source"] = "option"
        elif facts["supervisord_path"]:
            facts["config_file"] = layout.first_existing(
                layout.search_paths(facts["supervisord_path"], None), os.path.exists)
            facts["config_source"] = "search" if facts["config_file"] else None
        if not facts["supervisord_path"]:
            problems.append("supervisord is not installed (not on PATH nor in %s)" % ", ".join(KNOWN_SUPERVISORD))
        elif not facts["config_file"]:
            problems.append("supervisord is installed but no config file was found in its search path")

    if facts["config_file"]:
        text = _read(facts["config_file"], "r")
        facts["config_file_exists"] = text is not None
        if text is None:
            problems.append("the config file %s cannot be read" % facts["config_file"])
        else:
            try:
                parser = layout.parse_config(text, facts["config_file"])
                facts["include_globs"] = layout.include_globs(parser, facts["config_file"], env, os.uname()[1])
                facts["server_url"] = layout.server_url(parser, facts["config_file"], env)
                if not parser.has_section("supervisorctl"):
                    problems.append(
                        "%s has no [supervisorctl] section, so 'supervisorctl -c %s' cannot reach the server; "
                        "add [supervisorctl] with serverurl=%s" % (facts["config_file"], facts["config_file"], facts["server_url"]))
            except layout.LayoutError as exc:
                problems.append(str(exc))
            include_dir, extension, error = layout.choose_include(
                facts["include_globs"], params["include_dir"], params["include_extension"])
            facts["include_dir"], facts["include_extension"] = include_dir, extension
            facts["include_dir_exists"] = bool(include_dir and os.path.isdir(include_dir))
            if error:
                problems.append(
                    "%s: %s. Add an [include] 'files = DIR/*.EXT' line to it, or set include_dir and "
                    "include_extension (role variables supervisor_include_dir, supervisor_include_extension) "
                    "to a directory it loads." % (facts["config_file"], error))

    facts["supervisorctl_path"] = find_supervisorctl(module, facts, proc, params["supervisorctl_path"])
    if facts["supervisord_path"] and not facts["supervisorctl_path"]:
        problems.append("no supervisorctl found beside %s nor on PATH; set supervisorctl_path" % facts["supervisord_path"])
    facts["version"] = read_version(module, facts, proc)
    facts["platform"] = layout.guess_platform(facts["supervisord_path"], facts["include_dir"], facts["include_globs"])
    return facts


def service_enabled(module, unit):
    systemctl = module.get_bin_path("systemctl")
    if not unit or not systemctl:
        return None
    rc, out, err = module.run_command([systemctl, "is-enabled", unit], environ_update={"LC_ALL": "C"})
    state = out.strip()
    return True if state in ("enabled", "enabled-runtime", "static", "alias") else (False if state else None)


def program_files(facts, wanted):
    """{name: {path, owned, mode, uid[, content]}} of the include directory's program files."""
    found = {}
    folder, ext = facts["include_dir"], facts["include_extension"]
    if not folder or not ext or not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not entry.endswith(ext) or not os.path.isfile(path):
            continue
        name = entry[:-len(ext)]
        text = _read(path, "r") or ""
        info = os.stat(path)
        found[name] = {"path": path, "owned": text.startswith(workers.OWNED_PREFIX), "mode": "%04o" % (info.st_mode & 0o7777),
                       "uid": info.st_uid}
        if name in wanted:
            found[name]["content"] = text
    return found


def host_probe(module):
    params = module.params
    tools, ids = {}, {}
    for name in params["tools"]:
        path = module.get_bin_path(name) or ""
        tools[name] = path
        if path:
            real = os.path.realpath(path)
            info = os.stat(real)
            ids[name] = "%s:%d:%d" % (real, info.st_size, int(info.st_mtime))
    users = {}
    for user in params["users"]:
        try:
            pwd.getpwnam(user)
            users[user] = True
        except KeyError:
            users[user] = False
    paths = dict((path, {"exists": os.path.exists(path), "isdir": os.path.isdir(path),
                         "executable": os.path.isfile(path) and os.access(path, os.X_OK)}) for path in params["paths"])
    files = {}
    for path in params["files"]:
        text = _read(path, "r")
        files[path] = text[:65536] if text is not None else None
    memory = 0
    for line in (_read("/proc/meminfo", "r") or "").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"tools": tools, "tool_ids": ids, "users": users, "paths": paths, "files": files,
            "cpus": cpus, "memory_kb": memory}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="path"),
            supervisorctl_path=dict(type="path"),
            include_dir=dict(type="path"),
            include_extension=dict(type="str"),
            programs=dict(type="list", elements="str", default=[]),
            status=dict(type="bool", default=False),
            tools=dict(type="list", elements="str", default=[]),
            users=dict(type="list", elements="str", default=[]),
            paths=dict(type="list", elements="path", default=[]),
            files=dict(type="list", elements="path", default=[]),
        ),
        required_together=[("include_dir", "include_extension")],
        supports_check_mode=True,
    )
    params = module.params
    facts = detect(module)
    facts["service_enabled"] = service_enabled(module, facts["service_name"])
    if params["programs"]:
        facts["program_files"] = program_files(facts, set(params["programs"]))
    if params["status"]:
        facts["status"] = None
        if facts["running"] and facts["supervisorctl_path"] and facts["config_file"]:
            facts["status"] = module.run_command([facts["supervisorctl_path"], "-c", facts["config_file"], "status"],
                                                 environ_update={"LC_ALL": "C"})[1]
    result = {"supervisor": facts}
    if params["tools"] or params["users"] or params["paths"] or params["files"]:
        result["elms_host"] = host_probe(module)
    module.exit_json(changed=False, ansible_facts=result)


if __name__ == "__main__":
    main()
