"""Alerts from supervisor's own events, on the real stack (scenario alerts).

A webhook receiver on the container's loopback records every POST (prepare.yml). The
checks break the host the ways the guide's users meet: a worker that cannot start
(its app unreadable to the worker user), a crash loop, the receiver gone, the listener
itself killed; and they read the files and the playbook output for the webhook's secret.
They build on each other in file order.
"""

import json
import time

import pytest

from conftest import APP, EXPECT, metric, playbook, scrape, wait_until

SECRET = "T0KEN-alpha-7c1d9e"
OTHER_SECRET = "T0KEN-bravo-52aa0f"
RECORD = "/root/webhook.jsonl"
LISTENER = "queue-workers-alerts"
# One process whose name is its group's: supervisorctl shows it by that name alone.
LISTENER_PROCESS = LISTENER
VIDEO = "elms-video-worker:elms-video-worker_00"
DEFAULTS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
CRASH = "elms-crashloop:elms-crashloop_00"
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
CONFIG = "/etc/elms-queue-workers/alerts.json"
SCRIPT = "/usr/local/lib/elms-queue-workers/alert_listener.py"
STATE = "/var/lib/elms-queue-workers/alerts/state.json"
RATE_LIMIT = 5
PROM = "/var/lib/elms-queue-workers/metrics/elms_queue_workers.prom"


def alerts(host, since=0.0):
    """Every alert the receiver got after since: [body], in order."""
    text = host.run("cat %s 2>/dev/null" % RECORD).stdout
    found = []
    for line in text.splitlines():
        entry = json.loads(line)
        if entry["received_at"] >= since:
            assert entry["path"] == "/hooks/" + SECRET, entry["path"]
            found.append(entry["body"])
    return found


def wait_for_alert(host, since, seconds, **match):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = [a for a in alerts(host, since) if all(a.get(k) == v for k, v in match.items())]
        if found:
            return found[0]
        time.sleep(1)
    return None


def test_the_listener_runs_under_supervisor(supervisor_status):
    assert supervisor_status()[LISTENER_PROCESS][0] == "RUNNING"


def test_its_config_with_the_secret_is_root_only_and_no_readable_file_holds_the_secret(host):
    config = host.file(CONFIG)
    assert config.user == "root" and config.mode == 0o600
    assert SECRET in config.content_string
    # Every file others can read under the places the deploy writes: none holds the secret.
    found = host.run("grep -rl %s %s %s /usr/local/lib/elms-queue-workers /var/log/elms-queue-workers "
                     "/var/lib/elms-queue-workers 2>/dev/null" % (SECRET, EXPECT["include_dir"], EXPECT["config"]))
    assert found.stdout.split() == [], found.stdout
    assert host.file(SCRIPT).mode == 0o755


def test_a_verbose_diff_run_never_shows_the_secret(host, supervisor_status):
    before = supervisor_status()
    rc, out = playbook("site.yml", None, "-v", "--diff", "-e",
                       "queue_workers_alert_webhook=http://127.0.0.1:8931/hooks/%s" % OTHER_SECRET)
    assert rc == 0, out[-3000:]
    assert OTHER_SECRET not in out and SECRET not in out
    assert "alerts.json" in out, "the run did not change the listener's config: the check proves nothing"
    rc, out = playbook("site.yml", None, "-v", "--diff")
    assert rc == 0 and OTHER_SECRET not in out and SECRET not in out, out[-3000:]
    after = supervisor_status()
    # Only the listener restarted (its config changed twice); no worker did.
    assert {p: after[p] for p in DEFAULTS + [VIDEO]} == {p: before[p] for p in DEFAULTS + [VIDEO]}
    assert after[LISTENER_PROCESS][0] == "RUNNING"


@pytest.fixture(scope="module")
def broken_video_worker(host, supervisor_status):
    """The video worker restarted while its app is unreadable to www-data: it cannot start."""
    since = time.time()
    assert host.run("chmod 0700 %s" % APP).rc == 0
    restarted = host.run("%s restart 'elms-video-worker:*'" % CTL)
    assert "stopped" in restarted.stdout, restarted.stdout + restarted.stderr
    fatal = wait_for_alert(host, since, 60, process=VIDEO, event="FATAL")
    return {"since": since, "fatal": fatal}


def test_a_worker_that_cannot_start_is_alerted_as_fatal_within_a_minute(broken_video_worker):
    fatal = broken_video_worker["fatal"]
    assert fatal, "no FATAL alert for %s within 60 s" % VIDEO
    assert fatal["program"] == "elms-video-worker" and fatal["app"] == "elms" and fatal["to_state"] == "FATAL"
    assert "FATAL" in fatal["text"] and "elms-video-worker" in fatal["text"]
    assert isinstance(fatal["log_tail"], list)


