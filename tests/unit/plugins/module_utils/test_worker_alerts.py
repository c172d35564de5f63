"""Alerting: the listener program and files a deploy adds, the checks of its settings, and their removal."""

import configparser
import json
import shlex

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import diagnosis as dg
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as ps
from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps as qa
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_alerts as wa

SETTINGS = {"app_dir": "/var/www/html", "php": "/usr/bin/php", "user": "www-data", "connection": "",
            "stopwait_margin": 30, "owner": "elms.queue_workers", "log_dir": "storage/logs"}
APPS = [{"name": "elms", "programs": [{"name": "elms-video-worker", "queue": "video-encoding",
                                       "log": "storage/logs/worker-video.log"},
                                      {"name": "elms-old", "queue": "x", "state": "absent"}]},
        {"name": "shop", "dir": "/srv/shop/current", "user": "shop",
         "programs": [{"name": "shop-worker", "queue": "orders"}, {"name": "shop-scheduler", "kind": "schedule"}]}]
SECRET = "https://hooks.example.org/services/T000/B000/very-secret-token"
ALERTS = {"webhook": SECRET, "syslog": False, "mail_to": [], "rate_limit": {"alerts": 3, "seconds": 600},
          "fatal_retry": {"delays": [60, 180, 360]}, "backoff_after": 30, "log_lines": 10, "backlog": {},
          "backlog_interval": 300, "python": "/usr/bin/python3", "host": "web1", "supervisor_config": ""}
SCRIPT = "#!/usr/bin/python3\nprint('listener')\n"


def apps_plan(apps=None):
    return qa.plan(apps or APPS, SETTINGS)


def test_a_webhook_adds_one_listener_for_every_program_of_the_apps():
    plan = wa.plan(ALERTS, apps_plan(), SETTINGS, SCRIPT)
    assert plan["errors"] == []
    assert [p["name"] for p in plan["programs"]] == [wa.PROGRAM]
    program = plan["programs"][0]
    assert ps.owner_of(program["content"]) == "elms.queue_workers/alerts" == plan["owner"]
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(program["content"])
    section = dict(parser.items("eventlistener:%s" % wa.PROGRAM))
    argv = shlex.split(section["command"])
    assert argv[:4] == ["/usr/bin/python3", wa.SCRIPT, "--config", wa.CONFIG]
    assert "PROCESS_STATE" in section["events"] and section["stdout_logfile"] == "NONE"
    files = dict((f["path"], f) for f in plan["extra_files"])
    assert files[wa.CONFIG]["mode"] == "0600" and files[wa.SCRIPT]["content"] == SCRIPT
    config = json.loads(files[wa.CONFIG]["content"])
    assert config["programs"] == {
        "elms-video-worker": {"app": "elms", "log": "/var/www/html/storage/logs/worker-video.log"},
        "shop-worker": {"app": "shop", "log": "/srv/shop/current/storage/logs/shop-worker.log"},
        "shop-scheduler": {"app": "shop", "log": "/srv/shop/current/storage/logs/shop-scheduler.log"}}
    assert config["channels"]["webhook"]["url"] == SECRET
    assert config["fatal_retry"] == {"delays": [60, 180, 360]} and config["host"] == "web1"


def test_the_secret_is_only_in_the_root_only_config():
    plan = wa.plan(ALERTS, apps_plan(), SETTINGS, SCRIPT)
    assert SECRET not in plan["programs"][0]["content"]
    assert "very-secret-token" not in json.dumps(plan["programs"]) + json.dumps(plan["require"])
    assert all(SECRET not in e for e in wa.errors(dict(ALERTS, webhook=SECRET + " x"), apps_plan()))


def test_the_listener_restarts_when_its_script_or_config_changes_and_not_otherwise():
    first = wa.plan(ALERTS, apps_plan(), SETTINGS, SCRIPT)["programs"][0]["content"]
    assert wa.plan(ALERTS, apps_plan(), SETTINGS, SCRIPT)["programs"][0]["content"] == first
    assert wa.plan(ALERTS, apps_plan(), SETTINGS, SCRIPT + "#\n")["programs"][0]["content"] != first
    assert wa.plan(dict(ALERTS, webhook=SECRET + "2"), apps_plan(), SETTINGS, SCRIPT)["programs"][0]["content"] != first


