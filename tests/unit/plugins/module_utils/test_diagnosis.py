"""The diagnosis's judgement: observations of a host in, findings with their fix out."""

import copy

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import diagnosis as dg

SUP = {"running": True, "pid": 42, "config_file": "/etc/supervisor/supervisord.conf", "config_source": "argv",
       "supervisord_path": "/usr/bin/supervisord", "supervisorctl_path": "/usr/bin/supervisorctl",
       "include_globs": ["/etc/supervisor/conf.d/*.conf"], "include_dir": "/etc/supervisor/conf.d",
       "include_extension": ".conf", "service_name": "supervisor", "problems": []}
AVAIL = """elms-default-worker:elms-default-worker_00 in use    auto      999:999
elms-default-worker:elms-default-worker_01 in use    auto      999:999
elms-video-worker:elms-video-worker_00 in use    auto      999:999
"""
STATUS = """elms-default-worker:elms-default-worker_00   RUNNING   pid 10, uptime 0:01:00
elms-default-worker:elms-default-worker_01   RUNNING   pid 11, uptime 0:01:00
elms-video-worker:elms-video-worker_00       RUNNING   pid 12, uptime 0:01:00
"""
HEALTHY = {
    "supervisor": SUP,
    "programs": [{"name": n, "file": "/etc/supervisor/conf.d/%s.conf" % n, "file_exists": True, "file_owned": True,
                  "defined_in": []} for n in ("elms-default-worker", "elms-video-worker")],
    "supervisorctl": {"avail": AVAIL, "status": STATUS},
    "app": {"dir": "/var/www/html", "user": "www-data", "artisan_exists": True, "user_exists": True,
            "unwritable": [], "writable_checked": True, "queue_work": {"rc": 0, "output": ""},
            "dotenv": {"QUEUE_CONNECTION": "database"}, "config_cached": False},
    "probe": {"default": "database", "sizes": {"default": 0, "video-encoding": 1}, "failed": 0},
    "ffmpeg": {"path": "/usr/bin/ffmpeg", "rc": 0, "encoders": "libx264 + aac"},
}


def broken(**changes):
    obs = copy.deepcopy(HEALTHY)
    for path, value in changes.items():
        target = obs
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value
    return obs


def failing(obs):
    return [f for f in dg.evaluate(obs) if f["status"] in (dg.FAIL, dg.WARN)]


def test_a_healthy_host_has_no_finding_to_act_on():
    findings = dg.evaluate(HEALTHY)
    assert failing(HEALTHY) == []
    assert dg.summary(findings) == "healthy: nothing to do"
    assert [f["check"] for f in findings][:2] == ["supervisord", "config"]


