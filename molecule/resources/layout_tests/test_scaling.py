"""A worker that follows its queue, on the real stack (scenario alerts).

elms-burst-worker has numprocs {min: 1, max: 3, clear_seconds: 10, step: 2, cooldown: 10}: its
own program runs one process, its spare program two more that the alert listener starts and
stops from the backlog of queue burst (measured every 5 s) and the job runtimes in the
worker's log. The jobs are the fixture's elms:dispatch-ping with --cpu-ms (a job that works
that long and writes a marker with its pid). The checks build on each other in file order,
and run after test_alerts.py; the last one removes the listener.
"""

import json
import re
import time

from conftest import APP, EXPECT, metric, playbook, scrape, wait_until

BURST = "elms-burst-worker"
SPARE = BURST + "-spare"
BASE = "%s:%s_00" % (BURST, BURST)
SPARES = ["%s:%s_%02d" % (SPARE, BURST, n) for n in (1, 2)]
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
CONFIG = "/etc/elms-queue-workers/alerts.json"
LISTENER = "queue-workers-alerts"
LISTENER_LOG = "/var/log/elms-queue-workers/alerts.log"
WORKER_LOG = APP + "/storage/logs/%s.log" % BURST
SUPERVISORD_LOG = "/var/log/supervisor/supervisord.log"
MARKERS = APP + "/storage/app/markers"
LABELS = {"app": "elms", "program": BURST}


def up(status):
    """The burst worker's processes RUNNING, its own and its spares."""
    return sum(1 for p in [BASE] + SPARES if status.get(p, ("", None))[0] == "RUNNING")


def size(host, path):
    return int(host.run("stat -c %%s %s 2>/dev/null || echo 0" % path).stdout.strip() or 0)


def since(host, path, offset):
    """What was written to path after offset bytes."""
    return host.run("tail -c +%d %s" % (offset + 1, path)).stdout


def dispatch(host, tag, count, cpu_ms):
    names = ["%s-%d" % (tag, n) for n in range(count)]
    done = host.run("cd %s && for m in %s; do runuser -u www-data -- php artisan elms:dispatch-ping \"$m\" "
                    "--cpu-ms=%d --queue=burst || exit 1; done" % (APP, " ".join(names), cpu_ms))
    assert done.rc == 0, done.stdout + done.stderr
    return names


def markers(host, names):
    """{name: marker} of the jobs that finished."""
    found = {}
    for name in names:
        path = "%s/%s.json" % (MARKERS, name)
        if host.file(path).exists:
            found[name] = json.loads(host.file(path).content_string)
    return found


def failed_jobs(host):
    return host.run("cd %s && runuser -u www-data -- php artisan queue:failed" % APP).stdout


def scaled_metric(host, name="elms_queue_workers_scaled_processes", **labels):
    return metric(scrape(host), name, **dict(LABELS, **labels))


def test_the_minimum_runs_and_the_spares_wait_for_the_scaler(host, supervisor_status):
    spare_file = host.file("%s/%s%s" % (EXPECT["include_dir"], SPARE, EXPECT["extension"]))
    assert host.file("%s/%s%s" % (EXPECT["include_dir"], BURST, EXPECT["extension"])).exists
    assert spare_file.exists
    for line in ("numprocs=2", "numprocs_start=1", "autostart=false", "process_name=%s_%%(process_num)02d" % BURST):
        assert line in spare_file.content_string.splitlines(), line
    status = supervisor_status()
    assert status[BASE][0] == "RUNNING" and [status[p][0] for p in SPARES] == ["STOPPED", "STOPPED"], status
    config = json.loads(host.run("cat %s" % CONFIG).stdout)
    assert config["scaling"][BURST] == {
        "app": "elms", "spare": SPARE, "min": 1, "max": 3, "queues": ["burst"], "clear_seconds": 10, "step": 2,
        "cooldown": 10, "log": WORKER_LOG}
    assert config["backlog"]["interval"] == 5
    assert wait_until(lambda: scaled_metric(host) == 1, 30), scrape(host)
    found = scrape(host)
    assert metric(found, "elms_queue_workers_scaled_processes_min", **LABELS) == 1
    assert metric(found, "elms_queue_workers_scaled_processes_max", **LABELS) == 3