def test_no_channel_removes_the_listener_and_its_files():
    plan = wa.plan(dict(ALERTS, webhook=""), apps_plan(), SETTINGS, SCRIPT)
    assert plan["errors"] == [] and plan["programs"] == []
    assert plan["owner"] == "elms.queue_workers/alerts"
    assert sorted((f["path"], f["state"]) for f in plan["extra_files"]) == [(wa.CONFIG, "absent"), (wa.SCRIPT, "absent")]


def test_switches_given_as_strings_on_the_command_line_mean_what_they_say():
    # ansible-playbook -e queue_workers_alert_syslog=false gives the string "false".
    assert wa.plan(dict(ALERTS, webhook="", syslog="false"), apps_plan(), SETTINGS, SCRIPT)["programs"] == []
    on = wa.plan(dict(ALERTS, webhook="", syslog="true"), apps_plan(), SETTINGS, SCRIPT)
    config = json.loads(dict((f["path"], f) for f in on["extra_files"])[wa.CONFIG]["content"])
    assert config["channels"]["syslog"]["facility"] == "daemon"


def test_syslog_or_mail_alone_also_install_it():
    assert wa.plan(dict(ALERTS, webhook="", syslog=True), apps_plan(), SETTINGS, SCRIPT)["programs"]
    plan = wa.plan(dict(ALERTS, webhook="", mail_to=["ops@example.org"]), apps_plan(), SETTINGS, SCRIPT)
    config = json.loads(dict((f["path"], f) for f in plan["extra_files"])[wa.CONFIG]["content"])
    assert config["channels"]["mail"]["to"] == ["ops@example.org"] and config["channels"]["webhook"] is None


def test_backlog_thresholds_go_to_the_app_whose_workers_serve_the_queue():
    plan = wa.plan(dict(ALERTS, backlog={"orders": 20}), apps_plan(), SETTINGS, SCRIPT)
    config = json.loads(dict((f["path"], f) for f in plan["extra_files"])[wa.CONFIG]["content"])
    assert config["backlog"] == {"interval": 300, "apps": {"shop": {
        "dir": "/srv/shop/current", "user": "shop", "php": "/usr/bin/php", "connection": "", "queues": {"orders": 20}}}}


def test_metrics_alone_run_the_listener_and_probe_every_queue_of_the_apps():
    quiet = dict(ALERTS, webhook="", metrics_dir="/var/lib/prometheus/node-exporter/")
    assert wa.enabled(quiet) and not wa.enabled(dict(quiet, metrics_dir=""))
    plan = wa.plan(dict(quiet, backlog={"orders": 20}), apps_plan(), SETTINGS, SCRIPT)
    assert plan["errors"] == [] and [p["name"] for p in plan["programs"]] == [wa.PROGRAM]
    config = json.loads(dict((f["path"], f) for f in plan["extra_files"])[wa.CONFIG]["content"])
    assert config["metrics_dir"] == "/var/lib/prometheus/node-exporter"
    assert config["channels"] == {"webhook": None, "syslog": None, "mail": None}
    # Every queue a present worker serves; the alert threshold kept, null where there is none.
    assert config["backlog"]["apps"]["shop"]["queues"] == {"orders": 20}
    assert config["backlog"]["apps"]["elms"]["queues"] == {"video-encoding": None}


