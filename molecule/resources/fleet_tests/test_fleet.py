"""Rolling deploys and restarts over four hosts: batches, the health gate, the canary, the fleet's summary.

The playbooks run once for the fleet, so this module runs on the first host only and reaches
the others itself. The tests build on each other in file order.
"""

import json
import os
import re
import shutil
import tempfile
import time

import testinfra

from conftest import APP, APP_USER, EXPECT, playbook

HOSTS = ["elms-fleet-%d" % number for number in range(1, 5)]
testinfra_hosts = ["docker://" + HOSTS[0]]
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
DEFAULT_PROCS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
VIDEO_PROC = "elms-video-worker:elms-video-worker_00"
WORKERS = DEFAULT_PROCS + [VIDEO_PROC]
BATCHES = "(elms-fleet-1, elms-fleet-2 | elms-fleet-3, elms-fleet-4)"
SUMMARY = re.compile(r"^Rollout summary after batch \d+ of \d+:$", re.M)


def on(name):
    return testinfra.get_host("docker://" + name)


def status(name):
    """{process: (state, pid)} of one host's supervisord."""
    found = {}
    for line in on(name).run(CTL + " status").stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
            found[fields[0]] = (fields[1], pid)
    return found


def worker_pids(name):
    found = status(name)
    assert all(found.get(process, ("missing",))[0] == "RUNNING" for process in WORKERS), (name, found)
    return {process: found[process][1] for process in WORKERS}


def artisan(name, *args):
    return on(name).run("cd %s && runuser -u %s -- php artisan %s" % (APP, APP_USER, " ".join(
        "'%s'" % arg for arg in args)))


def run(name, *extra):
    """Run a playbook of the collection over the fleet, results as JSON (long lines are never wrapped)."""
    return playbook(name, None, *extra, ANSIBLE_CALLBACK_RESULT_FORMAT="json")


def summaries(out):
    """Each batch's summary of the fleet so far, as the rollout printed it after the batch (its lines)."""
    found = []
    for match in SUMMARY.finditer(out):
        lines = []
        for line in out[match.end():].splitlines()[1:]:
            if not line.startswith("  "):
                break
            lines.append(line.strip())
        found.append("\n".join(lines))
    return found


def fleet_lines(out):
    """The fleet summary's lines, as the last batch that ran printed them."""
    found = summaries(out)
    assert found, out[-3000:]
    return found[-1]


def test_the_rollout_converged_every_host_and_each_processed_its_canary():
    for name in HOSTS:
        pids = worker_pids(name)
        marker = on(name).file(APP + "/storage/app/markers/fleet-canary.json")
        assert marker.exists, "%s: the canary job was not processed" % name
        done = json.loads(marker.content_string)
        # Processed by one of this host's default workers, as they run now.
        assert done["queue"] == "default" and done["pid"] in [pids[p] for p in DEFAULT_PROCS], (name, done, pids)


def test_a_no_change_rollout_reports_every_host_unchanged_batch_by_batch():
    before = {name: worker_pids(name) for name in HOSTS}
    rc, out = run("site.yml", "-e", "queue_workers_batch=2")
    assert rc == 0, out[-4000:]
    summary = fleet_lines(out)
    assert "site over 4 host(s) in 2 batch(es) %s; 2 batch(es) run." % BATCHES in summary
    assert "changed: none; unchanged: %s; worker processes restarted: 0." % ", ".join(HOSTS) in summary
    assert "canary processed in: " in summary and all(name in summary.split("canary processed in: ")[1] for name in HOSTS)
    # One summary per batch, each of the fleet so far.
    assert len(summaries(out)) == 2 and "1 batch(es) run." in summaries(out)[0]
    assert {name: worker_pids(name) for name in HOSTS} == before


def test_a_canary_no_worker_processes_fails_its_batch_and_stops_the_rollout():
    canary = {"job": "App\\Jobs\\WritePing", "args": ["unheard"], "queue": "nobody-listens", "timeout": 5}
    rc, out = run("site.yml", "-e", "queue_workers_batch=2",
                       "-e", json.dumps({"queue_workers_canary_job": canary}))
    assert rc != 0
    summary = fleet_lines(out)
    for name in HOSTS[:2]:
        assert ("FAILED %s: Push a canary job through the app and wait until a worker has processed it: the canary job "
                "App\\Jobs\\WritePing on queue 'nobody-listens' of connection 'database' was not processed within 5 s"
                % name) in summary
    for name in HOSTS[2:]:
        assert "not reached %s: not run: the rollout stopped after batch 1" % name in summary
    # The second batch was never worked on: its first step ended the rollout, and nothing ran on its hosts.
    second = out[out.index("Rollout summary after batch 1 of 2:"):]
    assert "not run: the rollout stopped after batch 1" in second
    assert "TASK [elms.queue_workers.queue_workers : Converge the worker programs with the host]" not in second
    assert len(summaries(out)) == 1