def test_a_burst_scales_up_to_max_and_back_to_the_minimum_after_the_cooldown(host, supervisor_status):
    failed_before = failed_jobs(host)
    offset = size(host, LISTENER_LOG)
    names = dispatch(host, "burst-%d" % time.time(), 12, 2500)
    # No job measured yet: each counts clear_seconds, so 12 pending want 12, capped at max.
    assert wait_until(lambda: up(supervisor_status()) == 3, 30), supervisor_status()
    assert wait_until(lambda: scaled_metric(host) == 3, 30), scrape(host)
    assert wait_until(lambda: len(markers(host, names)) == len(names), 120), markers(host, names)
    # Every process worked: the spares took jobs.
    assert len(set(m["pid"] for m in markers(host, names).values())) == 3, markers(host, names)
    # Drained: after the cooldown, down to the minimum (step 2: at once).
    assert wait_until(lambda: up(supervisor_status()) == 1, 60), supervisor_status()
    status = supervisor_status()
    assert status[BASE][0] == "RUNNING" and [status[p][0] for p in SPARES] == ["STOPPED", "STOPPED"], status
    lines = [line for line in since(host, LISTENER_LOG, offset).splitlines() if "scale %s " % BURST in line]
    assert any(re.search(r"scale %s 1 -> 3: backlog \d+ \(burst \d+\).*wants" % BURST, line) for line in lines), lines
    assert any(re.search(r"scale %s \d -> 1: backlog \d+ \(burst \d+\)" % BURST, line) for line in lines), lines
    assert failed_jobs(host) == failed_before
    assert wait_until(lambda: scaled_metric(host) == 1, 30), scrape(host)
    found = scrape(host)
    assert metric(found, "elms_queue_workers_scale_decisions_total", direction="up", **LABELS) >= 1
    assert metric(found, "elms_queue_workers_scale_decisions_total", direction="down", **LABELS) >= 1
    assert metric(found, "elms_queue_workers_scaled_processes_wanted", **LABELS) == 1
    assert 1 <= metric(found, "elms_queue_workers_job_duration_seconds_average", **LABELS) <= 5


def test_an_encode_and_a_job_in_processes_chosen_for_stopping_finish(host, supervisor_status):
    """Spares busy with an HLS encode and a 25 s job while the backlog (2 jobs of a queue whose jobs took ~2.5 s)
    wants 1 process: the scaler stops both spares in the middle of their work, which finishes."""
    failed_before = failed_jobs(host)
    supervisord_offset = size(host, SUPERVISORD_LOG)
    # While the worker's own program is stopped, the scaler leaves the spares alone: start them by hand.
    assert host.run("%s stop '%s:*'" % (CTL, BURST)).rc == 0
    assert host.run("%s start '%s:*'" % (CTL, SPARE)).rc == 0
    assert wait_until(lambda: [supervisor_status()[p][0] for p in SPARES] == ["RUNNING", "RUNNING"], 30)
    pids = set(supervisor_status()[p][1] for p in SPARES)
    offset = size(host, WORKER_LOG)
    tag = "stop-%d" % time.time()
    encode = "%s-encode" % tag
    encoded = host.run("cd %s && runuser -u www-data -- php artisan elms:dispatch-encode %s --duration=90 "
                       "--size=1280x720 --queue=burst" % (APP, encode))
    assert encoded.rc == 0, encoded.stdout + encoded.stderr
    names = dispatch(host, tag, 1, 25000)
    out_dir = "%s/storage/app/hls/%s" % (APP, encode)
    assert wait_until(lambda: since(host, WORKER_LOG, offset).count("Processing:") == 2
                      and host.file(out_dir + "/started.json").exists, 30), since(host, WORKER_LOG, offset)
    log_offset = size(host, LISTENER_LOG)
    assert host.run("%s start '%s:*'" % (CTL, BURST)).rc == 0
    assert wait_until(lambda: [supervisor_status()[p][0] for p in SPARES] == ["STOPPING", "STOPPING"], 30), \
        (supervisor_status(), since(host, LISTENER_LOG, log_offset))
    stopping_at = float(host.run("date +%s.%N").stdout)
    assert re.search(r"scale %s 3 -> 1: .*stopped %s.*stopped %s" % (BURST, re.escape(SPARES[1]), re.escape(SPARES[0])),
                     since(host, LISTENER_LOG, log_offset)), since(host, LISTENER_LOG, log_offset)
    assert wait_until(lambda: len(markers(host, names)) == 1 and host.file(out_dir + "/done.json").exists, 300), \
        (markers(host, names), supervisor_status())
    job = markers(host, names)[names[0]]
    done = json.loads(host.file(out_dir + "/done.json").content_string)
    finished = float(host.run("date -d %s +%%s.%%N" % done["finished_at"]).stdout)
    # Each finished in the spare that had it, after supervisor's SIGTERM: neither was lost.
    assert {job["pid"], done["pid"]} == pids, (job, done, pids)
    assert job["processed_at_unix"] > stopping_at and finished > stopping_at, (job, done, stopping_at)
    assert done["segments"] > 0 and host.file(out_dir + "/master.m3u8").exists
    assert wait_until(lambda: [supervisor_status()[p][0] for p in SPARES] == ["STOPPED", "STOPPED"], 30)
    supervisord_log = since(host, SUPERVISORD_LOG, supervisord_offset)
    for process in SPARES:
        # Its own exit after the work, not "terminated by SIGKILL" at stopwaitsecs.
        assert re.search(r"stopped: %s \(exit status 0\)" % process.split(":")[1], supervisord_log), supervisord_log
    assert failed_jobs(host) == failed_before


