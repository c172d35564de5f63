"""A deploy converges a host that is not where the last run left it.

Each test puts the real host (systemd, Debian's supervisord, the real Laravel workers) in a
state a user meets, runs the collection's site playbook, and checks what a user would:
processes RUNNING under supervisord with the right command line, pids, files, jobs done.
The tests build on each other in file order; the module fixture puts the defaults back.
"""

import datetime
import json
import time

import pytest

from conftest import APP, APP_USER, EXPECT, playbook, wait_until

DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log",
                "nice": 10, "ionice_class": "best-effort", "ionice_level": 7}
DEFAULT_PROCS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01"]
VIDEO_PROC = "elms-video-worker:elms-video-worker_00"
WORKERS = DEFAULT_PROCS + [VIDEO_PROC]
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
DROP_IN = "/etc/systemd/system/supervisor.service.d"


def program_path(name):
    return "%s/%s%s" % (EXPECT["include_dir"], name, EXPECT["extension"])


def cmdline(host, pid):
    return host.file("/proc/%d/cmdline" % pid).content_string.split("\0")


def pids(supervisor_status):
    return dict((name, pid) for name, (_state, pid) in supervisor_status().items())


def all_running(supervisor_status, names=WORKERS):
    status = supervisor_status()
    return all(status.get(name, ("MISSING",))[0] == "RUNNING" for name in names)


def unmanaged_workers(host):
    """queue:work processes whose parent is no supervisord: orphans."""
    found = []
    for line in host.check_output("ps -eo pid=,ppid=,args=").splitlines():
        pid, ppid, args = line.split(None, 2)
        if "artisan queue:work" in args and "nice" not in args.split()[0]:
            parent = host.run("cat /proc/%s/cmdline" % ppid).stdout
            if "supervisord" not in parent:
                found.append(int(pid))
    return found


@pytest.fixture(scope="module", autouse=True)
def converged():
    rc, out = playbook("site.yml")
    assert rc == 0, out
    yield
    playbook("site.yml")


def test_a_change_written_but_never_applied_is_applied_by_the_next_run(host, supervisor_status):
    # What an interrupted run leaves: the new file on disk, supervisord still running the old one.
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), VIDEO_WORKER])
    assert rc == 0, out
    new_text = host.file(program_path("elms-default-worker")).content_string
    rc, out = playbook("site.yml")
    assert rc == 0, out
    host.check_output("cat > %s <<'EOF'\n%sEOF" % (program_path("elms-default-worker"), new_text))
    before = pids(supervisor_status)
    assert "--sleep=3" in cmdline(host, before[DEFAULT_PROCS[0]])

    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), VIDEO_WORKER])
    assert rc == 0, out
    after = pids(supervisor_status)
    assert all(after[p] != before[p] for p in DEFAULT_PROCS)
    assert "--sleep=4" in cmdline(host, after[DEFAULT_PROCS[0]])
    assert after[VIDEO_PROC] == before[VIDEO_PROC]
    # And once applied, the same inputs change nothing.
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, sleep=4), VIDEO_WORKER])
    assert rc == 0 and "changed=0" in out, out
    assert pids(supervisor_status) == after
    rc, out = playbook("site.yml")
    assert rc == 0, out


def test_a_worker_an_admin_stopped_is_started_again(host, supervisor_status):
    host.check_output("%s stop 'elms-video-worker:*'" % CTL)
    assert supervisor_status()[VIDEO_PROC][0] == "STOPPED"
    before = pids(supervisor_status)
    rc, out = playbook("site.yml")
    assert rc == 0, out
    status = supervisor_status()
    assert status[VIDEO_PROC][0] == "RUNNING"
    assert all(status[p][1] == before[p] for p in DEFAULT_PROCS)


