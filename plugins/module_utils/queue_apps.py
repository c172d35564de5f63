# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several Laravel apps on one host, each the owner of its own supervisor programs.

An app is a name, its directory (a plain directory, or a 'current' symlink of a release
layout, kept as it is), its user, php, queue connection, log directory and programs; what
an app does not set comes from the role-wide settings. Each app's program files carry its
own owner marker (OWNER/APP), so a deploy adds, changes and removes only the programs of
the apps it lists, and a program name that another app owns is refused by the converge
module before anything changes. Pure functions, shared by the filters and the unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.elms.queue_workers.plugins.module_utils import daemon_kinds
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as workers

APP_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
APP_STATES = ("present", "absent")
# App key -> the settings key it overrides (and the role-wide variable it defaults to).
APP_SETTINGS = (("dir", "app_dir"), ("user", "user"), ("php", "php"), ("connection", "connection"),
                ("log_dir", "log_dir"))
APP_KEYS = frozenset(["name", "state", "programs"] + [key for key, _setting in APP_SETTINGS])


def owner(settings, app_name):
    """The owner marker of one app's programs: the deployer's owner, then the app's name."""
    return "%s/%s" % (settings.get("owner") or workers.DEFAULT_OWNER, app_name)


def app_settings(app, settings):
    """The settings one app's programs are rendered with: the role-wide ones, overridden by the app's."""
    merged = dict(settings)
    for key, setting in APP_SETTINGS:
        if app.get(key) not in (None, ""):
            merged[setting] = app[key]
    merged["app"] = app["name"]
    merged["owner"] = owner(settings, app["name"])
    return merged


def _where(single, index, app):
    if single:
        return None
    name = app.get("name") if isinstance(app, dict) else None
    return "queue_workers_apps[%d]%s" % (index, " (%s)" % name if name is not None else "")


def _names(single, where):
    """Which variable to name for each setting: the role-wide one for a single app, else the app's key."""
    if single:
        return dict(workers.SETTING_VARS, log_dir="queue_workers_log_dir")
    found = {}
    for key, setting in APP_SETTINGS:
        role_var = "queue_workers_log_dir" if setting == "log_dir" else workers.SETTING_VARS.get(setting)
        found[setting] = "%s.%s (or %s)" % (where, key, role_var) if role_var else "%s.%s" % (where, key)
    return found


def errors(apps, settings, single=False, allow_root=False, retry_after=0):
    """Every problem in the apps (or the single app of the role-wide variables), each naming the variable."""
    if not isinstance(apps, (list, tuple)) or not apps:
        return ["queue_workers_apps must be a list of apps (name, dir, user, php, programs, ...), got %r" % (apps,)]
    found = []
    seen_apps, programs_of = {}, {}
    margin = settings.get("stopwait_margin", 30)
    for index, app in enumerate(apps):
        where = _where(single, index, app)
        if not isinstance(app, dict):
            found.append("%s must be a mapping with at least name and programs, got %r" % (where, app))
            continue
        unknown = sorted(set(app) - APP_KEYS)
        if unknown:
            found.append("%s has unknown keys %s; allowed keys: %s" % (where, ", ".join(unknown), ", ".join(sorted(APP_KEYS))))
        name = app.get("name")
        name_var = "queue_workers_app_name" if single else "%s.name" % where
        if not isinstance(name, str) or not APP_NAME_RE.match(name):
            found.append("%s = %r must be 1-32 lowercase letters, digits or '-' (not at either end): it names the "
                         "app's programs' owner" % (name_var, name))
            continue
        if name in seen_apps:
            found.append("%s: app %s is listed twice (also queue_workers_apps[%d])" % (where, name, seen_apps[name]))
            continue
        seen_apps[name] = index
        state_var = "queue_workers_app_state" if single else "%s.state" % where
        if app.get("state", "present") not in APP_STATES:
            found.append("%s = %r must be present or absent" % (state_var, app.get("state")))
            continue
        programs = app.get("programs", [] if app.get("state") == "absent" else None)
        programs_var = "queue_workers_programs" if single else "%s.programs" % where
        merged = app_settings(app, settings)
        names = _names(single, where)
        if app.get("state", "present") == "present":
            found.extend(workers.settings_errors(merged, programs, names=names))
            log_dir = merged.get("log_dir")
            if log_dir not in (None, ""):
                if not isinstance(log_dir, str):
                    found.append("%s = %r must be a directory path" % (names["log_dir"], log_dir))
                else:
                    workers._check_text(found, names["log_dir"], log_dir)
        found.extend(workers.worker_errors(programs, margin=margin, allow_root=allow_root,
                                           default_user=merged.get("user"), retry_after=retry_after, var=programs_var))
        for worker in programs if isinstance(programs, (list, tuple)) else []:
            program = worker.get("name") if isinstance(worker, dict) else None
            if not isinstance(program, str):
                continue
            if program in programs_of and programs_of[program] != name:
                found.append("%s: program %s is also a program of app %s; program names are unique on a host: prefix "
                             "each with its app's name (%s-...)" % (programs_var, program, programs_of[program], name))
            programs_of.setdefault(program, name)
    return found


