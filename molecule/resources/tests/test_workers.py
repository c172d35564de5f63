"""What a user checks after a deploy: the files, the processes, and real jobs done.

Shared by every scenario; the platform's layout comes from conftest.EXPECT.
"""

import json
import os
import time

import pytest

from conftest import APP, APP_USER, EXPECT

PROCESSES = [
    "elms-default-worker:elms-default-worker_00",
    "elms-default-worker:elms-default-worker_01",
    "elms-video-worker:elms-video-worker_00",
]
PROGRAMS = sorted(set(p.split(":")[0] for p in PROCESSES))


def program_file(host, program):
    return host.file("%s/%s%s" % (EXPECT["include_dir"], program, EXPECT["extension"]))


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_in_the_include_dir_with_its_extension(host, program):
    assert program_file(host, program).is_file


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_root_owned_and_not_world_writable(host, program):
    assert program_file(host, program).user == "root"
    assert not program_file(host, program).mode & 0o002


@pytest.mark.parametrize("log", ["worker-default.log", "worker-video.log"])
def test_worker_log_is_written_and_not_world_writable(host, log):
    log_file = host.file("%s/storage/logs/%s" % (APP, log))
    assert log_file.is_file and not log_file.mode & 0o002


@pytest.mark.parametrize("process", PROCESSES)
def test_worker_process_is_running(supervisor_status, process):
    assert supervisor_status().get(process, ("MISSING", None))[0] == "RUNNING"


@pytest.mark.parametrize("process", PROCESSES)
def test_worker_process_runs_as_the_app_user(host, supervisor_status, process):
    pid = supervisor_status()[process][1]
    assert host.run("ps -o user= -p %s" % pid).stdout.strip() == APP_USER


@pytest.fixture(scope="module")
def encode(artisan, wait_for_file):
    """Dispatch one video job through the real app and wait for the worker to finish it."""
    name = "verify-%d" % time.time()
    dispatched = artisan("elms:dispatch-encode", name, "--duration=4")
    assert dispatched.rc == 0, dispatched.stderr
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    return {"dir": out_dir, "done": wait_for_file(out_dir + "/done.json", 90)}


def test_video_job_is_processed(encode):
    assert encode["done"], "no done.json in %s after 90 s" % encode["dir"]


def test_video_job_ran_in_the_video_worker(host, supervisor_status, encode):
    result = json.loads(host.file(encode["dir"] + "/done.json").content_string)
    assert result["pid"] == supervisor_status()["elms-video-worker:elms-video-worker_00"][1]


def test_master_playlist_lists_variants(host, encode):
    master = host.file(encode["dir"] + "/master.m3u8").content_string
    assert master.startswith("#EXTM3U")
    assert "#EXT-X-STREAM-INF" in master


def test_every_variant_playlist_has_its_segments(host, encode):
    master = host.file(encode["dir"] + "/master.m3u8").content_string
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert variants
    for variant in variants:
        playlist = host.file("%s/%s" % (encode["dir"], variant))
        assert playlist.is_file, variant
        segments = [line for line in playlist.content_string.splitlines() if line.endswith(".ts")]
        assert segments, variant
        variant_dir = os.path.dirname("%s/%s" % (encode["dir"], variant))
        for segment in segments:
            assert host.file("%s/%s" % (variant_dir, segment)).size > 0, segment


def test_default_job_is_processed_by_a_default_worker(artisan, wait_for_file, host, supervisor_status):
    marker = "verify-%d" % time.time()
    assert artisan("elms:dispatch-ping", marker).rc == 0
    path = "%s/storage/app/markers/%s.json" % (APP, marker)
    assert wait_for_file(path, 30), "the default worker did not write %s" % path
    pid = json.loads(host.file(path).content_string)["pid"]
    status = supervisor_status()
    assert pid in (status["elms-default-worker:elms-default-worker_00"][1],
                   status["elms-default-worker:elms-default-worker_01"][1])


def test_no_job_failed(artisan):
    assert "No failed jobs" in artisan("queue:failed").stdout
