# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts from supervisor's own events: the listener program, its config, and their checks.

When any channel is set (a webhook, syslog, mail), the deploy adds one supervisor event
listener (roles/queue_workers/files/alert_listener.py, stdlib only) that watches every
program of the deploy's apps: it alerts on FATAL, a BACKOFF that lasts and an unexpected
exit, and on the recovery; starts a FATAL worker again a bounded number of times; and can
watch queue backlogs. Its config (which holds the webhook URL, a secret) is a root-only
file; the program file only names it, with a digest of the script and the config so that
supervisor restarts the listener when either changes. With no channel, the listener's
program and files are removed. Pure functions, shared by the filter and the unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.elms.queue_workers.plugins.module_utils import daemon_kinds
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as workers

PROGRAM = "queue-workers-alerts"
SCRIPT = "/usr/local/lib/elms-queue-workers/alert_listener.py"
CONFIG = "/etc/elms-queue-workers/alerts.json"
STATE_FILE = "/var/lib/elms-queue-workers/alerts/state.json"
LOG_DIR = "/var/log/elms-queue-workers"
LOG = LOG_DIR + "/alerts.log"
# supervisor sends TICK_5 every 5 s: retries and a lasting BACKOFF are checked on it.
EVENTS = "PROCESS_STATE,TICK_5"
URL_RE = re.compile(r"^https?://[^/\s:]+(:\d+)?(/\S*)?$")
MAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+$")
SYSLOG_FACILITIES = ("daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")


def _switch(value):
    """true/false as -e on the command line gives them (strings), or a facility name."""
    if isinstance(value, str) and value.strip().lower() in ("", "false", "no", "off", "0"):
        return False
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
        return True
    return value


def owner(settings):
    return "%s/alerts" % (settings.get("owner") or workers.DEFAULT_OWNER)


def enabled(alerts, apps_plan=None):
    """Whether the listener runs: any alert channel, metrics, or a scaled worker (the listener is its scaler)."""
    return bool(alerts.get("webhook") or _switch(alerts.get("syslog")) or alerts.get("mail_to")
                or alerts.get("metrics_dir") or (apps_plan or {}).get("scaled"))


def probe_interval(alerts, apps_plan):
    """Seconds between two backlog probes: the backlog interval, or the scale interval when it is shorter and a
    worker scales (its reaction time)."""
    if (apps_plan or {}).get("scaled"):
        return min(alerts["backlog_interval"], alerts["scale_interval"])
    return alerts["backlog_interval"]


