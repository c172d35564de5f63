# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the live supervisord, its config and where it loads program files from.

Shared by the modules that need the layout (supervisor_facts reports it; the converging
module detects it in the same remote call as everything else it looks at). `module` is
anything with AnsibleModule's params, run_command, get_bin_path and fail_json.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout

PROC = "/proc"
KNOWN_SUPERVISORD = (
    "/usr/bin/supervisord",
    "/usr/local/bin/supervisord",
    "/www/server/panel/pyenv/bin/supervisord",
)


def read_file(path, mode="rb"):
    """A file's content, or None when it cannot be read (a process that is gone, say)."""
    try:
        with open(path, mode) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def read_link(path):
    try:
        return os.readlink(path)
    except (IOError, OSError):
        return None


_read, _readlink = read_file, read_link


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
        "processes": [], "service_name": None, "service_enabled": None, "chosen_because": None,
        "problems": [],
    }


def detect(module, context=None, version=True):
    """The layout facts (every key always set). context, when a dict, receives the parsed
    config ('parser') and the environment its %(ENV_X)s values expand from ('env')."""
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
                if context is not None:
                    context.update(parser=parser, env=env)
                facts["include_globs"] = layout.include_globs(parser, facts["config_file"], env, os.uname()[1])
                facts["server_url"] = layout.server_url(parser, facts["config_file"], env)
                if not parser.has_section("supervisorctl"):
                    problems.append(
                        "%s has no [supervisorctl] section, so 'supervisorctl -c %s' cannot reach the server; "
                        "add [supervisorctl] with serverurl=%s" % (facts["config_file"], facts["config_file"], facts["server_url"]))
            except layout.LayoutError as exc:
                problems.append(str(exc))
            include_dir, extension, error = layout.choose_include(
                facts["include_globs"], params.get("include_dir"), params.get("include_extension"))
            facts["include_dir"], facts["include_extension"] = include_dir, extension
            facts["include_dir_exists"] = bool(include_dir and os.path.isdir(include_dir))
            if error:
                problems.append(
                    "%s: %s. Add an [include] 'files = DIR/*.EXT' line to it, or set include_dir and "
                    "include_extension (role variables supervisor_include_dir, supervisor_include_extension) "
                    "to a directory it loads." % (facts["config_file"], error))

    facts["supervisorctl_path"] = find_supervisorctl(module, facts, proc, params.get("supervisorctl_path"))
    if facts["supervisord_path"] and not facts["supervisorctl_path"]:
        problems.append("no supervisorctl found beside %s nor on PATH; set supervisorctl_path" % facts["supervisord_path"])
    if version:
        facts["version"] = read_version(module, facts, proc)
    if not facts["service_name"] and facts["supervisord_path"]:
        facts["service_name"] = installed_unit(module)
    facts["service_enabled"] = service_enabled(module, facts["service_name"])
    facts["platform"] = layout.guess_platform(facts["supervisord_path"], facts["include_dir"], facts["include_globs"])
    return facts


def service_enabled(module, unit):
    systemctl = module.get_bin_path("systemctl")
    if not unit or not systemctl:
        return None
    rc, out, err = module.run_command([systemctl, "is-enabled", unit], environ_update={"LC_ALL": "C"})
    state = out.strip()
    return True if state in ("enabled", "enabled-runtime", "static", "alias") else (False if state else None)


# The units that packages and panels name supervisord's service (Debian's, then RHEL's,
# Alpine's, aaPanel's and the pip install's).
SERVICE_UNITS = ("supervisor", "supervisord")


def installed_unit(module):
    """The systemd unit that would run supervisord when none runs now (so none to read from
    its cgroup): the first known name systemd has a unit file for. None without systemd."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not os.path.isdir("/run/systemd/system"):
        return None
    for unit in SERVICE_UNITS:
        rc, out, _err = module.run_command([systemctl, "show", "-p", "LoadState", "--value", unit],
                                           environ_update={"LC_ALL": "C"})
        if rc == 0 and out.strip() == "loaded":
            return unit
    return None
