"""restart.yml after a code deploy: every worker recycles, and one that does not is told apart.

Each test puts the real host (Debian's supervisord, the real Laravel workers, a real
ffmpeg encode) in a state a deploy meets, runs the collection's restart playbook, and
checks the module's result (per process: recycled, busy with a job, idle, STOPPED), the
pids, the encode's output and the failed jobs. The tests build on each other in file
order; the module fixture puts the defaults back.
"""

import json
import re
import time

import pytest

from conftest import APP, EXPECT, playbook, wait_until

VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log",
                "nice": 10, "ionice_class": "best-effort", "ionice_level": 7}
DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
DEFAULT_PROCS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
VIDEO_PROC = "elms-video-worker:elms-video-worker_00"
WORKERS = DEFAULT_PROCS + [VIDEO_PROC]
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
ENCODE_JOB = "App\\Jobs\\EncodeVideoToHls"
RESULT_START = re.compile(r"^(?:ok|changed|fatal): \[[^\]]+\](?:: FAILED!)? => ", re.M)


def restart(*extra):
    """Run restart.yml; returns (rc, output with JSON's escaped backslashes undone, the module's result)."""
    rc, out = playbook("restart.yml", None, "-v", *extra, ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    found = None
    decoder = json.JSONDecoder()
    for match in RESULT_START.finditer(out):
        try:
            result, _end = decoder.raw_decode(out, match.end())
        except ValueError:
            continue
        if "recycled" in result:
            found = result
    assert found is not None, out[-3000:]
    return rc, out.replace("\\\\", "\\"), found


def pids(supervisor_status):
    return dict((name, pid) for name, (_state, pid) in supervisor_status().items())


def dispatch_encode(host, artisan, wait_for_file, name, duration):
    assert artisan("elms:dispatch-encode", name, "--duration=%d" % duration, "--size=1280x720").rc == 0
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    assert wait_for_file(out_dir + "/started.json", 60), "the video worker did not start the encode"
    return out_dir, json.loads(host.file(out_dir + "/started.json").content_string)["pid"]


@pytest.fixture(scope="module", autouse=True)
def converged():
    rc, out = playbook("site.yml")
    assert rc == 0, out
    yield
    playbook("site.yml")


@pytest.fixture(scope="module")
def long_encode(host, artisan, wait_for_file, supervisor_status):
    """An encode that outlasts two restart runs with a 5 s wait: (output dir, video worker pid)."""
    # About a minute on 2 idle cores: longer than two restart runs (checked: "proves nothing").
    out_dir, pid = dispatch_encode(host, artisan, wait_for_file, "restart-long-%d" % time.time(), 240)
    assert pid == supervisor_status()[VIDEO_PROC][1]
    return out_dir, pid


def test_a_restart_during_an_encode_waits_for_it_and_every_worker_recycles(
        host, supervisor_status, artisan, wait_for_file):
    out_dir, encoding_pid = dispatch_encode(host, artisan, wait_for_file, "restart-%d" % time.time(), 60)
    before = pids(supervisor_status)
    assert encoding_pid == before[VIDEO_PROC]

    # A wait long enough for the encode even on a loaded host (it takes about 15 s on 2 idle cores).
    rc, out, result = restart("-e", "queue_workers_restart_wait=600")
    assert rc == 0, out[-3000:]
    assert "All 3 worker processes run the new code" in out
    assert sorted(result["recycled"]) == sorted(WORKERS)
    for process in WORKERS:
        entry = result["recycled"][process]
        assert entry["state"] == "recycled", entry
        assert entry["pid_before"] == before[process] and entry["pid_after"] not in (None, before[process]), entry
    after = supervisor_status()
    assert all(after[p][0] == "RUNNING" and after[p][1] != before[p] for p in WORKERS), after
    # The encode finished in the worker that had it, before that worker recycled.
    done = json.loads(host.file(out_dir + "/done.json").content_string)
    assert done["pid"] == before[VIDEO_PROC]
    assert "#EXT-X-ENDLIST" in host.file(out_dir + "/240p/index.m3u8").content_string
    assert "No failed jobs" in artisan("queue:failed").stdout


def test_a_wait_shorter_than_the_encode_fails_naming_the_busy_worker_and_its_job_age(
        host, supervisor_status, long_encode):
    out_dir, encoding_pid = long_encode
    rc, out, result = restart("-e", "queue_workers_restart_wait=5", "-e", "queue_workers_restart_require_all=true")
    assert not host.file(out_dir + "/done.json").exists, "the encode ended before the run: the test proves nothing"
    assert rc != 0, out[-3000:]
    entry = result["recycled"][VIDEO_PROC]
    assert entry["state"] == "busy" and entry["pid_before"] == encoding_pid, entry
    assert entry["job"] == ENCODE_JOB and entry["job_age_seconds"] >= 5, entry
    named = re.search(r"%s \(pid %d\) busy with %s running for (\d+) s" % (
        re.escape(VIDEO_PROC), encoding_pid, re.escape(ENCODE_JOB)), out)
    assert named, out[-3000:]
    assert all(result["recycled"][p]["state"] == "recycled" for p in DEFAULT_PROCS), result["recycled"]
    assert supervisor_status()[VIDEO_PROC] == ("RUNNING", encoding_pid)


def test_a_wait_shorter_than_the_encode_reports_the_busy_worker_when_not_all_are_required(
        host, supervisor_status, artisan, wait_for_file, long_encode):
    out_dir, encoding_pid = long_encode
    rc, out, result = restart("-e", "queue_workers_restart_wait=5", "-e", "queue_workers_restart_require_all=false")
    assert not host.file(out_dir + "/done.json").exists, "the encode ended before the run: the test proves nothing"
    assert rc == 0, out[-3000:]
    entry = result["recycled"][VIDEO_PROC]
    assert entry["state"] == "busy" and entry["job"] == ENCODE_JOB, entry
    assert "2 of 3 worker processes run the new code" in out
    assert re.search(r"%s \(pid %d\) busy with %s running for \d+ s" % (
        re.escape(VIDEO_PROC), encoding_pid, re.escape(ENCODE_JOB)), out), out[-3000:]
    # The worker finishes the encode, then recycles on its own: nothing is lost.
    assert wait_for_file(out_dir + "/done.json", 2400), "the encode did not finish"
    assert json.loads(host.file(out_dir + "/done.json").content_string)["pid"] == encoding_pid
    assert wait_until(lambda: supervisor_status()[VIDEO_PROC][0] == "RUNNING"
                      and supervisor_status()[VIDEO_PROC][1] != encoding_pid, 60), supervisor_status()
    assert "No failed jobs" in artisan("queue:failed").stdout


def test_a_worker_that_does_not_see_the_restart_signal_fails_the_run_as_idle(supervisor_status):
    # The worker reads another cache store than the one queue:restart writes the signal to.
    rc, out = playbook("site.yml", [DEFAULT_WORKER, dict(VIDEO_WORKER, environment={"CACHE_DRIVER": "array"})])
    assert rc == 0, out
    before = pids(supervisor_status)
    try:
        rc, out, result = restart()
        assert rc != 0, out[-3000:]
        entry = result["recycled"][VIDEO_PROC]
        assert entry["state"] == "idle" and entry["pid_before"] == before[VIDEO_PROC] and entry["job"] is None, entry
        assert "%s is idle under its old pid %d: it never saw the restart signal" % (VIDEO_PROC, before[VIDEO_PROC]) in out
        assert all(result["recycled"][p]["state"] == "recycled" for p in DEFAULT_PROCS), result["recycled"]
    finally:
        rc, out = playbook("site.yml")
        assert rc == 0, out


def test_a_stopped_worker_fails_the_run_naming_it(host, supervisor_status):
    host.check_output("%s stop 'elms-video-worker:*'" % CTL)
    try:
        rc, out, result = restart()
        assert rc != 0, out[-3000:]
        assert result["recycled"][VIDEO_PROC]["state"] == "STOPPED", result["recycled"]
        assert "%s is STOPPED" % VIDEO_PROC in out
        assert all(result["recycled"][p]["state"] == "recycled" for p in DEFAULT_PROCS), result["recycled"]
    finally:
        rc, out = playbook("site.yml")
        assert rc == 0, out
    assert supervisor_status()[VIDEO_PROC][0] == "RUNNING"