def test_the_fatal_alert_reaches_syslog_and_the_mailbox_too(host, broken_video_worker):
    """The same FATAL, delivered by the host's rsyslog into /var/log/syslog and by its MTA into root's mailbox."""
    assert broken_video_worker["fatal"], "no FATAL alert to look for"
    text = broken_video_worker["fatal"]["text"]

    def in_syslog():
        found = host.run("grep -F 'elms-queue-workers' /var/log/syslog").stdout
        return [line for line in found.splitlines() if VIDEO in line and "FATAL" in line]
    assert wait_until(in_syslog, 60), host.run("tail -20 /var/log/syslog").stdout
    assert any(line.rstrip().endswith(text) or text in line for line in in_syslog()), (in_syslog(), text)

    def in_mailbox():
        return host.run("cat /var/mail/alerts 2>/dev/null").stdout
    assert wait_until(lambda: VIDEO in in_mailbox() and "FATAL" in in_mailbox(), 60), (
        in_mailbox()[-3000:] + host.run("tail -5 /var/log/exim4/mainlog").stdout)
    mailbox = in_mailbox()
    assert "To: alerts@localhost" in mailbox and "Subject: " in mailbox, mailbox[-3000:]
    assert SECRET not in mailbox


def test_the_listener_starts_it_again_once_the_app_is_readable_and_says_so(host, supervisor_status, broken_video_worker):
    assert host.run("chmod 0755 %s" % APP).rc == 0
    since = broken_video_worker["since"]
    retry = wait_for_alert(host, since, 60, process=VIDEO, event="RETRY")
    assert retry, "no retry alert: %s" % alerts(host, since)
    recovered = wait_for_alert(host, since, 60, process=VIDEO, event="RUNNING")
    assert recovered, "no recovery alert: %s" % alerts(host, since)
    assert supervisor_status()[VIDEO][0] == "RUNNING"


def test_a_backlog_over_its_threshold_is_alerted_from_the_apps_own_queue_size(host):
    since = time.time()
    assert host.run("%s stop 'elms-default-worker:*'" % CTL).rc == 0
    try:
        for number in range(5):
            dispatched = host.run("cd %s && runuser -u www-data -- php artisan elms:dispatch-ping backlog-%d-%d"
                                  % (APP, since, number))
            assert dispatched.rc == 0, dispatched.stderr
        # The listener asks the app every 30 s.
        backlog = wait_for_alert(host, since, 90, event="BACKLOG", program="default")
    finally:
        host.run("%s start 'elms-default-worker:*'" % CTL)
    assert backlog, "no backlog alert within 90 s: %s" % alerts(host, since)
    assert backlog["app"] == "elms" and "pending jobs (over 3)" in backlog["text"], backlog


def test_a_crash_loop_gives_at_most_the_rate_limits_alerts(host):
    since = time.time()
    log = host.run("grep -c 'exited: elms-crashloop' /var/log/supervisor/supervisord.log || true").stdout.strip()
    exits_before = int(log or 0)
    started = host.run("%s start 'elms-crashloop:*'" % CTL)
    assert "ERROR (no such" not in started.stdout, started.stdout

    def exits():
        out = host.run("grep -c 'exited: elms-crashloop' /var/log/supervisor/supervisord.log || true").stdout.strip()
        return int(out or 0) - exits_before
    try:
        assert wait_until(lambda: exits() >= 20, 60), "the crash loop exited only %d times" % exits()
    finally:
        host.run("%s stop 'elms-crashloop:*'" % CTL)
    time.sleep(5)
    sent = [a for a in alerts(host, since) if a.get("program") == "elms-crashloop"]
    assert 1 <= len(sent) <= RATE_LIMIT, sent
    # The state file is written with each alert that goes out, and at least every 60 s.
    held_back = 20 - 2 * RATE_LIMIT

    def state():
        return json.loads(host.file(STATE).content_string)
    assert wait_until(lambda: state()["suppressed"] >= held_back, 75), state()


def test_node_exporter_serves_the_workers_states_restarts_fatals_and_alerts(host, supervisor_status):
    status = supervisor_status()
    found = scrape(host)
    assert metric(found, "node_textfile_scrape_error") == 0, found
    assert metric(found, "elms_queue_workers_supervisor_up") == 1
    # Written every 10 s: the file is fresh (the host's clock).
    now = float(host.run("date +%s").stdout)
    assert now - metric(found, "elms_queue_workers_metrics_updated_timestamp_seconds") < 30
    for process in DEFAULTS + [VIDEO]:
        program = process.split(":")[0]
        labels = {"app": "elms", "program": program, "process": process}
        assert metric(found, "elms_queue_worker_process_state", state=status[process][0], **labels) == 1, process
        assert metric(found, "elms_queue_worker_process_state", state="FATAL", **labels) == 0, process
        assert metric(found, "elms_queue_worker_process_start_time_seconds", **labels) > 0
    # The earlier checks: the video worker went FATAL (its app unreadable) and was alerted, and the crash
    # loop restarted at least 20 times, its alerts held back by the rate limit.
    assert metric(found, "elms_queue_worker_program_fatal_total", app="elms", program="elms-video-worker") >= 1
    assert metric(found, "elms_queue_worker_program_alerts_sent_total", app="elms", program="elms-video-worker") >= 2
    crash = {"app": "elms", "program": "elms-crashloop", "process": CRASH}
    assert metric(found, "elms_queue_worker_process_restarts_total", **crash) >= 20
    assert metric(found, "elms_queue_worker_process_state", state="STOPPED", **crash) == 1
    assert metric(found, "elms_queue_worker_program_alerts_held_back_total", app="elms", program="elms-crashloop") >= 1
    assert host.file(PROM).mode == 0o644 and not host.run("ls -A /var/lib/elms-queue-workers/metrics | "
                                                          "grep -v '^elms_queue_workers.prom$'").stdout