def test_a_worker_kept_stopped_on_purpose_stays_stopped(host, supervisor_status):
    rc, out = playbook("site.yml", [DEFAULT_WORKER, dict(VIDEO_WORKER, state="stopped")])
    assert rc == 0, out
    assert supervisor_status()[VIDEO_PROC][0] == "STOPPED"
    assert host.file(program_path("elms-video-worker")).exists
    rc, out = playbook("site.yml", [DEFAULT_WORKER, dict(VIDEO_WORKER, state="stopped")])
    assert rc == 0 and "changed=0" in out, out
    # Kept stopped by the second run too: it did not start it, and says nothing changed.
    assert supervisor_status()[VIDEO_PROC][0] == "STOPPED"
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert supervisor_status()[VIDEO_PROC][0] == "RUNNING"


def test_a_fatal_worker_is_started_again(host, supervisor_status):
    # The worker cannot boot while artisan is unreadable: supervisor gives up on it (FATAL).
    host.check_output("chmod 000 %s/artisan && %s restart 'elms-video-worker:*' || true" % (APP, CTL))
    try:
        assert wait_until(lambda: supervisor_status()[VIDEO_PROC][0] == "FATAL", 90), supervisor_status()
    finally:
        host.check_output("chmod 0755 %s/artisan" % APP)
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert supervisor_status()[VIDEO_PROC][0] == "RUNNING"


def test_supervisord_killed_under_systemd_is_started_and_its_orphans_finish_their_job(
        host, supervisor_status, artisan, wait_for_file):
    name = "orphan-%d" % time.time()
    assert artisan("elms:dispatch-encode", name, "--duration=60", "--size=1280x720").rc == 0
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    assert wait_for_file(out_dir + "/started.json", 60)
    old = pids(supervisor_status)
    assert json.loads(host.file(out_dir + "/started.json").content_string)["pid"] == old[VIDEO_PROC]
    # Debian's unit restarts a dead supervisord after 50 s; a longer delay here keeps a slow
    # machine from mistaking systemd's own restart for the deploy's start.
    host.check_output("mkdir -p %s && printf '[Service]\\nRestartSec=600\\n' > %s/delay.conf && systemctl daemon-reload"
                      % (DROP_IN, DROP_IN))
    supervisord = host.check_output("%s pid" % CTL)
    killed = int(host.check_output("date +%s"))
    host.check_output("kill -9 %s" % supervisord)
    # systemd now waits before its own restart; the old workers run on, unmanaged.
    time.sleep(2)
    assert host.run("systemctl is-active supervisor").stdout.strip() != "active"
    assert sorted(unmanaged_workers(host)) == sorted(old[p] for p in WORKERS)

    deploy_began = time.time()
    try:
        rc, out = playbook("site.yml")
    finally:
        host.check_output("rm -rf %s && systemctl daemon-reload" % DROP_IN)
    assert rc == 0, out
    # The deploy started it, long before systemd would have.
    new_supervisord = host.check_output("%s pid" % CTL)
    started = int(host.check_output("date +%s")) - int(host.check_output("ps -o etimes= -p %s" % new_supervisord))
    assert started - killed < 300, "supervisord came back %d s after it was killed" % (started - killed)
    assert all_running(supervisor_status)
    new = pids(supervisor_status)
    assert all(new[p] != old[p] for p in WORKERS)
    # Every orphan was stopped; the one busy with an encode finished it first.
    assert unmanaged_workers(host) == []
    # The encode was in flight when the deploy reached the orphan: the orphan (the video worker's old
    # process) finished it, after the deploy began (the containers share this machine's clock).
    done = json.loads(host.file(out_dir + "/done.json").content_string)
    assert done["pid"] == old[VIDEO_PROC], done
    assert datetime.datetime.fromisoformat(done["finished_at"]).timestamp() > deploy_began, done
    assert "#EXT-X-ENDLIST" in host.file(out_dir + "/240p/index.m3u8").content_string
    assert "No failed jobs" in artisan("queue:failed").stdout