@pytest.mark.parametrize("change, words", [
    pytest.param({"webhook": "ftp://x/y"}, "queue_workers_alert_webhook must be an http", id="webhook-scheme"),
    pytest.param({"mail_to": "ops@example.org"}, "queue_workers_alert_mail_to", id="mail-not-a-list"),
    pytest.param({"mail_to": ["ops"]}, "queue_workers_alert_mail_to", id="mail-bad-address"),
    pytest.param({"syslog": "kern"}, "queue_workers_alert_syslog = 'kern'", id="syslog-facility"),
    pytest.param({"rate_limit": {"alerts": 0, "seconds": 600}}, "queue_workers_alert_rate_limit", id="rate-zero"),
    pytest.param({"fatal_retry": {"delays": [60, -1]}}, "queue_workers_fatal_retry", id="retry-negative"),
    pytest.param({"fatal_retry": [60]}, "queue_workers_fatal_retry", id="retry-not-a-mapping"),
    pytest.param({"backoff_after": 0}, "queue_workers_alert_backoff_after", id="backoff-zero"),
    pytest.param({"backlog": {"orders": 0}}, "queue_workers_backlog_alert.orders = 0", id="backlog-zero"),
    pytest.param({"backlog": {"nope": 5}}, "no queue worker of the deploy's apps works on queue nope", id="backlog-queue"),
    pytest.param({"backlog": {"orders": 5}, "backlog_interval": 5}, "queue_workers_backlog_interval", id="backlog-often"),
    pytest.param({"python": "python3"}, "queue_workers_alert_python", id="python-relative"),
    pytest.param({"metrics_dir": "var/lib/metrics"}, "queue_workers_metrics_dir = 'var/lib/metrics' must be an absolute",
                 id="metrics-relative"),
    pytest.param({"metrics_dir": "/"}, "queue_workers_metrics_dir = '/'", id="metrics-root"),
    pytest.param({"metrics_dir": "/var/lib/my metrics"}, "without spaces", id="metrics-space"),
    pytest.param({"metrics_dir": ["/x"]}, "queue_workers_metrics_dir", id="metrics-not-a-string"),
    pytest.param({"metrics_dir": "/m", "backlog_interval": 10}, "queue_workers_backlog_interval", id="metrics-often"),
])
def test_bad_alert_settings_are_named(change, words):
    problems = wa.errors(dict(ALERTS, **change), apps_plan())
    assert any(words in p for p in problems), problems
    assert wa.plan(dict(ALERTS, **change), apps_plan(), SETTINGS, SCRIPT)["programs"] == []


def obs_alerts(**alerts):
    return {"alerts": dict({"program": wa.PROGRAM, "log": wa.LOG}, **alerts)}


def test_the_diagnosis_says_whether_alerting_runs_and_when_it_last_sent():
    assert dg._alerts({}) == []
    assert dg._alerts(obs_alerts(installed=False))[0]["status"] == dg.SKIP
    down = dg._alerts(obs_alerts(installed=True, states=["FATAL"]))[0]
    assert down["status"] == dg.FAIL and "FATAL" in down["summary"]
    quiet = dg._alerts(obs_alerts(installed=True, states=["RUNNING"], state={"sent": 0}))[0]
    assert quiet["status"] == dg.OK and "has sent nothing yet" in quiet["summary"]
    sent = dg._alerts(obs_alerts(installed=True, states=["RUNNING"], state={
        "sent": 4, "suppressed": 17, "failed": 1, "retrying": {"w:w_00": {"attempt": 2}},
        "last_sent": {"time": "2026-11-30T04:00:00Z", "event": "FATAL", "process": "w:w_00",
                      "channels_failed": ["webhook"]}}))[0]
    assert sent["status"] == dg.WARN
    assert "last sent FATAL at 2026-11-30T04:00:00Z (w:w_00)" in sent["summary"]
    assert "17 held back" in sent["summary"] and "w:w_00 (attempt 2)" in sent["summary"]


def test_the_diagnosis_runs_each_other_kinds_probe():
    app = {"dir": "/srv/shop/current", "user": "shop", "artisan_exists": True, "user_exists": True,
           "kind_probes": [{"kind": "schedule", "command": "schedule:list", "rc": 0, "output": ""},
                           {"kind": "horizon", "command": "horizon:status", "rc": 1,
                            "output": "Command \"horizon:status\" is not defined."}]}
    found = dict((f["check"], f) for f in dg._app({"app": app}))
    assert found["schedule:list"]["status"] == dg.OK
    assert found["horizon:status"]["status"] == dg.FAIL and "is not defined" in found["horizon:status"]["summary"]