def _int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def errors(alerts, apps_plan):
    """Problems in the alert settings, each naming the variable and the fix."""
    found = []
    webhook = alerts.get("webhook") or ""
    if not isinstance(webhook, str) or (webhook and not URL_RE.match(webhook)):
        # Never repeat the URL: its path is usually the secret.
        found.append("queue_workers_alert_webhook must be an http:// or https:// URL without spaces (or empty for none)")
    mail_to = alerts.get("mail_to") or []
    if not isinstance(mail_to, list) or not all(isinstance(m, str) and MAIL_RE.match(m) for m in mail_to):
        found.append("queue_workers_alert_mail_to = %r must be a list of mail addresses" % (mail_to,))
    syslog = _switch(alerts.get("syslog"))
    if syslog and syslog is not True and syslog not in SYSLOG_FACILITIES:
        found.append("queue_workers_alert_syslog = %r must be false, true (facility daemon) or a facility: %s"
                     % (syslog, ", ".join(SYSLOG_FACILITIES)))
    limit = alerts.get("rate_limit") or {}
    if not isinstance(limit, dict) or not _int(limit.get("alerts"), 1) or not _int(limit.get("seconds"), 1):
        found.append("queue_workers_alert_rate_limit = %r must be {alerts: N >= 1, seconds: S >= 1} (at most N alerts "
                     "per program every S seconds)" % (limit,))
    retry = alerts.get("fatal_retry")
    if not isinstance(retry, dict) or not isinstance(retry.get("delays"), list) or \
            not all(_int(d, 1) for d in retry["delays"]) or len(retry["delays"]) > 20:
        found.append("queue_workers_fatal_retry = %r must be {delays: [seconds, ...]}: one start attempt after each "
                     "delay (each >= 1, at most 20 attempts; [] turns self-healing off)" % (retry,))
    if not _int(alerts.get("backoff_after"), 1):
        found.append("queue_workers_alert_backoff_after = %r must be a whole number of seconds >= 1"
                     % (alerts.get("backoff_after"),))
    if not _int(alerts.get("log_lines"), 0):
        found.append("queue_workers_alert_log_lines = %r must be a whole number >= 0" % (alerts.get("log_lines"),))
    backlog = alerts.get("backlog") or {}
    if not isinstance(backlog, dict):
        found.append("queue_workers_backlog_alert must be a mapping of queue: pending jobs above which to alert")
        backlog = {}
    queues = set()
    for app in apps_plan.get("apps") or []:
        for worker in app.get("programs") or []:
            if isinstance(worker, dict) and daemon_kinds.kind_of(worker) == "queue":
                queues.update(workers.queue_list(worker))
    for queue, threshold in sorted(backlog.items()):
        if not _int(threshold, 1):
            found.append("queue_workers_backlog_alert.%s = %r must be a whole number of pending jobs >= 1"
                         % (queue, threshold))
        elif queue not in queues:
            found.append("queue_workers_backlog_alert.%s: no queue worker of the deploy's apps works on queue %s "
                         "(queues: %s)" % (queue, queue, ", ".join(sorted(queues)) or "none"))
    if (backlog or alerts.get("metrics_dir") or (apps_plan or {}).get("scaled")) and \
            not _int(alerts.get("backlog_interval"), 30):
        found.append("queue_workers_backlog_interval = %r must be a whole number of seconds >= 30"
                     % (alerts.get("backlog_interval"),))
    if (apps_plan or {}).get("scaled") and not _int(alerts.get("scale_interval"), 5):
        found.append("queue_workers_scale_interval = %r must be a whole number of seconds >= 5 (how often a scaled "
                     "worker's queues are measured)" % (alerts.get("scale_interval"),))
    metrics_dir = alerts.get("metrics_dir") or ""
    if not isinstance(metrics_dir, str) or (metrics_dir and (
            not metrics_dir.startswith("/") or metrics_dir.rstrip("/") == "" or re.search(r"[\s\x00]", metrics_dir))):
        found.append("queue_workers_metrics_dir = %r must be an absolute directory without spaces, e.g. "
                     "/var/lib/prometheus/node-exporter (node_exporter's --collector.textfile.directory), or empty for "
                     "no metrics" % (metrics_dir,))
    if enabled(alerts, apps_plan) and not str(alerts.get("python") or "").startswith("/"):
        found.append("queue_workers_alert_python = %r must be the absolute path of a python3 on the hosts"
                     % (alerts.get("python"),))
    return found


