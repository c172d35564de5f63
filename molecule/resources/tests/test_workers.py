"""What a user checks after a deploy: the files, the processes, and real jobs done.

Shared by every scenario, run on every host; the host's layout comes from the expect fixture.
"""

import json
import os
import time

import pytest

from conftest import APP, APP_USER

PROCESSES = [
    "elms-default-worker:elms-default-worker_00",
    "elms-default-worker:elms-default-worker_01",
    "elms-video-worker:elms-video-worker_00",
]
PROGRAMS = sorted(set(p.split(":")[0] for p in PROCESSES))
VIDEO_PROCESS = "elms-video-worker:elms-video-worker_00"
DEFAULT_PROCESSES = [p for p in PROCESSES if p.startswith("elms-default-worker:")]
# Where the video worker runs (the role's defaults): nice -n 10, ionice -c 2 -n 7.
LOWER_PRIORITY = {"nice": "10", "io": "best-effort: prio 7"}


def program_file(host, expect, program):
    return host.file("%s/%s%s" % (expect["include_dir"], program, expect["extension"]))


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_in_the_include_dir_with_its_extension(host, expect, program):
    assert program_file(host, expect, program).is_file


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_root_owned_and_not_world_writable(host, expect, program):
    assert program_file(host, expect, program).user == "root"
    assert not program_file(host, expect, program).mode & 0o002


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


@pytest.fixture(scope="module")
def priorities(host, artisan, supervisor_status, wait_for_file):
    """Nice value and I/O class of the workers' processes while an encode runs.

    A 20 s encode is dispatched; one command on the host polls for an ffmpeg whose parent
    is the video worker's PHP process (a round trip per look would miss a short one) and,
    the moment it finds one, reads both processes' nice value and I/O class.
    """
    status = supervisor_status()
    php = status[VIDEO_PROCESS][1]
    name = "verify-priority-%d" % time.time()
    assert artisan("elms:dispatch-encode", name, "--duration=20").rc == 0
    # The video worker sleeps 10 s between polls of an empty queue: up to 90 s in all.
    running = host.run(
        "for i in $(seq 900); do"
        " for child in $(pgrep -P %(php)d -x ffmpeg); do"
        "  comm=$(ps -o comm= -p $child) && nice=$(ps -o ni= -p $child) && io=$(ionice -p $child) || continue;"
        "  echo \"php|$(ps -o comm= -p %(php)d)|$(ps -o ni= -p %(php)d)|$(ionice -p %(php)d)\";"
        "  echo \"ffmpeg|$comm|$nice|$io\"; exit 0;"
        " done; sleep 0.1; "
        "done; exit 1" % {"php": php})
    assert running.rc == 0, "no ffmpeg child of the video worker (pid %d) within 90 s" % php
    found = {}
    for line in running.stdout.splitlines():
        process, command, nice, io = (field.strip() for field in line.split("|"))
        found[process] = {"command": command, "nice": nice, "io": io}
    found["defaults"] = [host.run("ps -o ni= -p %d" % status[process][1]).stdout.strip() for process in DEFAULT_PROCESSES]
    # Let the encode finish, so that no job is left running (test_no_job_failed reads the result).
    done = "%s/storage/app/hls/%s/done.json" % (APP, name)
    assert wait_for_file(done, 240), "the 20 s encode wrote no %s" % done
    return found


def test_video_worker_runs_at_lower_cpu_and_io_priority(priorities):
    assert priorities["php"]["command"].startswith("php"), priorities["php"]
    assert {key: priorities["php"][key] for key in LOWER_PRIORITY} == LOWER_PRIORITY


def test_ffmpeg_started_by_the_video_worker_runs_at_its_priority(priorities):
    assert priorities["ffmpeg"]["command"] == "ffmpeg", priorities["ffmpeg"]
    assert {key: priorities["ffmpeg"][key] for key in LOWER_PRIORITY} == LOWER_PRIORITY


def test_default_workers_run_at_normal_cpu_priority(priorities):
    assert priorities["defaults"] == ["0"] * len(DEFAULT_PROCESSES)


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