def test_a_batch_size_from_the_inventory_is_refused_before_any_host_changes():
    before = {name: worker_pids(name) for name in HOSTS}
    inventory = tempfile.mkdtemp()
    try:
        shutil.copy(os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(inventory, "hosts.yml"))
        os.mkdir(os.path.join(inventory, "group_vars"))
        with open(os.path.join(inventory, "group_vars", "all.yml"), "w") as handle:
            handle.write("queue_workers_batch: 1\n")
        rc, out = run("site.yml", "-i", inventory)
    finally:
        shutil.rmtree(inventory)
    assert rc != 0
    assert "queue_workers_batch is 1 for elms-fleet-1, which makes a first batch of 1 host(s), but the play runs 4" in out
    assert "Give it as an extra var" in out
    assert "TASK [elms.queue_workers.queue_workers : Converge the worker programs with the host]" not in out
    assert {name: worker_pids(name) for name in HOSTS} == before


def test_a_restart_stops_after_a_batch_with_a_broken_host_and_leaves_later_batches_alone():
    before = {name: worker_pids(name) for name in HOSTS}
    broken = on(HOSTS[0])
    # A broken release on the first host: the app no longer boots.
    assert broken.run("cp %s/config/queue.php /root/queue.php.good && echo 'broken(' >> %s/config/queue.php"
                      % (APP, APP)).rc == 0
    try:
        rc, out = run("restart.yml", "-e", "queue_workers_batch=2")
    finally:
        assert broken.run("cp /root/queue.php.good %s/config/queue.php" % APP).rc == 0
    assert rc != 0
    summary = fleet_lines(out)
    assert "restart over 4 host(s) in 2 batch(es) %s; 1 batch(es) run." % BATCHES in summary
    # php's own words: its parse error in the file that was broken, for the app it could not boot.
    assert "FAILED elms-fleet-1: Check each app's cache store" in summary
    assert "app elms: its cache store could not be checked" in summary
    assert "PHP Parse error" in summary and "config/queue.php" in summary
    assert "changed: elms-fleet-2;" in summary
    assert "not reached elms-fleet-3: not run: the rollout stopped after batch 1" in summary
    assert "not reached elms-fleet-4: not run: the rollout stopped after batch 1" in summary
    assert "The rollout stopped after batch 1" in summary
    # The broken host was never signalled; its batch's healthy host recycled; the second batch was not touched.
    assert worker_pids(HOSTS[0]) == before[HOSTS[0]]
    assert all(pid != before[HOSTS[1]][process] for process, pid in worker_pids(HOSTS[1]).items())
    assert worker_pids(HOSTS[2]) == before[HOSTS[2]]
    assert worker_pids(HOSTS[3]) == before[HOSTS[3]]


def test_a_clean_rolling_restart_recycles_every_host_while_an_encode_finishes():
    encoding = HOSTS[2]
    name = "fleet-%d" % time.time()
    assert artisan(encoding, "elms:dispatch-encode", name, "--duration=120", "--size=1280x720").rc == 0
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    started = on(encoding).file(out_dir + "/started.json")
    deadline = time.time() + 120
    while not started.exists and time.time() < deadline:
        time.sleep(1)
    assert started.exists, "the video worker of %s did not start the encode" % encoding
    before = {host: worker_pids(host) for host in HOSTS}
    assert json.loads(started.content_string)["pid"] == before[encoding][VIDEO_PROC]

    began = time.time()
    rc, out = run("restart.yml", "-e", "queue_workers_batch=2", "-e", "queue_workers_restart_wait=600")
    assert rc == 0, out[-4000:]
    summary = fleet_lines(out)
    assert "changed: %s; unchanged: none; worker processes restarted: 12." % ", ".join(HOSTS) in summary
    assert "restart over 4 host(s) in 2 batch(es) %s; 2 batch(es) run." % BATCHES in summary
    for host in HOSTS:
        after = worker_pids(host)
        assert all(after[process] != before[host][process] for process in WORKERS), (host, before[host], after)
        assert "No failed jobs" in artisan(host, "queue:failed").stdout, host
    # The encode finished in the worker that had it, which recycled after it.
    done = on(encoding).file(out_dir + "/done.json")
    assert json.loads(done.content_string)["pid"] == before[encoding][VIDEO_PROC]
    # It was still encoding when the rollout began (the containers share this machine's clock).
    assert done.mtime.timestamp() > began
    assert "#EXT-X-ENDLIST" in on(encoding).file(out_dir + "/240p/index.m3u8").content_string