def test_a_changed_worker_that_cannot_start_is_rolled_back(host, supervisor_status):
    original = host.file(program_path("elms-default-worker")).sha256sum
    before = pids(supervisor_status)
    broken = dict(DEFAULT_WORKER, extra_args=["--no-such-option"])
    rc, out = playbook("site.yml", [broken, VIDEO_WORKER], "-e", "queue_workers_wait_timeout=20")
    assert rc != 0, out
    assert "elms-default-worker did not reach RUNNING" in out, out[-3000:]
    assert "no-such-option" in out.split("did not reach RUNNING", 1)[1]
    assert "previous version was put back and runs again" in out
    # The previous version runs again (new processes), the other worker was never touched.
    assert host.file(program_path("elms-default-worker")).sha256sum == original
    status = supervisor_status()
    assert all(status[p][0] == "RUNNING" and status[p][1] != before[p] for p in DEFAULT_PROCS)
    assert "--no-such-option" not in cmdline(host, status[DEFAULT_PROCS[0]][1])
    assert status[VIDEO_PROC][1] == before[VIDEO_PROC]


def test_a_rollback_brings_back_a_file_removed_in_the_same_run(host, supervisor_status):
    """The run removes the video worker (not listed) and breaks the default one: the default one does not start,
    so both files are put back, and the video worker, stopped and removed by the run, runs again."""
    video_file = host.file(program_path("elms-video-worker")).sha256sum
    before = pids(supervisor_status)
    broken = dict(DEFAULT_WORKER, extra_args=["--no-such-option"])
    rc, out = playbook("site.yml", [broken], "-e", "queue_workers_wait_timeout=20")
    assert rc != 0, out
    assert "elms-default-worker did not reach RUNNING" in out and "previous version was put back" in out, out[-3000:]
    # The run did remove the video worker's group (its old process is gone), and put its file back.
    assert host.file(program_path("elms-video-worker")).sha256sum == video_file
    assert wait_until(lambda: all_running(supervisor_status), 60), supervisor_status()
    after = pids(supervisor_status)
    assert after[VIDEO_PROC] != before[VIDEO_PROC]
    assert all(after[p] != before[p] for p in DEFAULT_PROCS)
    assert "--no-such-option" not in cmdline(host, after[DEFAULT_PROCS[0]])


def test_a_new_worker_that_cannot_start_is_stopped_and_named(host, supervisor_status):
    new = {"name": "elms-broken-worker", "queue": "nothing", "extra_args": ["--no-such-option"]}
    rc, out = playbook("site.yml", [DEFAULT_WORKER, VIDEO_WORKER, new], "-e", "queue_workers_wait_timeout=15")
    assert rc != 0, out
    assert "elms-broken-worker did not reach RUNNING" in out and "it is new" in out
    assert supervisor_status()["elms-broken-worker:elms-broken-worker_00"][0] in ("STOPPED", "FATAL")
    assert all_running(supervisor_status)
    rc, out = playbook("site.yml")
    assert rc == 0, out
    assert not host.file(program_path("elms-broken-worker")).exists
    assert "elms-broken-worker:elms-broken-worker_00" not in supervisor_status()


ENVIRONMENT = {
    "DOUBLE_QUOTED": 'say "hi" twice',
    "SINGLE_QUOTED": "it's",
    "BACKSLASHES": "C:\\path\\to\\file \\n not a newline",
    "COMMAS": "a,b,c",
    "PERCENT": "100% of %(ENV_HOME)s",
    "EQUALS": "key=value=more",
    "SPACES": "  two  spaces  ",
    "HASH_AND_SEMICOLON": "a#b;c",
}


def test_environment_values_reach_the_worker_byte_for_byte(host, supervisor_status):
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, environment=ENVIRONMENT), VIDEO_WORKER])
    assert rc == 0, out
    pid = supervisor_status()[DEFAULT_PROCS[0]][1]
    # As the worker's user: root in a container without CAP_SYS_PTRACE cannot read it.
    raw = host.check_output("runuser -u %s -- cat /proc/%d/environ | base64 -w0" % (APP_USER, pid))
    import base64
    environ = dict(item.split("=", 1) for item in base64.b64decode(raw).decode().split("\0") if "=" in item)
    for key, value in ENVIRONMENT.items():
        assert environ.get(key) == value, key


