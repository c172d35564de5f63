"""The diagnose playbook on a healthy host and on hosts broken the ways the guide lists.

Each broken state is made for real (a file with the wrong extension, a group supervisord
has not added, storage/ the worker user cannot write, a sync queue, FFmpeg missing, a
failed job, a program file changed by hand and not applied, workers left running by a
killed supervisord, supervisord stopped); the report must name each one with its fix, and
the run must change nothing: neither the host nor its recap (changed=0).
"""

import os
import re
import time

import pytest

from conftest import APP, EXPECT, playbook

HOST = "elms-mol-diagnose"
DROP_IN = "/etc/systemd/system/supervisor.service.d"
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


def changed(out):
    """The changed= count of this host in the run's PLAY RECAP."""
    match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)\s" % re.escape(HOST), out, re.M)
    assert match, out
    return int(match.group(1))


def wait_for_running(host, count=3, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if host.run(CTL + " status").stdout.count(" RUNNING ") == count:
            return True
        time.sleep(1)
    return False


def test_a_healthy_host_is_reported_healthy_and_left_alone(host, report_dir):
    before = snapshot(host)
    # The first run also creates the report directory, on the controller: still no change.
    rc, out, report = diagnose(report_dir)
    assert rc == 0, out
    assert changed(out) == 0, out
    assert "Result: healthy: nothing to do" in report, report
    assert "[ OK ] supervisord" in report
    assert "program files go in %s/*%s" % (CONF_D, EXPECT["extension"]) in report
    assert re.search(r"^\[ OK \] running elms-default-worker +2 process\(es\) RUNNING$", report, re.M), report
    assert re.search(r"^\[ OK \] running elms-video-worker +1 process\(es\) RUNNING$", report, re.M), report
    assert re.search(r"^\[ OK \] orphans +no worker left running by a supervisord that is gone$", report, re.M), report
    # Read from the running processes, not from the file.
    assert re.search(r"^\[ OK \] isolation elms-video-worker +elms-video-worker runs at the CPU and I/O priority it asks for$",
                     report, re.M), report
    # The running workers' command lines are their files' (the video worker's behind nice and ionice).
    assert "[FAIL]" not in report and "[WARN]" not in report, report
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
    assert changed(out) == 0, out
    assert "Result: healthy: nothing to do" in report
    assert snapshot(host) == before


# These two run on the healthy host and put it back; the broken fixture below keeps the
# host broken until the end of the module.
def test_a_program_file_changed_by_hand_is_named_as_not_applied(host, report_dir, supervisor_status):
    path = "%s/elms-default-worker%s" % (CONF_D, EXPECT["extension"])
    pids = dict((name, pid) for name, (state, pid) in supervisor_status().items()
                if name.startswith("elms-default-worker:"))
    assert len(pids) == 2, pids
    host.check_output("sed -i 's/--sleep=3/--sleep=5/' %s && grep -q -- --sleep=5 %s" % (path, path))
    try:
        before = snapshot(host)
        rc, out, report = diagnose(report_dir)
        after = snapshot(host)
        cmdlines = [host.file("/proc/%s/cmdline" % pid).content_string for pid in pids.values()]
    finally:
        host.run("sed -i 's/--sleep=5/--sleep=3/' %s && %s reread" % (path, CTL))
    assert rc != 0, out
    assert changed(out) == 0, out
    assert before == after
    # Nothing was applied: the workers still run the command line of before.
    assert all("--sleep=3\0" in cmdline for cmdline in cmdlines), cmdlines
    line = next((text for text in report.splitlines() if text.startswith("[FAIL] loaded elms-default-worker")), "")
    assert "%s differs from what supervisord runs: a change was written but not applied" % path in line, report
    for name, pid in sorted(pids.items()):
        assert "pid %s (%s)" % (pid, name) in line, report
    assert "still run the older command line" in line
    assert "fix: run the site playbook, which applies it (or %s update elms-default-worker)" % CTL in report
    # One cause, one problem: the older command line is part of that finding.
    assert "Result: 1 problem(s)" in report, report


def test_isolation_that_did_not_take_effect_is_named(host, report_dir, supervisor_status):
    pid = supervisor_status()["elms-video-worker:elms-video-worker_00"][1]
    # Only its own user may lower its priority further (a container has no CAP_SYS_NICE);
    # a restart brings the program's own priority back.
    host.check_output("runuser -u www-data -- renice -n 15 -p %s" % pid)
    try:
        rc, out, report = diagnose(report_dir)
    finally:
        host.check_output("%s restart 'elms-video-worker:*'" % CTL)
    assert rc != 0, out
    assert changed(out) == 0, out
    assert "[FAIL] isolation elms-video-worker" in report, report
    assert "pid %s runs at nice 15, not 10" % pid in report, report


def test_workers_left_running_by_a_killed_supervisord_are_named(host, report_dir, supervisor_status):
    workers = dict((pid, name) for name, (state, pid) in supervisor_status().items() if state == "RUNNING")
    assert len(workers) == 3, workers
    pids = " ".join(str(pid) for pid in sorted(workers))
    files = snapshot(host)[0]
    # Debian's unit has KillMode=process: a supervisord killed with -9 leaves its workers
    # running, and systemd starts a new one only after RestartSec. A long RestartSec here keeps
    # systemd from starting it during the diagnosis, however slow the machine is.
    host.check_output("mkdir -p %s && printf '[Service]\\nRestartSec=600\\n' > %s/delay.conf && systemctl daemon-reload"
                      % (DROP_IN, DROP_IN))
    host.check_output("kill -9 $(%s pid)" % CTL)
    try:
        rc, out, report = diagnose(report_dir)
        alive = host.run("kill -0 %s" % pids).rc == 0
        files_after = snapshot(host)[0]
    finally:
        host.run("rm -rf %s && systemctl daemon-reload" % DROP_IN)
        # A start would wait for the unit's restart delay; a restart starts it now (its supervisord is dead).
        host.run("systemctl restart supervisor")
        host.run("kill -TERM %s" % pids)
        # An idle worker exits on SIGTERM within its --sleep; a busy one after its job.
        for _ in range(60):
            if not host.run("ps -o pid= -p %s" % pids.replace(" ", ",")).stdout.strip():
                break
            time.sleep(1)
        assert wait_for_running(host), host.run(CTL + " status").stdout
    assert rc != 0, out
    assert changed(out) == 0, out
    # The diagnosis stops nothing.
    assert alive and files_after == files
    line = next((text for text in report.splitlines() if text.startswith("[FAIL] orphans")), "")
    assert "3 worker process(es) left running by a supervisord that is gone" in line, report
    for pid, name in sorted(workers.items()):
        assert "pid %s (%s)" % (pid, name) in line, report
    assert "fix: they run old code unmanaged beside the managed ones; the site playbook stops them gracefully " \
           "(SIGTERM, the job finishes), or kill -TERM %s" % pids in report, report
    assert "but not running, so no worker is managed" in report, report


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
    artisan("queue:flush")
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
    assert changed(out) == 0, out


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
    assert changed(out) == 0, out
    lines = report.splitlines()
    assert lines[3].startswith("[FAIL] supervisord"), report
    assert "but not running, so no worker runs" in lines[3]
    assert "systemctl enable --now supervisor" in report
    assert re.search(r"^\[SKIP\] processes +not asked: supervisord is not running$", report, re.M), report
    # A clean stop leaves no worker behind.
    assert re.search(r"^\[ OK \] orphans ", report, re.M), report