@pytest.mark.parametrize("changes, status, words", [
    pytest.param({"supervisor__running": False}, dg.FAIL, ["not running", "systemctl enable --now supervisor"],
                 id="stopped"),
    pytest.param({"supervisor__running": False, "supervisor__supervisord_path": None}, dg.FAIL,
                 ["not installed", "site playbook"], id="not-installed"),
    pytest.param({"supervisor__problems": ["no [include] section in /etc/supervisord.conf"]}, dg.FAIL,
                 ["no [include] section"], id="detection-problem"),
    pytest.param({"programs__1__file_exists": False,
                  "programs__1__defined_in": ["/etc/supervisor/conf.d/elms-video-worker.ini"],
                  "supervisorctl__avail": AVAIL.splitlines()[0] + "\n" + AVAIL.splitlines()[1]},
                 dg.FAIL, ["elms-video-worker.ini, which supervisord does not load", "move it to"],
                 id="wrong-extension"),
    pytest.param({"programs__1__file_exists": False, "programs__1__defined_in": ["/etc/supervisor/conf.d/video.conf"]},
                 dg.WARN, ["defined in /etc/supervisor/conf.d/video.conf", "queue_workers_take_over"], id="hand-made-copy"),
    pytest.param({"programs__1__file_exists": False}, dg.FAIL, ["no program file", "does not exist"], id="no-file"),
    pytest.param({"supervisorctl__avail": AVAIL.replace("in use", "avail")}, dg.FAIL,
                 ["read but not added", "/usr/bin/supervisorctl -c /etc/supervisor/supervisord.conf update"], id="avail"),
    pytest.param({"supervisorctl__avail": AVAIL.splitlines()[0]}, dg.FAIL, ["has not read", "reread"], id="not-read"),
    pytest.param({"supervisorctl__status": STATUS.replace("RUNNING   pid 12, uptime 0:01:00", "FATAL     Exited too quickly")},
                 dg.FAIL, ["1 of 1 process(es) not RUNNING", "FATAL", "start 'elms-video-worker:*'"], id="fatal"),
    pytest.param({"supervisorctl__error": "unix:///var/run/supervisor.sock no such file"}, dg.FAIL,
                 ["cannot talk to supervisord", "serverurl"], id="socket"),
    pytest.param({"app__artisan_exists": False}, dg.FAIL, ["artisan does not exist", "queue_workers_app_dir"], id="no-app"),
    pytest.param({"app__user_exists": False}, dg.FAIL, ["www-data does not exist"], id="no-user"),
    pytest.param({"app__unwritable": ["storage/logs/"]}, dg.FAIL, ["cannot write storage/logs/", "chown -R www-data"],
                 id="storage"),
    pytest.param({"app__queue_work": {"rc": 1, "output": "PDOException: could not find driver"}}, dg.FAIL,
                 ["exits 1", "could not find driver"], id="queue-work"),
    pytest.param({"probe__default": "sync"}, dg.FAIL, ["QUEUE_CONNECTION is sync", "QUEUE_CONNECTION=database"], id="sync"),
    pytest.param({"app__dotenv": None}, dg.WARN, [".env does not exist"], id="no-dotenv"),
    pytest.param({"app__config_cached": True, "app__dotenv": {"QUEUE_CONNECTION": "redis"}}, dg.WARN,
                 ["cached config says database", "config:cache"], id="cached-config"),
    pytest.param({"probe__failed": 3}, dg.WARN, ["3 failed job(s)", "queue:retry all"], id="failed-jobs"),
    pytest.param({"probe": {"error": "PHP Fatal error: boom"}}, dg.WARN, ["could not be asked", "boom"], id="probe-error"),
    pytest.param({"ffmpeg": {}}, dg.FAIL, ["ffmpeg is not on PATH"], id="no-ffmpeg"),
    pytest.param({"ffmpeg": {"path": "/usr/bin/ffmpeg", "rc": 1, "output": "Unknown encoder 'libx264'"}}, dg.FAIL,
                 ["cannot encode HLS", "Unknown encoder"], id="ffmpeg-broken"),
])
def test_each_fault_is_named_with_its_fix(changes, status, words):
    found = failing(broken(**changes))
    assert found, "no finding for %s" % changes
    assert found[0]["status"] == status
    text = " ".join("%s %s" % (f["summary"], f["fix"]) for f in found)
    assert [w for w in words if w not in text] == []


def test_a_stopped_supervisord_skips_the_supervisorctl_checks():
    findings = dg.evaluate(broken(supervisor__running=False))
    assert {"check": "supervisorctl", "status": dg.SKIP, "fix": None,
            "summary": "avail/status not asked: supervisord is not running"} in findings


def test_a_file_in_the_main_config_counts_as_loaded():
    obs = broken(programs__0__file_exists=False, programs__0__defined_in=[SUP["config_file"]])
    found = failing(obs)
    assert [f["status"] for f in found] == [dg.WARN]


def test_parsers_read_supervisorctl_and_dotenv_output():
    assert dg.parse_avail(AVAIL.replace("in use", "avail", 1)) == {
        "elms-default-worker": {"in use": 1, "avail": 1}, "elms-video-worker": {"in use": 1, "avail": 0}}
    assert dg.parse_status("solo  STOPPED   Not started\n")["solo"] == [("solo", "STOPPED", "Not started")]
    env = dg.parse_dotenv('# c\nexport QUEUE_CONNECTION="redis"\nA=b # note\nB=\'x # y\'\nnot a line\n')
    assert env == {"QUEUE_CONNECTION": "redis", "A": "b", "B": "x # y"}
    assert dg.program_sections("[program:a]\n x=1\n[program:b c]\n[group:g]\n") == ["a", "b c"]


def test_the_report_puts_findings_and_fixes_first_then_the_logs():
    obs = broken(**{"probe__default": "sync"})
    text = dg.format_report("web1", dg.evaluate(obs), [
        {"what": "worker elms-video-worker", "path": "/x.log", "tail": ["line 1"], "missing": False},
        {"what": "supervisord", "path": "/y.log", "tail": None, "missing": True}])
    lines = text.splitlines()
    assert lines[:2] == ["eLMS queue workers: diagnosis of web1", "Result: 1 problem(s), 0 warning(s)"]
    fail = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] queue"))
    assert "fix: set QUEUE_CONNECTION=database" in lines[fail + 1]
    assert lines[-5:] == ["--- last lines of /x.log (worker elms-video-worker)", "line 1", "",
                          "--- last lines of /y.log (supervisord)", "(no such file)"]
