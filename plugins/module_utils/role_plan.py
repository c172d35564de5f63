# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The queue_workers role's whole plan for one host, from its variables, in one pass.

The action plugin elms.queue_workers.queue_workers_converge (and the rollout's first step,
which checks every host of a play before any changes) hands this module the role's
variables, templated; it returns every problem, each naming its variable, or the plan: the
programs of every app, the alert listener, the restart plan, the canary job and the
arguments of the one converging call (supervisor_programs). Pure functions, unit-tested.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import posixpath

from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps, rollout, worker_alerts
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs

# Where the ffmpeg role writes the id of the binary it proved encodes HLS (ffmpeg_verify_stamp).
FFMPEG_STAMP = "/var/lib/elms-queue-workers/ffmpeg-hls-verified"
# The rollout's default batch per playbook: a restart recycles a quarter of the hosts at a time.
DEFAULT_BATCH = {"restart": "25%"}
TRUE_WORDS = ("1", "true", "yes", "on", "y", "t")


def boolean(value):
    """A switch as YAML, the inventory or -e give it (Ansible's own reading: 'false' is false)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS


def integer(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def default_batch(playbook):
    return DEFAULT_BATCH.get(playbook or "site", "100%")


def wants_sizes(v):
    """Whether a worker asks for numprocs: auto (then the host's CPUs and memory are needed)."""
    apps = v.get("queue_workers_apps") or [{"programs": v.get("queue_workers_programs")}]
    for app in apps if isinstance(apps, list) else []:
        programs = app.get("programs") if isinstance(app, dict) else None
        for worker in programs if isinstance(programs, list) else []:
            count = worker.get("numprocs") if isinstance(worker, dict) else None
            if count == "auto" or (isinstance(count, dict) and count.get("max") == "auto"):
                return True
    return False


def settings(v, sizes=None):
    """What every program is rendered with: the role-wide inputs, and the host's size for numprocs: auto."""
    sizes = sizes or {}
    return {
        "app_dir": v.get("queue_workers_app_dir"), "php": v.get("queue_workers_php"),
        "user": v.get("queue_workers_user"), "owner": v.get("queue_workers_owner"),
        "connection": v.get("queue_workers_connection"),
        "stopwait_margin": integer(v.get("queue_workers_stopwait_margin"), 30),
        "log_maxbytes": v.get("queue_workers_log_maxbytes"),
        "log_backups": integer(v.get("queue_workers_log_backups"), 5),
        "nice": v.get("queue_workers_nice_path"), "ionice": v.get("queue_workers_ionice_path"),
        "log_dir": v.get("queue_workers_log_dir"),
        "cpus": integer(sizes.get("cpus"), 1) or 1, "memory_mb": integer(sizes.get("memory_mb"), 0),
    }


def apps(v):
    """The apps of this host: queue_workers_apps, or the one app of the role-wide variables."""
    if not v.get("queue_workers_apps"):
        return True, [{"name": v.get("queue_workers_app_name"), "state": v.get("queue_workers_app_state"),
                       "programs": v.get("queue_workers_programs")}]
    return False, v["queue_workers_apps"]


def alerts(v, host):
    return {
        "webhook": v.get("queue_workers_alert_webhook"), "syslog": v.get("queue_workers_alert_syslog"),
        "mail_to": v.get("queue_workers_alert_mail_to"), "rate_limit": v.get("queue_workers_alert_rate_limit"),
        "fatal_retry": v.get("queue_workers_fatal_retry"),
        "backoff_after": v.get("queue_workers_alert_backoff_after"),
        "log_lines": v.get("queue_workers_alert_log_lines"), "backlog": v.get("queue_workers_backlog_alert"),
        "backlog_interval": v.get("queue_workers_backlog_interval"), "python": v.get("queue_workers_alert_python"),
        "metrics_dir": v.get("queue_workers_metrics_dir"), "scale_interval": v.get("queue_workers_scale_interval"),
        "host": host, "supervisor_config": v.get("queue_workers_supervisor_config_file"),
    }


def _waits(v):
    if integer(v.get("queue_workers_wait_timeout")) >= 1 and integer(v.get("queue_workers_restart_wait")) >= 1:
        return []
    return ["queue_workers_wait_timeout (%s) and queue_workers_restart_wait (%s) must be at least 1 second."
            % (v.get("queue_workers_wait_timeout"), v.get("queue_workers_restart_wait"))]


def build(v, host, playbook="site", sizes=None, alert_script=None, content=True):
    """Every check and the plan of one host: {"errors", "apps", "alerts", "canary", "single"}.

    v: the role's variables (templated); alert_script: the listener's text, or a callable that
    returns it (read only when a channel is on). The apps' errors come alone: the alert and
    rollout settings are checked against the apps, so only when the apps are right."""
    single, listed = apps(v)
    found = {"errors": [], "apps": None, "alerts": None, "canary": None, "single": single}
    found["apps"] = queue_apps.plan(listed, settings(v, sizes), single=single,
                                    allow_root=boolean(v.get("queue_workers_allow_root")),
                                    retry_after=integer(v.get("queue_workers_retry_after")), content=content)
    if found["apps"]["errors"]:
        found["errors"] = found["apps"]["errors"] + _waits(v)
        return found
    wanted = alerts(v, host)
    script = ""
    if worker_alerts.enabled(wanted, found["apps"]) and content:
        script = alert_script() if callable(alert_script) else (alert_script or "")
    found["alerts"] = worker_alerts.plan(wanted, found["apps"], settings(v, sizes), script)
    batch = v.get("queue_workers_batch")
    found["errors"] = found["alerts"]["errors"] + rollout.checks(
        batch, v.get("queue_workers_max_fail_percentage", 0), v.get("queue_workers_canary_job"), found["apps"],
        defaults_batch=default_batch(playbook)) + _waits(v)
    if not found["errors"]:
        found["canary"] = rollout.canary(v.get("queue_workers_canary_job"), found["apps"])[1]
    return found


def libraries_list(stamp):
    """Where the ffmpeg role lists the libraries of the binary it proved (beside its stamp)."""
    return stamp + ".libs"


def converge_args(v, plan, check_only=False, not_ready=None, tools=(), files=(), tool_libraries=None):
    """The arguments of the one converging call (elms.queue_workers.supervisor_programs) for a plan."""
    apps_plan, alert_plan = plan["apps"], plan["alerts"]
    owner = v.get("queue_workers_owner")
    args = {
        "owner": owner,
        # Each app's programs carry their own owner; only the apps listed here (and the listener) are touched.
        "owners": apps_plan["owners"] + [alert_plan["owner"]],
        # Files of versions before apps were marked OWNER alone: the app that lists them takes them.
        "adopt": [owner],
        "programs": apps_plan["programs"] + alert_plan["programs"],
        "extra_files": alert_plan["extra_files"],
        "take_over": boolean(v.get("queue_workers_take_over")),
        "require": apps_plan["require"] + alert_plan["require"],
        "directories": apps_plan["directories"] + alert_plan["directories"],
        "backup_dir": v.get("queue_workers_backup_dir"),
        "not_ready": not_ready or v.get("queue_workers_supervisor_not_ready") or "fail",
        "tools": list(tools) or list(v.get("queue_workers_host_tools") or []),
        "files": list(files) or list(v.get("queue_workers_host_files") or []),
        "tool_libraries": dict(tool_libraries or {}),
    }
    for key in ("config_file", "include_dir", "include_extension"):
        value = v.get("queue_workers_supervisor_" + key)
        if value:
            args[key] = value
    return args


def shown(apps_plan):
    """The apps' plan as a task may return it (registered, shown with -v): each program without its environment
    values, which may be secrets (an API token); the names stay."""
    found = dict(apps_plan)
    found["apps"] = []
    for app in apps_plan.get("apps") or []:
        app = dict(app)
        app["programs"] = [dict(program, environment=dict.fromkeys(program["environment"], "(hidden)"))
                           if isinstance(program, dict) and isinstance(program.get("environment"), dict) else program
                           for program in app.get("programs") or []]
        found["apps"].append(app)
    return found


def restart_args(apps_plan):
    """The arguments of the restart's one call (elms.queue_workers.queue_workers_recycle) for the apps' plan."""
    present = [app for app in apps_plan["apps"] if app["state"] == "present"]
    return {"apps": [dict((key, app[key]) for key in ("name", "dir", "user", "php")) for app in present],
            "programs": apps_plan["recycle_programs"], "recycle": apps_plan["recycle"]}


def missing(result, stamp=FFMPEG_STAMP):
    """What a host lacks before its workers can run, from the converge's result in report mode: 'supervisor'
    (not installed, no include directory, or not started at boot) and 'ffmpeg' (not found, or this binary not
    proven to encode HLS by the ffmpeg role, whose stamp holds the id of the binary it proved)."""
    needs = []
    supervisor = result.get("supervisor") or {}
    if not result.get("ready") or supervisor.get("service_enabled") is False:
        needs.append("supervisor")
    ffmpeg = (result.get("tools") or {}).get("ffmpeg")
    if ffmpeg is not None:
        proven = (result.get("files") or {}).get(stamp)
        if not ffmpeg.get("id") or proven != ffmpeg["id"]:
            needs.append("ffmpeg")
    return needs


def summary(result, applied=None):
    """One line per host of what the converge found and did (the layout, each program's action)."""
    layout = result.get("supervisor") or {}
    if not result.get("ready"):
        return "supervisor is not ready: %s" % "; ".join(result.get("problems") or []) or "supervisor is not ready"
    actions = ", ".join("%s %s" % (name, (item or {}).get("action", "?"))
                        for name, item in sorted((result.get("programs") or {}).items()))
    return "%s layout, config %s, programs in %s/*%s: %s" % (
        layout.get("platform"), layout.get("config_file"), layout.get("include_dir"),
        layout.get("include_extension"), actions or "no program")


def docker(v):
    """The queue container's whole supervisord.conf for local development (docker.yml), checked:
    {"errors", "dest" (its path in the app repository), "content"}."""
    repo, path = v.get("queue_workers_docker_repo") or "", v.get("queue_workers_docker_config_path") or ""
    errors = []
    if not isinstance(repo, str) or not repo.startswith("/"):
        errors.append("queue_workers_docker_repo = %s must be the absolute path of the app repository" % json.dumps(repo))
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        errors.append("queue_workers_docker_config_path = %s must be a path inside the repository, like "
                      "docker/supervisor/supervisord.conf" % json.dumps(path))
    settings = {
        "app_dir": v.get("queue_workers_docker_app_dir"), "php": v.get("queue_workers_docker_php"), "php_on_path": True,
        "user": v.get("queue_workers_user"), "owner": v.get("queue_workers_owner"),
        "connection": v.get("queue_workers_connection"),
        "stopwait_margin": integer(v.get("queue_workers_stopwait_margin"), 30),
        "cpus": integer(v.get("queue_workers_docker_cpus"), 2), "memory_mb": integer(v.get("queue_workers_docker_memory_mb")),
    }
    workers = v.get("queue_workers_programs")
    errors += worker_programs.settings_errors(settings, workers)
    errors += worker_programs.worker_errors(workers, margin=settings["stopwait_margin"],
                                            allow_root=boolean(v.get("queue_workers_allow_root")),
                                            default_user=settings["user"],
                                            retry_after=integer(v.get("queue_workers_retry_after")))
    found = {"errors": errors, "dest": "", "content": ""}
    if not errors:
        found["dest"] = posixpath.join(repo.rstrip("/") or "/", path)
        found["content"] = worker_programs.render_standalone(workers, settings)
    return found
