"""What a user checks after a deploy: the files, the processes, and real jobs done.

Shared by every scenario; a scenario states its platform's layout through the
verifier's environment (ELMS_EXPECT_*), defaulting to Debian's.
"""

import json
import os
import shlex
import time

import pytest

INCLUDE_DIR = os.environ.get("ELMS_EXPECT_INCLUDE_DIR", "/etc/supervisor/conf.d")
EXTENSION = os.environ.get("ELMS_EXPECT_EXTENSION", ".conf")
CONFIG = os.environ.get("ELMS_EXPECT_CONFIG", "/etc/supervisor/supervisord.conf")
SUPERVISORCTL = os.environ.get("ELMS_EXPECT_SUPERVISORCTL", "/usr/bin/supervisorctl")
APP = "/var/www/html"
USER = "www-data"
PROCESSES = [
    "elms-default-worker:elms-default-worker_00",
    "elms-default-worker:elms-default-worker_01",
    "elms-video-worker:elms-video-worker_00",
]
PROGRAMS = sorted(set(p.split(":")[0] for p in PROCESSES))


def supervisor_status(host):
    """{process: (state, pid)} from supervisorctl status, with the detected config."""
    result = host.run("%s -c %s status", SUPERVISORCTL, CONFIG)
    status = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
            status[fields[0]] = (fields[1], pid)
    return status


def artisan(host, *args):
    command = "cd %s && runuser -u %s -- php artisan %s" % (APP, USER, " ".join(shlex.quote(a) for a in args))
    return host.run(command)


def wait_for_file(host, path, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if host.file(path).exists:
            return True
        time.sleep(1)
    return False


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_in_the_include_dir_with_its_extension(host, program):
    assert host.file("%s/%s%s" % (INCLUDE_DIR, program, EXTENSION)).is_file


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_file_is_root_owned_and_not_world_writable(host, program):
    program_file = host.file("%s/%s%s" % (INCLUDE_DIR, program, EXTENSION))
    assert program_file.user == "root"
    assert not program_file.mode & 0o002


@pytest.mark.parametrize("process", PROCESSES)
def test_worker_process_is_running(host, process):
    assert supervisor_status(host).get(process, ("MISSING", None))[0] == "RUNNING"


@pytest.mark.parametrize("process", PROCESSES)
def test_worker_process_runs_as_the_app_user(host, process):
    pid = supervisor_status(host)[process][1]
    assert host.run("ps -o user= -p %s", str(pid)).stdout.strip() == USER


@pytest.fixture(scope="module")
def encode(host):
    """Dispatch one video job through the real app and wait for the worker to finish it."""
    name = "verify-%d" % time.time()
    dispatched = artisan(host, "elms:dispatch-encode", name, "--duration=4")
    assert dispatched.rc == 0, dispatched.stderr
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    done = wait_for_file(host, out_dir + "/done.json", 90)
    return {"dir": out_dir, "done": done}


def test_video_job_is_processed(encode):
    assert encode["done"], "no done.json in %s after 90 s" % encode["dir"]


def test_video_job_ran_in_the_video_worker(host, encode):
    result = json.loads(host.file(encode["dir"] + "/done.json").content_string)
    assert result["pid"] == supervisor_status(host)["elms-video-worker:elms-video-worker_00"][1]


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


def test_default_job_is_processed_by_a_default_worker(host):
    marker = "verify-%d" % time.time()
    assert artisan(host, "elms:dispatch-ping", marker).rc == 0
    path = "%s/storage/app/markers/%s.json" % (APP, marker)
    assert wait_for_file(host, path, 30), "the default worker did not write %s" % path
    pid = json.loads(host.file(path).content_string)["pid"]
    status = supervisor_status(host)
    assert pid in (status["elms-default-worker:elms-default-worker_00"][1],
                   status["elms-default-worker:elms-default-worker_01"][1])
