"""Deploys that change things while real jobs run: nothing is lost, only what changed restarts.

These tests run the collection's own playbooks again (ansible-playbook against the
scenario's inventory) and look at process ids, the HLS output and failed_jobs. They
build on each other, in file order.
"""

import datetime
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APP, EXPECT, playbook

DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log",
                "nice": 10, "ionice_class": "best-effort", "ionice_level": 7}
DEFAULT_PROCS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
VIDEO_PROC = "elms-video-worker:elms-video-worker_00"


def pids(supervisor_status):
    return {name: pid for name, (state, pid) in supervisor_status().items()}


def start_encode(artisan, wait_for_file, name, seconds=90):
    """Dispatch a long encode and return once the video worker has started it."""
    assert artisan("elms:dispatch-encode", name, "--duration=%d" % seconds, "--size=1280x720").rc == 0
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


def task_status(out, task):
    """'ok', 'changed', 'skipping', ... of the first run of the task named so in a playbook's output."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TASK [") and task in line)
    return next(line.split(":", 1)[0] for line in lines[start + 1:] if line.strip())


def test_a_program_file_changed_by_hand_is_put_back_without_a_restart(host, supervisor_status):
    # The no-change path decides from the probe's copy of each file: an edit or a mode
    # change must still be seen and undone.
    path = "%s/elms-video-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])
    original = host.file(path).sha256sum
    before = pids(supervisor_status)
    host.check_output("chmod 0666 %s && echo '; edited by hand' >> %s" % (path, path))
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert "changed=0" not in out
    assert host.file(path).sha256sum == original
    assert host.file(path).mode == 0o644
    # supervisor sees the same program again (a comment was all that differed): nobody restarts.
    assert pids(supervisor_status) == before


def ffmpeg_role_ran(out):
    """Whether any task of the ffmpeg role ran (it runs only where the converge says FFmpeg is not proven)."""
    return "TASK [elms.queue_workers.ffmpeg : " in out


def test_the_ffmpeg_check_is_skipped_until_the_binary_changes(host):
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert not ffmpeg_role_ran(out), out[-3000:]
    # A replaced binary (a new mtime is enough) is checked again, and the stamp follows it.
    host.check_output("touch /usr/bin/ffmpeg")
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert task_status(out, "Encode one second of test video to HLS") == "ok"
    stamp = host.file("/var/lib/elms-queue-workers/ffmpeg-hls-verified").content_string
    assert stamp.startswith("/usr/bin/ffmpeg:%d:%d;" % (host.file("/usr/bin/ffmpeg").size,
                                                       host.file("/usr/bin/ffmpeg").mtime.timestamp()))
    rc, out = playbook("site.yml")
    assert not ffmpeg_role_ran(out), out[-3000:]
    # Beside the stamp, the libraries it hashed: what the converge stats instead of running ldd.
    listed = host.file("/var/lib/elms-queue-workers/ffmpeg-hls-verified.libs").content_string.splitlines()
    assert any("libavcodec" in line for line in listed) and all(line.startswith("/") for line in listed), listed
    # A library FFmpeg links (an upgraded libavcodec) is a new FFmpeg too.
    host.check_output("touch $(readlink -f $(ldd /usr/bin/ffmpeg | grep -o '/[^ ]*libavcodec[^ ]*'))")
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert task_status(out, "Encode one second of test video to HLS") == "ok"
    assert host.file("/var/lib/elms-queue-workers/ffmpeg-hls-verified").content_string != stamp
    rc, out = playbook("site.yml")
    assert not ffmpeg_role_ran(out), out[-3000:]


# (extra vars, words the error must contain). Each must fail before anything changes.
BAD_INPUTS = [
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, name="elms_default")]}, "no '_'", id="underscore-name"),
    pytest.param({"queue_workers_programs": [DEFAULT_WORKER, dict(VIDEO_WORKER, name="elms-default-worker")]},
                 "used twice", id="duplicate-name"),
    pytest.param({"queue_workers_programs": [{"name": "x", "numprocs": 1}]}, "(x).queue = None must be a queue name",
                 id="missing-queue"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, queue="a,b")]}, "must be a queue name", id="comma-queue"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, numprocs=0)]}, "numprocs = 0", id="numprocs-zero"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, numprocs=100)]}, "from 1 to 64", id="numprocs-100"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, sleep=-1)]}, "sleep = -1", id="negative-sleep"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, tries=0)]}, "tries = 0", id="zero-tries"),
    pytest.param({"queue_workers_programs": [dict(VIDEO_WORKER, timeout=7000, stopwaitsecs=600)]},
                 "SIGKILL a running job", id="stopwait-below-timeout"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, user="root")]}, "queue_workers_allow_root", id="root"),
    pytest.param({"queue_workers_user": "nobody-here"}, "user nobody-here does not exist", id="unknown-user"),
    pytest.param({"queue_workers_app_dir": "/srv/no-app"}, "/srv/no-app/artisan does not exist", id="no-artisan"),
    pytest.param({"queue_workers_php": "php"}, "queue_workers_php = 'php' must be an absolute path", id="relative-php"),
    pytest.param({"queue_workers_php": "/usr/bin/php9"}, "php /usr/bin/php9 is not an executable file", id="missing-php"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, log="a.log\nb")]}, "line break", id="newline-log"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, extra_args=["--name=a ;b"])]}, "start of a comment",
                 id="comment-in-args"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, sleeep=3)]}, "sleeep", id="typo-key"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, supervisor_options={"command": "/bin/sh"})]},
                 "set by the role", id="override-command"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, supervisor_options={"stopwaitsec": 5})]},
                 "not a supervisor [program:x] option", id="unknown-supervisor-option"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, state="gone")]}, "gone", id="bad-state"),
    pytest.param({"queue_workers_programs": [dict(VIDEO_WORKER, nice=25)]}, "from -20 to 19", id="nice-25"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, timeout=90)], "queue_workers_retry_after": 90},
                 "retry_after", id="timeout-vs-retry-after"),
    pytest.param({"queue_workers_programs": [dict(DEFAULT_WORKER, environment={"1BAD": "x"})]},
                 "not a valid variable name", id="bad-env-name"),
]


@pytest.fixture(scope="module")
def bad_runs(host, supervisor_status):
    """Every bad input through the site playbook, three at a time (each run is mostly the
    controller starting up): {case id: (rc, output)}, and the program files and pids
    before and after all of them."""
    files, before = program_files(host), pids(supervisor_status)

    def run(extra_vars):
        return playbook("site.yml", None, "-e", json.dumps(extra_vars))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip([p.id for p in BAD_INPUTS], pool.map(run, [p.values[0] for p in BAD_INPUTS])))
    return {"results": results, "files": (files, program_files(host)), "pids": (before, pids(supervisor_status))}


@pytest.mark.parametrize("case, extra_vars, words", [pytest.param(p.id, *p.values, id=p.id) for p in BAD_INPUTS])
def test_bad_input_fails_naming_it(bad_runs, case, extra_vars, words):
    rc, out = bad_runs["results"][case]
    assert rc != 0
    assert words in out, out[-3000:]
    # The error alone, not the whole argument spec after it.
    assert "argument_spec_data" not in out


def test_no_bad_input_changed_a_program_file(bad_runs):
    before, after = bad_runs["files"]
    assert after == before


def test_no_bad_input_restarted_a_process(bad_runs):
    before, after = bad_runs["pids"]
    assert after == before


def test_changing_the_default_worker_leaves_a_running_encode_alone(host, supervisor_status, artisan, wait_for_file):
    # Long enough to outlast the deploy on a fast machine (the check below says if not).
    out_dir = start_encode(artisan, wait_for_file, "deploy-default", seconds=150)
    before = pids(supervisor_status)
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), VIDEO_WORKER], "--tags", "queue_workers")
    assert rc == 0, out
    after = pids(supervisor_status)
    assert not host.file(out_dir + "/done.json").exists, "the encode finished before the deploy: make it longer"
    assert after[VIDEO_PROC] == before[VIDEO_PROC]
    assert all(after[p] != before[p] for p in DEFAULT_PROCS)
    assert wait_for_file(out_dir + "/done.json", 480)
    assert json.loads(host.file(out_dir + "/done.json").content_string)["pid"] == before[VIDEO_PROC]


def test_changing_the_video_worker_lets_the_running_encode_finish(host, supervisor_status, artisan, wait_for_file):
    out_dir = start_encode(artisan, wait_for_file, "deploy-video")
    before = pids(supervisor_status)
    log_lines = int(host.run("wc -l < /var/log/supervisor/supervisord.log").stdout)
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), dict(VIDEO_WORKER, memory=640)],
                       "--tags", "queue_workers")
    assert rc == 0, out
    # supervisor waited for the worker to finish the job (it logs that each second)...
    log = host.run("tail -n +%d /var/log/supervisor/supervisord.log" % (log_lines + 1)).stdout
    assert "waiting for elms-video-worker_00 to stop" in log
    assert "stopped: elms-video-worker_00 (exit status 0)" in log
    # ...and update returned only after that: the encode is complete.
    assert host.file(out_dir + "/done.json").exists
    # In order: the encode started, then the deploy asked the worker to stop (it was still
    # encoding), then the encode finished, then the worker exited.
    done = json.loads(host.file(out_dir + "/done.json").content_string)
    asked = log_time(log, "waiting for elms-video-worker_00 to stop")
    stopped = log_time(log, "stopped: elms-video-worker_00 (exit status 0)")
    assert iso_time(done["started_at"]) < asked < iso_time(done["finished_at"]) <= stopped
    for variant in ("240p", "144p"):
        assert "#EXT-X-ENDLIST" in host.file("%s/%s/index.m3u8" % (out_dir, variant)).content_string
    assert pids(supervisor_status)[VIDEO_PROC] != before[VIDEO_PROC]


def log_time(log, words):
    """When supervisord first logged a line containing words (its log is in the container's UTC)."""
    line = next(line for line in log.splitlines() if words in line)
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=datetime.timezone.utc)