def listener_config(alerts, apps_plan, settings):
    """The listener's JSON config: what it watches and where it sends (holds the webhook URL)."""
    programs, backlog_apps, scaling = {}, {}, {}
    backlog = alerts.get("backlog") or {}
    scaled = dict((s["name"], s) for s in apps_plan.get("scaled") or [])
    for app in apps_plan.get("apps") or []:
        if app.get("state") != "present":
            continue
        app_settings = dict(settings, app_dir=app["dir"], user=app["user"], php=app["php"],
                            connection=app.get("connection") or "", log_dir=app.get("log_dir") or "")
        served = []
        for worker in workers.select(app.get("programs") or [], "present"):
            programs[worker["name"]] = {"app": app["name"], "log": workers.log_path(worker, app_settings)}
            if daemon_kinds.kind_of(worker) == "queue":
                served.extend(q for q in workers.queue_list(worker) if q not in served)
            scale = scaled.get(worker["name"])
            if scale is not None and scale["app"] == app["name"]:
                programs[scale["spare"]] = dict(programs[worker["name"]])
                scaling[worker["name"]] = dict((key, scale[key]) for key in (
                    "app", "spare", "min", "max", "queues", "clear_seconds", "step", "cooldown", "log"))
        queues = dict((q, t) for q, t in backlog.items() if q in served)
        scaled_queues = [q for s in scaling.values() if s["app"] == app["name"] for q in s["queues"]]
        if alerts.get("metrics_dir") or scaled_queues:
            # With metrics every queue the app's workers serve is probed, and a scaled worker's queues always;
            # null: not alerted.
            queues = dict((q, queues.get(q)) for q in served if alerts.get("metrics_dir") or q in scaled_queues
                          or q in queues)
        if queues:
            backlog_apps[app["name"]] = {"dir": app["dir"], "user": app["user"], "php": app["php"],
                                         "connection": app.get("connection") or "", "queues": queues}
    syslog = _switch(alerts.get("syslog"))
    channels = {
        "webhook": {"url": alerts["webhook"], "timeout": 5} if alerts.get("webhook") else None,
        "syslog": {"facility": "daemon" if syslog is True else syslog, "tag": "elms-queue-workers"} if syslog else None,
        "mail": {"to": list(alerts["mail_to"]), "sendmail": "/usr/sbin/sendmail"} if alerts.get("mail_to") else None,
    }
    config = {
        "programs": programs,
        "channels": channels,
        "backoff_alert_after": alerts["backoff_after"],
        "rate_limit": {"alerts": alerts["rate_limit"]["alerts"], "seconds": alerts["rate_limit"]["seconds"]},
        "fatal_retry": {"delays": list(alerts["fatal_retry"]["delays"])},
        "log_lines": alerts["log_lines"],
        "state_file": STATE_FILE,
    }
    if alerts.get("host"):
        config["host"] = alerts["host"]
    if backlog_apps:
        config["backlog"] = {"interval": probe_interval(alerts, apps_plan), "apps": backlog_apps}
    if scaling:
        config["scaling"] = scaling
    if alerts.get("metrics_dir"):
        config["metrics_dir"] = alerts["metrics_dir"].rstrip("/")
    if alerts.get("supervisor_config"):
        config["supervisor_config"] = alerts["supervisor_config"]
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def digest(*texts):
    return hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:12]


def render_program(alerts, settings, script_text, config_text):
    """The listener's program file. Only paths and a digest: never the config's content."""
    marker = "%s Local changes are overwritten." % workers.program_state.marker(owner(settings))
    argv = [alerts["python"], SCRIPT, "--config", CONFIG, "--revision", digest(script_text, config_text)]
    lines = [
        marker,
        "[eventlistener:%s]" % PROGRAM,
        "command=%s" % workers.command_line(argv),
        "events=%s" % EVENTS,
        # Events queue up in supervisor while the listener is busy; it never is for long
        # (sending happens in its own thread), so the default buffer is enough.
        "buffer_size=100",
        "user=root",
        "autostart=true",
        "autorestart=true",
        "startsecs=1",
        "startretries=10",
        "stopwaitsecs=10",
        # stdout is the protocol channel; the listener logs to stderr.
        "stdout_logfile=NONE",
        "stderr_logfile=%s" % LOG,
        "stderr_logfile_maxbytes=10MB",
        "stderr_logfile_backups=3",
    ]
    return "\n".join(lines) + "\n"


def plan(alerts, apps_plan, settings, script_text):
    """What the converge adds for alerting: {"errors", "owner", "programs", "extra_files", "directories", "require"}.

    With a channel: the listener program (its own owner) and its two files; without: the
    owner only (so the converge removes the program) and the files marked absent."""
    problems = errors(alerts, apps_plan)
    result = {"errors": problems, "owner": owner(settings), "programs": [], "extra_files": [], "directories": [],
              "require": []}
    if problems:
        return result
    if not enabled(alerts, apps_plan):
        result["extra_files"] = [{"path": SCRIPT, "state": "absent"}, {"path": CONFIG, "state": "absent"}]
        return result
    config_text = listener_config(alerts, apps_plan, settings)
    result["extra_files"] = [{"path": SCRIPT, "content": script_text, "mode": "0755"},
                             {"path": CONFIG, "content": config_text, "mode": "0600"}]
    result["programs"] = [{"name": PROGRAM, "owner": result["owner"], "state": "started", "stopwaitsecs": 10,
                           "content": render_program(alerts, settings, script_text, config_text)}]
    result["directories"] = [{"path": LOG_DIR, "owner": "root", "mode": "0755"}]
    result["require"] = [{"kind": "executable", "value": alerts["python"],
                          "msg": "%s is not an executable file, but alerts are on: install python3 or set "
                                 "queue_workers_alert_python" % alerts["python"]}]
    return result