def test_node_exporter_serves_the_queues_jobs_and_the_oldest_pending_jobs_age(host):
    assert host.run("%s stop 'elms-default-worker:*'" % CTL).rc == 0
    try:
        tag = int(time.time())
        for number in range(2):
            dispatched = host.run("cd %s && runuser -u www-data -- php artisan elms:dispatch-ping metrics-%d-%d"
                                  % (APP, tag, number))
            assert dispatched.rc == 0, dispatched.stderr
        # The app is asked every 30 s (queue_workers_backlog_interval); the file is written every 10 s.

        def pending():
            found = scrape(host)
            return (metric(found, "elms_queue_jobs", app="elms", queue="default") or 0) >= 2 and \
                (metric(found, "elms_queue_oldest_pending_job_age_seconds", app="elms", queue="default") or 0) > 0
        assert wait_until(pending, 90), scrape(host)
        found = scrape(host)
        age = metric(found, "elms_queue_oldest_pending_job_age_seconds", app="elms", queue="default")
        assert age <= time.time() - tag + 60, age
        assert metric(found, "elms_queue_jobs", app="elms", queue="video-encoding") is not None
    finally:
        host.run("%s start 'elms-default-worker:*'" % CTL)

    def drained():
        return metric(scrape(host), "elms_queue_jobs", app="elms", queue="default") == 0
    assert wait_until(drained, 90), scrape(host)


def test_a_dead_receiver_changes_nothing_for_supervisord_or_the_workers(host, supervisor_status):
    pid_before = host.run("%s pid" % CTL).stdout.strip()
    before = supervisor_status()
    assert host.run("systemctl stop elms-webhook-receiver").rc == 0
    failed_before = json.loads(host.file(STATE).content_string).get("failed", 0)
    try:
        # An unexpected exit of a worker, while nobody listens for the alert.
        host.run("kill -9 %d" % before[DEFAULTS[0]][1])
        assert wait_until(lambda: json.loads(host.file(STATE).content_string).get("failed", 0) > failed_before, 60)
    finally:
        host.run("systemd-run --unit elms-webhook-receiver /usr/bin/python3 /root/webhook_receiver.py 8931 %s" % RECORD)
    assert wait_until(lambda: supervisor_status()[DEFAULTS[0]][0] == "RUNNING", 30)
    after = supervisor_status()
    assert host.run("%s pid" % CTL).stdout.strip() == pid_before
    assert after[LISTENER_PROCESS] == before[LISTENER_PROCESS]
    assert {p: after[p] for p in [DEFAULTS[1], VIDEO]} == {p: before[p] for p in [DEFAULTS[1], VIDEO]}


def test_the_listener_killed_is_restarted_by_supervisor_and_goes_on(host, supervisor_status):
    # The receiver is back (the previous check restarted it).
    assert wait_until(lambda: host.run("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8931))'").rc == 0, 30)
    old = supervisor_status()[LISTENER_PROCESS][1]
    host.run("kill -9 %d" % old)
    assert wait_until(lambda: supervisor_status()[LISTENER_PROCESS][0] == "RUNNING"
                      and supervisor_status()[LISTENER_PROCESS][1] != old, 30)
    since = time.time()
    host.run("kill -9 %d" % supervisor_status()[DEFAULTS[1]][1])
    assert wait_for_alert(host, since, 60, process=DEFAULTS[1], event="EXITED"), alerts(host, since)


def test_the_diagnosis_says_alerting_runs_and_when_it_last_sent(host):
    # host: parametrized like the others, so that it runs in file order (before the removal).
    rc, out = playbook("diagnose.yml", None, "-e", "queue_workers_diagnose_fail=false", "-e", "queue_workers_diagnose_dir=")
    assert rc == 0, out[-3000:]
    out = " ".join(out.split()).replace("''", "'")
    assert "alerts" in out and "installed, last sent" in out, out[-3000:]
    assert SECRET not in out