def iso_time(text):
    return datetime.datetime.fromisoformat(text)


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
        assert "supervisor cannot read its config" in out and broken in out and "Nothing was written" in out
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
    assert rc != 0 and "admin-heartbeat%s is a program file of someone else" % EXPECT["extension"] in out
    assert "[program:admin-heartbeat]\ncommand=/bin/sleep infinity" in host.file(
        "%s/admin-heartbeat%s" % (EXPECT["include_dir"], EXPECT["extension"])).content_string


def test_environment_values_never_reach_the_output(host):
    secret = "s3cr3t-token-value"
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, environment={"API_TOKEN": secret}), VIDEO_WORKER],
                       "--tags", "queue_workers", "--diff", "-v")
    assert rc == 0, out
    assert secret not in out
    assert secret in host.file("%s/elms-default-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])).content_string


def test_numprocs_auto_sizes_workers_from_the_host(host, supervisor_status):
    cpus = int(host.run("nproc").stdout)
    memory_mb = int(host.run("awk '/^MemTotal:/ {print $2}' /proc/meminfo").stdout) // 1024
    gigabytes = int(round(memory_mb / 1024.0))
    light = max(1, min(4, cpus // 2, gigabytes // 2))
    heavy = max(1, min(3, (cpus - 2) // 2, (gigabytes - 2) // 2))
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, numprocs="auto"),
                                    dict(VIDEO_WORKER, numprocs="auto", weight="heavy")], "--tags", "queue_workers")
    assert rc == 0, out
    running = [p for p, (state, _pid) in supervisor_status().items() if state == "RUNNING"]
    assert len([p for p in running if p.startswith("elms-default-worker:")]) == light
    assert len([p for p in running if p.startswith("elms-video-worker:")]) == heavy


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
    assert "All 3 worker processes run the new code" in out


@pytest.fixture(scope="module", autouse=True)
def back_to_defaults():
    yield
    playbook("site.yml")