def test_a_no_change_deploy_while_scaled_up_is_changed_0_and_keeps_every_pid(host, supervisor_status):
    # 18 jobs of 6 s: the backlog asks for max for about half a minute.
    names = dispatch(host, "deploy-%d" % time.time(), 18, 6000)
    assert wait_until(lambda: up(supervisor_status()) == 3, 30), supervisor_status()
    before = supervisor_status()
    rc, out = playbook("site.yml")
    assert rc == 0, out[-3000:]
    assert re.search(r"changed=0 ", out), out[-2000:]
    after = supervisor_status()
    assert {p: after[p] for p in [BASE] + SPARES} == {p: before[p] for p in [BASE] + SPARES}
    assert wait_until(lambda: len(markers(host, names)) == len(names), 120), markers(host, names)
    assert wait_until(lambda: up(supervisor_status()) == 1, 60), supervisor_status()


def test_the_diagnosis_shows_the_range_the_backlog_and_the_last_decision(host):
    def settled():
        # The listener's state file, which the diagnosis reads: written after each probe that changes it.
        text = host.run("cat /var/lib/elms-queue-workers/alerts/state.json").stdout
        scaled = (json.loads(text or "{}").get("scaling") or {}).get(BURST) or {}
        return scaled.get("current") == 1 and scaled.get("backlog") == 0
    assert wait_until(settled, 30), host.run("cat /var/lib/elms-queue-workers/alerts/state.json").stdout
    rc, out = playbook("diagnose.yml", None, "-e", "queue_workers_diagnose_fail=false", "-e", "queue_workers_diagnose_dir=")
    assert rc == 0, out[-3000:]
    text = " ".join(out.split())
    assert re.search(r"%s: 1 process\(es\) up, range 1-3, backlog 0, average job [\d.]+ s over \d+; last decision at "
                     r"\S+: \d -> 1, backlog \d+" % BURST, text), re.findall(r"scaling .{0,400}", text) or text[-3000:]
    assert re.search(r"running %s\s+0 of 2 spare process\(es\) RUNNING" % SPARE, text), text[-3000:]


def test_the_minimum_runs_while_the_scaler_is_down_and_after_supervisord_restarts(host, supervisor_status):
    pid = supervisor_status()[BASE][1]
    assert host.run("%s stop %s" % (CTL, LISTENER)).rc == 0
    try:
        time.sleep(12)  # two of the scaler's probe intervals
        assert supervisor_status()[BASE] == ("RUNNING", pid)
        # supervisord restarted under systemd: the minimum is back by supervisord's own autostart; the spares wait.
        assert host.run("systemctl restart supervisor").rc == 0
        assert wait_until(lambda: supervisor_status().get(BASE, ("", None))[0] == "RUNNING", 60), supervisor_status()
        status = supervisor_status()
        assert status[BASE][1] != pid and [status[p][0] for p in SPARES] == ["STOPPED", "STOPPED"], status
    finally:
        host.run("%s start %s" % (CTL, LISTENER))
    assert wait_until(lambda: supervisor_status().get(LISTENER, ("", None))[0] == "RUNNING", 30)


def test_no_channel_and_no_range_removes_the_listener_and_its_files(host, supervisor_status):
    """The scenario's last check: with neither an alert channel nor metrics nor a scaled worker, no listener."""
    no_channel = {"queue_workers_alert_webhook": "", "queue_workers_alert_syslog": False,
                  "queue_workers_alert_mail_to": [], "queue_workers_metrics_dir": "",
                  # A scaled worker keeps the listener (its scaler): a fixed count.
                  "elms_test_burst_numprocs": 1}
    rc, out = playbook("site.yml", None, "-e", json.dumps(no_channel))
    assert rc == 0, out[-3000:]
    status = supervisor_status()
    assert LISTENER not in status and not any(p.startswith(SPARE + ":") for p in status), status
    for path in (CONFIG, "/usr/local/lib/elms-queue-workers/alert_listener.py",
                 "%s/%s%s" % (EXPECT["include_dir"], LISTENER, EXPECT["extension"]),
                 "%s/%s%s" % (EXPECT["include_dir"], SPARE, EXPECT["extension"])):
        assert not host.file(path).exists, path
    workers = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01",
               "elms-video-worker:elms-video-worker_00", BASE]
    assert wait_until(lambda: all(supervisor_status()[p][0] == "RUNNING" for p in workers), 30), supervisor_status()