def _present(app):
    return app.get("state", "present") == "present"


def desired(apps, settings, content=True, single=False):
    """What elms.queue_workers.supervisor_programs takes for these apps, in one call:
    {"programs": [...] (each with its app's owner), "owners": [...] (every app's, so that a removed
    program or app is purged, and only theirs), "require": [...], "directories": [...]}.

    An app with state absent contributes its owner and no program: its programs are removed."""
    result = {"programs": [], "owners": [], "require": [], "directories": []}
    for index, app in enumerate(apps):
        merged = app_settings(app, settings)
        result["owners"].append(merged["owner"])
        if not _present(app):
            continue
        for program in workers.desired_programs(app.get("programs") or [], merged, content=content):
            program["owner"] = merged["owner"]
            result["programs"].append(program)
        needs = workers.host_requirements(app.get("programs") or [], merged, names=_names(single, _where(single, index, app)))
        for item in needs["require"]:
            if item not in result["require"]:
                result["require"].append(item)
        for item in needs["directories"]:
            if item["path"] not in [d["path"] for d in result["directories"]]:
                result["directories"].append(item)
    return result


def recycle_plan(apps, settings):
    """How restart.yml recycles every running program of these apps after a code deploy, one entry per
    command to run (or per app, for the programs supervisor stops and starts):
    [{"app", "command" (argv run as the app's user, or None: through supervisor), "chdir", "programs"}]."""
    plan = []
    for app in apps:
        if not _present(app):
            continue
        merged = app_settings(app, settings)
        artisan = merged["app_dir"].rstrip("/") + "/artisan"
        by_command = []
        for worker in workers.select(app.get("programs") or [], "autostarted"):
            words, how = daemon_kinds.restart_words(worker)
            command = None
            if how is None:
                user = worker.get("user") or merged["user"]
                command = ["runuser", "-u", user, "--"] + daemon_kinds.daemon_argv(words, merged["php"], artisan)
            for entry in by_command:
                if entry["command"] == command:
                    entry["programs"].append(worker["name"])
                    break
            else:
                by_command.append({"app": app["name"], "command": command, "chdir": merged["app_dir"],
                                   "programs": [worker["name"]]})
        plan.extend(by_command)
    return plan


def scaled(apps, settings):
    """The workers whose numprocs is a range with room above its minimum on this host, as the scaler (the alert
    listener) takes them: [{"name", "spare", "app", "queues", "log", "min", "max", "clear_seconds", "step",
    "cooldown"}]."""
    found = []
    for app in apps:
        if not _present(app):
            continue
        merged = app_settings(app, settings)
        for worker in workers.select(app.get("programs") or [], "present"):
            scale = workers.scale_range(worker, merged)
            if scale is not None and scale["max"] > scale["min"]:
                found.append(dict(scale, name=worker["name"], app=app["name"], queues=workers.queue_list(worker),
                                  log=workers.log_path(worker, merged)))
    return found


def plan(apps, settings, single=False, allow_root=False, retry_after=0, content=True):
    """Everything the role needs from its apps in one filter call: errors first; when there are none,
    desired() and recycle_plan() and each app's resolved settings (name, dir, user, php, state)."""
    problems = errors(apps, settings, single=single, allow_root=allow_root, retry_after=retry_after)
    result = {"errors": problems, "programs": [], "owners": [], "require": [], "directories": [], "recycle": [],
              "recycle_programs": [], "apps": [], "scaled": []}
    if problems:
        return result
    result.update(desired(apps, settings, content=content, single=single))
    result["recycle"] = recycle_plan(apps, settings)
    # What supervisor_apply takes as its programs when it recycles them.
    result["recycle_programs"] = [{"name": p["name"], "state": p["state"], "stopwaitsecs": p["stopwaitsecs"]}
                                  for p in result["programs"] if p["state"] == "started"]
    result["scaled"] = scaled(apps, settings)
    for app in apps:
        merged = app_settings(app, settings)
        result["apps"].append({"name": app["name"], "state": app.get("state", "present"), "dir": merged["app_dir"],
                               "user": merged["user"], "php": merged["php"], "owner": merged["owner"],
                               "connection": merged.get("connection") or "",
                               "log_dir": merged.get("log_dir") or "", "programs": list(app.get("programs") or [])})
    return result
