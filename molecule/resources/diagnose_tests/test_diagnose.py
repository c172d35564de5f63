"""The diagnose playbook on a healthy host and on hosts broken the ways the guide lists.

Each broken state is made for real (a file with the wrong extension, a group supervisord
has not added, storage/ the worker user cannot write, a sync queue, FFmpeg missing, a
failed job, supervisord stopped); the report must name each one with its fix, and the
run must change nothing.
"""

import os
import re

import pytest

from conftest import APP, EXPECT, playbook

HOST = "elms-mol-diagnose"
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
CONF_D = EXPECT["include_dir"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("reports"))


def diagnose(report_dir, *extra):
    """Run it the way an admin does: from some directory, with the default (relative) report dir."""
    rc, out = playbook("elms.queue_workers.diagnose", None, *extra, cwd=report_dir)
    path = os.path.join(report_dir, "diagnose-reports", HOST + ".txt")
    report = open(path).read() if os.path.exists(path) else ""
    os.path.exists(path) and os.remove(path)
    return rc, out, report


def snapshot(host):
    """What a read-only run must leave alone: program files and worker pids."""
    files = host.run("cd %s && sha256sum *" % CONF_D).stdout
    status = host.run(CTL + " status | awk '{print $1, $2, $4}'").stdout
    return files, status


def test_a_healthy_host_is_reported_healthy_and_left_alone(host, report_dir):
    before = snapshot(host)
    rc, out, report = diagnose(report_dir)
    assert rc == 0, out
    assert "Result: healthy: nothing to do" in report, report
    assert "[ OK ] supervisord" in report
    assert "program files go in %s/*%s" % (CONF_D, EXPECT["extension"]) in report
    assert re.search(r"^\[ OK \] running elms-default-worker +2 process\(es\) RUNNING$", report, re.M), report
    assert re.search(r"^\[ OK \] running elms-video-worker +1 process\(es\) RUNNING$", report, re.M), report
    assert "www-data runs 'artisan queue:work --once' (exit 0)" in report
    assert "encodes HLS" in report
    assert "--- last lines of %s/storage/logs/worker-video.log (worker elms-video-worker)" % APP in report
    assert "--- last lines of /var/log/supervisor/supervisord.log (supervisord)" in report
    # The printed report is the file's.
    assert report.splitlines()[0] in out
    assert snapshot(host) == before


def test_check_mode_gives_the_same_report(host, report_dir):
    before = snapshot(host)
    rc, out, report = diagnose(report_dir, "--check")
    assert rc == 0, out
    assert "Result: healthy: nothing to do" in report
    assert snapshot(host) == before


@pytest.fixture(scope="module")
def broken(host, artisan, wait_for_file, report_dir):
    """Break the host six ways at once, diagnose it, then repair it."""
    # A video job that fails: its source does not exist, and the worker has --tries=1.
    assert artisan("elms:dispatch-encode", "doomed", "--source=/nonexistent.mp4").rc == 0
    for _ in range(60):
        if "EncodeVideoToHls" in artisan("queue:failed").stdout:
            break
        host.run("sleep 1")
    else:
        pytest.fail("the doomed encode did not fail: " + artisan("queue:failed").stdout)
    steps = [
        # The video worker's file with the RHEL extension, in a directory that loads *.conf.
        "mv {d}/elms-video-worker{e} {d}/elms-video-worker.ini && {ctl} reread && {ctl} update",
        # The default worker read by supervisord but taken out (the 'forgot update' state).
        "{ctl} stop 'elms-default-worker:*' && {ctl} remove elms-default-worker",
        "chown root:root {app}/storage/logs && chmod 755 {app}/storage/logs",
        "sed -i 's/^QUEUE_CONNECTION=.*/QUEUE_CONNECTION=sync/' {app}/.env",
        "mv /usr/bin/ffmpeg /usr/bin/ffmpeg.off",
    ]
    for step in steps:
        host.check_output(step.format(d=CONF_D, e=EXPECT["extension"], ctl=CTL, app=APP))
    before = snapshot(host)
    result = diagnose(report_dir)
    after = snapshot(host)
    yield result, before, after
    for step in [
        "mv /usr/bin/ffmpeg.off /usr/bin/ffmpeg",
        "sed -i 's/^QUEUE_CONNECTION=.*/QUEUE_CONNECTION=database/' {app}/.env",
        "chown www-data:www-data {app}/storage/logs",
        "mv {d}/elms-video-worker.ini {d}/elms-video-worker{e}",
        "{ctl} reread; {ctl} update",
    ]:
        host.run(step.format(d=CONF_D, e=EXPECT["extension"], ctl=CTL, app=APP))
    for _ in range(30):
        if host.run(CTL + " status").stdout.count(" RUNNING ") == 3:
            break
        host.run("sleep 1")


def test_a_broken_host_fails_the_run_and_is_not_changed(broken):
    (rc, out, report), before, after = broken
    assert rc != 0
    assert "problem(s) found on %s" % HOST in out
    assert before == after


@pytest.mark.parametrize("words", [
    pytest.param(["[FAIL] file elms-video-worker", "%s/elms-video-worker.ini, which supervisord does not load" % CONF_D,
                  "fix: move it to %s/elms-video-worker%s" % (CONF_D, EXPECT["extension"])], id="wrong-extension"),
    pytest.param(["[FAIL] loaded elms-default-worker", "read but not added",
                  "fix: %s update elms-default-worker" % CTL], id="not-added"),
    pytest.param(["[FAIL] storage", "www-data cannot write storage/logs/", "fix: chown -R www-data"], id="storage"),
    pytest.param(["[FAIL] queue", "QUEUE_CONNECTION is sync", "fix: set QUEUE_CONNECTION=database"], id="sync"),
    pytest.param(["[FAIL] ffmpeg", "ffmpeg is not on PATH"], id="no-ffmpeg"),
    pytest.param(["[WARN] jobs", "1 failed job(s)", "queue:retry all"], id="failed-job"),
])
def test_the_report_names_each_fault_and_its_fix(broken, words):
    (rc, out, report), before, after = broken
    missing = [word for word in words if word not in report]
    assert missing == [], report


def test_stopped_supervisord_is_named_first(host, report_dir):
    host.check_output("systemctl stop supervisor")
    try:
        rc, out, report = diagnose(report_dir)
    finally:
        host.check_output("systemctl start supervisor")
    assert rc != 0
    lines = report.splitlines()
    assert lines[3].startswith("[FAIL] supervisord"), report
    assert "but not running, so no worker runs" in lines[3]
    assert "systemctl enable --now supervisor" in report
    assert "avail/status not asked: supervisord is not running" in report