def test_no_environment_value_reaches_a_verbose_diff_run(host):
    """Both runs change the program next to its environment= line (the log backups, and a new secret each), so both
    print a diff whose context shows that line: with the values hidden."""
    for number, verbosity in enumerate(("-v", "-vv")):
        secret = "s3cr3t-rerun-value-%d" % number
        environment = dict(ENVIRONMENT, API_TOKEN=secret)
        rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, environment=environment), VIDEO_WORKER], verbosity,
                           "--diff", "-e", "queue_workers_log_backups=%d" % (6 + number))
        assert rc == 0, out
        assert "changed=0" not in out.split("PLAY RECAP")[-1], "the run changed nothing: no diff was printed"
        assert "+stdout_logfile_backups=%d" % (6 + number) in out, out[-3000:]
        assert " environment= (values hidden)" in out, out[-3000:]
        assert secret not in out and ENVIRONMENT["BACKSLASHES"] not in out
        assert secret in host.file(program_path("elms-default-worker")).content_string


def test_an_environment_value_supervisor_cannot_carry_is_refused_before_anything_changes(host, supervisor_status):
    files = host.check_output("sha256sum %s/*%s" % (EXPECT["include_dir"], EXPECT["extension"]))
    before = pids(supervisor_status)
    rc, out = playbook("site.yml", [dict(DEFAULT_WORKER, environment={"BOTH": "it's \"both\""}), VIDEO_WORKER])
    assert rc != 0
    assert "elms-default-worker" in out and "environment.BOTH" in out
    assert host.check_output("sha256sum %s/*%s" % (EXPECT["include_dir"], EXPECT["extension"])) == files
    assert pids(supervisor_status) == before


def test_a_wiped_include_directory_is_written_back_while_an_encode_runs(host, supervisor_status, artisan,
                                                                         wait_for_file):
    """The include directory removed on a deployed host (a wiped conf.d): the deploy writes both files back,
    supervisord sees the groups unchanged, every pid is kept and the encode finishes; the rerun changes nothing."""
    rc, out = playbook("site.yml")
    assert rc == 0, out
    name = "wiped-%d" % time.time()
    assert artisan("elms:dispatch-encode", name, "--duration=30", "--size=640x360").rc == 0
    out_dir = "%s/storage/app/hls/%s" % (APP, name)
    assert wait_for_file(out_dir + "/started.json", 60)
    before = pids(supervisor_status)
    texts = dict((p, host.file(program_path(p)).content_string) for p in ("elms-default-worker", "elms-video-worker"))
    # Someone else's program beside ours is put back after the test (it is not ours to write back).
    host.check_output("rm -rf /root/include.saved && cp -a %s /root/include.saved" % EXPECT["include_dir"])
    host.check_output("rm -rf %s" % EXPECT["include_dir"])
    try:
        rc, out = playbook("site.yml")
    finally:
        host.check_output("mkdir -p {0} && cp -an /root/include.saved/. {0}/".format(EXPECT["include_dir"]))
    assert rc == 0, out[-3000:]
    for program, text in texts.items():
        assert host.file(program_path(program)).content_string == text, program
    assert pids(supervisor_status) == before
    assert wait_for_file(out_dir + "/done.json", 120), "the encode did not finish"
    assert json.loads(host.file(out_dir + "/done.json").content_string)["pid"] == before[VIDEO_PROC]
    rc, out = playbook("site.yml")
    assert rc == 0 and "changed=0" in out.split("PLAY RECAP")[-1], out[-3000:]
    assert pids(supervisor_status) == before


def test_one_removed_program_file_is_written_back_without_a_restart(host, supervisor_status):
    before = pids(supervisor_status)
    text = host.file(program_path("elms-default-worker")).content_string
    host.check_output("rm -f %s" % program_path("elms-default-worker"))
    rc, out = playbook("site.yml")
    assert rc == 0, out[-3000:]
    assert host.file(program_path("elms-default-worker")).content_string == text
    assert pids(supervisor_status) == before
    rc, out = playbook("site.yml")
    assert rc == 0 and "changed=0" in out.split("PLAY RECAP")[-1], out[-3000:]
