"""Deploys that change things while real jobs run: nothing is lost, only what changed restarts.

These tests run the collection's own playbooks again (ansible-playbook against the
scenario's inventory) and look at process ids, the HLS output and failed_jobs. They
build on each other, in file order.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import APP, EXPECT

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log"}
DEFAULT_PROCS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
VIDEO_PROC = "elms-video-worker:elms-video-worker_00"


def playbook(name, programs=None, *extra):
    """Run one of the collection's playbooks against this scenario's host; returns (rc, output)."""
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(ROOT, "playbooks", name)]
    if programs is not None:
        argv += ["-e", json.dumps({"queue_workers_programs": programs})]
    done = subprocess.run(argv + list(extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"))
    return done.returncode, done.stdout


def pids(supervisor_status):
    return {name: pid for name, (state, pid) in supervisor_status().items()}


def start_encode(artisan, wait_for_file, name):
    """Dispatch a long encode and return once the video worker has started it."""
    assert artisan("elms:dispatch-encode", name, "--duration=90", "--size=1280x720").rc == 0
    assert wait_for_file("%s/storage/app/hls/%s/started.json" % (APP, name), 60)
    return "%s/storage/app/hls/%s" % (APP, name)


def program_files(host):
    listing = host.run("cd %s && sha256sum *%s" % (EXPECT["include_dir"], EXPECT["extension"]))
    return listing.stdout


def test_a_no_change_run_restarts_nothing(supervisor_status):
    before = pids(supervisor_status)
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert "changed=0" in out
    assert pids(supervisor_status) == before


def test_changing_the_default_worker_leaves_a_running_encode_alone(host, supervisor_status, artisan, wait_for_file):
    out_dir = start_encode(artisan, wait_for_file, "deploy-default")
    before = pids(supervisor_status)
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), VIDEO_WORKER], "--tags", "queue_workers")
    assert rc == 0, out
    after = pids(supervisor_status)
    assert not host.file(out_dir + "/done.json").exists, "the encode finished before the deploy: make it longer"
    assert after[VIDEO_PROC] == before[VIDEO_PROC]
    assert all(after[p] != before[p] for p in DEFAULT_PROCS)
    assert wait_for_file(out_dir + "/done.json", 240)
    assert json.loads(host.file(out_dir + "/done.json").content_string)["pid"] == before[VIDEO_PROC]


def test_changing_the_video_worker_lets_the_running_encode_finish(host, supervisor_status, artisan, wait_for_file):
    out_dir = start_encode(artisan, wait_for_file, "deploy-video")
    before = pids(supervisor_status)
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), dict(VIDEO_WORKER, memory=640)],
                       "--tags", "queue_workers")
    assert rc == 0, out
    # update returned only after supervisor stopped the old worker: the encode is complete.
    assert host.file(out_dir + "/done.json").exists
    for variant in ("240p", "144p"):
        assert "#EXT-X-ENDLIST" in host.file("%s/%s/index.m3u8" % (out_dir, variant)).content_string
    assert pids(supervisor_status)[VIDEO_PROC] != before[VIDEO_PROC]


def test_no_job_was_lost(artisan):
    assert "No failed jobs" in artisan("queue:failed").stdout


def test_a_program_file_supervisor_refuses_is_put_back(host, supervisor_status):
    files, before = program_files(host), pids(supervisor_status)
    broken = dict(VIDEO_WORKER, memory=640, supervisor_options={"stderr_logfile": "/nonexistent/dir/video.log"})
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), broken], "--tags", "queue_workers")
    assert rc != 0
    assert "refused the program file(s) this run wrote" in out and "/nonexistent/dir" in out
    assert program_files(host) == files
    assert pids(supervisor_status) == before


def test_a_broken_file_of_someone_else_blocks_the_deploy_before_anything_changes(host, supervisor_status):
    broken = "%s/zz-hand-written%s" % (EXPECT["include_dir"], EXPECT["extension"])
    host.run("printf '[program:zz]\\ngarbage line\\n' > %s" % broken)
    try:
        files, before = program_files(host), pids(supervisor_status)
        rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=5), VIDEO_WORKER], "--tags", "queue_workers")
        assert rc != 0
        assert "%s is not a file this collection wrote" % broken in out
        assert program_files(host) == files
        assert pids(supervisor_status) == before
    finally:
        host.run("rm -f %s" % broken)


def test_a_worker_dropped_from_the_list_is_stopped_and_its_file_removed(host, supervisor_status):
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4)], "--tags", "queue_workers")
    assert rc == 0, out
    assert not host.file("%s/elms-video-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])).exists
    assert VIDEO_PROC not in supervisor_status()


def test_a_worker_named_like_a_program_it_does_not_manage_is_refused(host, supervisor_status):
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), dict(VIDEO_WORKER, name="admin-heartbeat")],
                       "--tags", "queue_workers")
    assert rc != 0 and "admin-heartbeat, which supervisor already runs from a file this collection did not write" in out
    assert "[program:admin-heartbeat]\ncommand=/bin/sleep infinity" in host.file(
        "%s/admin-heartbeat%s" % (EXPECT["include_dir"], EXPECT["extension"])).content_string


def test_restart_playbook_recycles_every_worker_gracefully(supervisor_status):
    rc, out = playbook("site.yml")
    assert rc == 0, out
    before = pids(supervisor_status)
    rc, out = playbook("restart.yml")
    assert rc == 0, out
    after = supervisor_status()
    workers = DEFAULT_PROCS + [VIDEO_PROC]
    assert all(after[p][0] == "RUNNING" and after[p][1] != before[p] for p in workers)
    assert after["admin-heartbeat"][1] == before["admin-heartbeat"]


@pytest.fixture(scope="module", autouse=True)
def back_to_defaults():
    yield
    playbook("site.yml")
