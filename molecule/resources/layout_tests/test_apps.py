"""Two apps on one host, one of them in a zero-downtime release layout (scenario apps).

eLMS runs in /var/www/html as www-data; shop runs from /srv/shop/current (a symlink into
releases/r1 or r2, storage/ and database/ shared) as user shop, with a queue worker, the
scheduler and a custom daemon. Every test runs the collection's playbooks against the real
host and checks what a user would: supervisorctl status, pids, program files, the files
the jobs, the scheduler and the daemon write (each names the release it ran from). The
tests build on each other in file order (the last one removes shop).
"""

import json
import time

import pytest

from conftest import EXPECT, playbook, wait_until

SHOP = "/srv/shop"
CURRENT = SHOP + "/current"
SHARED = SHOP + "/shared/storage/app"
R1, R2 = SHOP + "/releases/r1", SHOP + "/releases/r2"
CTL = "%s -c %s" % (EXPECT["supervisorctl"], EXPECT["config"])
ELMS_WORKERS = [
    {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3, "max_time": 3600,
     "log": "storage/logs/worker-default.log"},
    {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1, "max_time": 7200,
     "memory": 512, "log": "storage/logs/worker-video.log", "nice": 10, "ionice_class": "best-effort",
     "ionice_level": 7},
]
SHOP_WORKER = {"name": "shop-worker", "queue": ["video-encoding", "default"], "sleep": 1, "tries": 1, "max_time": 3600}
SHOP_PROGRAMS = [SHOP_WORKER, {"name": "shop-scheduler", "kind": "schedule"},
                 {"name": "shop-daemon", "kind": "command", "command": ["elms:daemon"],
                  "restart_command": ["elms:daemon-restart"]}]
ELMS_APP = {"name": "elms", "programs": ELMS_WORKERS}
SHOP_APP = {"name": "shop", "dir": CURRENT, "user": "shop", "programs": SHOP_PROGRAMS}
ELMS_PROCESSES = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01",
                  "elms-video-worker:elms-video-worker_00"]
SHOP_PROCESSES = ["shop-worker:shop-worker_00", "shop-scheduler:shop-scheduler_00", "shop-daemon:shop-daemon_00"]
SHOP_PROGRAM_NAMES = ["shop-worker", "shop-scheduler", "shop-daemon"]


def deploy(*apps, **kwargs):
    extra = ["-e", json.dumps({"queue_workers_apps": list(apps)})]
    return playbook(kwargs.get("name", "site.yml"), None, *(extra + list(kwargs.get("extra", []))))


def restart(*extra):
    return deploy(ELMS_APP, SHOP_APP, name="restart.yml", extra=["-e", "queue_workers_restart_wait=300"] + list(extra))


def pids(supervisor_status, processes):
    status = supervisor_status()
    return dict((p, status.get(p, ("MISSING", None))) for p in processes)


def running(supervisor_status, processes):
    status = supervisor_status()
    return all(status.get(p, ("MISSING", None))[0] == "RUNNING" for p in processes)


def shop_artisan(host, *args):
    return host.run("cd %s && runuser -u shop -- php artisan %s" % (CURRENT, " ".join(args)))


def release_of(host, pid):
    """The release a process runs from: its working directory, resolved (supervisor chdirs into current).

    Read as the process's own user: root without CAP_SYS_PTRACE (a container's default) may not."""
    user = host.run("ps -o user= -p %d" % pid).stdout.strip()
    found = host.run("runuser -u %s -- readlink /proc/%d/cwd" % (user, pid))
    assert found.rc == 0 and user, "cannot read the working directory of pid %d (user %r): %s" % (pid, user, found.stderr)
    return found.stdout.strip()


def point_current(host, release):
    # As a deployer activates a release: a new link renamed over the old one, atomically.
    done = host.run("ln -sfn %s %s/current.new && mv -T %s/current.new %s" % (release, SHOP, SHOP, CURRENT))
    assert done.rc == 0, done.stderr


def json_file(host, path):
    found = host.file(path)
    return json.loads(found.content_string) if found.exists else None


def test_each_app_has_its_programs_marked_for_it(host):
    for app, names in (("elms", ["elms-default-worker", "elms-video-worker"]), ("shop", SHOP_PROGRAM_NAMES)):
        for name in names:
            first = host.file("%s/%s%s" % (EXPECT["include_dir"], name, EXPECT["extension"])).content_string.splitlines()[0]
            assert first.startswith("; Managed by Ansible (elms.queue_workers/%s)." % app), (name, first)


def test_every_program_of_both_apps_runs_as_its_apps_user(host, supervisor_status):
    status = supervisor_status()
    for processes, user in ((ELMS_PROCESSES, "www-data"), (SHOP_PROCESSES, "shop")):
        for process in processes:
            assert status.get(process, ("MISSING",))[0] == "RUNNING", (process, status)
            assert host.run("ps -o user= -p %d" % status[process][1]).stdout.strip() == user, process


def test_shops_programs_are_written_against_the_current_symlink_and_run_the_release_it_points_to(host, supervisor_status):
    text = host.file("%s/shop-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])).content_string
    assert "directory=%s\n" % CURRENT in text and "%s/artisan" % CURRENT in text
    assert R1 not in text
    status = supervisor_status()
    for process in SHOP_PROCESSES:
        assert release_of(host, status[process][1]) == R1, process


def test_the_scheduler_runs_the_apps_scheduled_command(host):
    # schedule:work runs the app's schedule every minute: a heartbeat file, from r1.
    found = wait_until(lambda: host.run("ls %s/schedule/ 2>/dev/null | grep -c json" % SHARED).stdout.strip() not in ("", "0"), 75)
    assert found, "no scheduled heartbeat within 75 s"
    latest = host.run("ls -t %s/schedule/*.json | head -1" % SHARED).stdout.strip()
    assert json_file(host, latest)["release"] == R1


def test_the_daemon_beats_from_r1(host, supervisor_status):
    pid = supervisor_status()["shop-daemon:shop-daemon_00"][1]
    assert wait_until(lambda: (json_file(host, "%s/daemon/%d.json" % (SHARED, pid)) or {}).get("beats", 0) >= 2, 30)
    assert json_file(host, "%s/daemon/%d.json" % (SHARED, pid))["release"] == R1


def test_a_change_to_one_app_leaves_the_other_apps_processes_alone(supervisor_status):
    before = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    shop_changed = dict(SHOP_APP, programs=[dict(SHOP_WORKER, sleep=2)] + SHOP_PROGRAMS[1:])
    rc, out = deploy(ELMS_APP, shop_changed)
    assert rc == 0, out[-3000:]
    after = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    assert {p: after[p] for p in ELMS_PROCESSES} == {p: before[p] for p in ELMS_PROCESSES}
    assert after["shop-worker:shop-worker_00"][0] == "RUNNING"
    assert after["shop-worker:shop-worker_00"][1] != before["shop-worker:shop-worker_00"][1]
    assert {p: after[p] for p in SHOP_PROCESSES[1:]} == {p: before[p] for p in SHOP_PROCESSES[1:]}

    # Now only elms changes (shop as the last run left it): every shop process keeps its pid, shop-worker included.
    before = after
    rc, out = deploy(dict(ELMS_APP, programs=[dict(ELMS_WORKERS[0], sleep=4), ELMS_WORKERS[1]]), shop_changed)
    assert rc == 0, out[-3000:]
    after = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    assert {p: after[p] for p in SHOP_PROCESSES} == {p: before[p] for p in SHOP_PROCESSES}, (before, after)
    assert after["elms-video-worker:elms-video-worker_00"] == before["elms-video-worker:elms-video-worker_00"]
    assert all(after[p][1] != before[p][1] for p in ELMS_PROCESSES[:2]), (before, after)
    # Back to the inventory's apps (shop-worker changes back: it restarts again, elms' default workers too).
    rc, out = deploy(ELMS_APP, SHOP_APP)
    assert rc == 0, out[-3000:]


def test_an_app_deployed_alone_leaves_the_other_app_alone(host, supervisor_status):
    before = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    rc, out = deploy(SHOP_APP)
    assert rc == 0, out[-3000:]
    assert pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES) == before
    assert "changed=0" in out.split("PLAY RECAP")[-1]


def test_a_program_name_of_the_other_app_is_refused_before_any_change(host, supervisor_status):
    files = host.run("sha256sum %s/*%s" % (EXPECT["include_dir"], EXPECT["extension"])).stdout
    before = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    stolen = dict(SHOP_APP, programs=SHOP_PROGRAMS + [dict(ELMS_WORKERS[0], log="storage/logs/stolen.log")])
    rc, out = deploy(stolen)
    assert rc != 0
    assert "already belongs to elms.queue_workers/elms" in out, out[-3000:]
    assert host.run("sha256sum %s/*%s" % (EXPECT["include_dir"], EXPECT["extension"])).stdout == files
    assert pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES) == before
    # In one play, the same collision is caught on the controller, naming both apps.
    rc, out = deploy(ELMS_APP, stolen)
    assert rc != 0 and "program elms-default-worker is also a program of app elms" in out, out[-3000:]


@pytest.fixture(scope="module")
def activation(host, supervisor_status):
    """A long encode started on r1, then current moved to r2 and restart.yml run while it encodes."""
    name = "release-%d" % time.time()
    before = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    dispatched = shop_artisan(host, "elms:dispatch-encode", name, "--duration=90", "--size=1280x720")
    assert dispatched.rc == 0, dispatched.stdout + dispatched.stderr
    out_dir = "%s/hls/%s" % (SHARED, name)
    assert wait_until(lambda: host.file(out_dir + "/started.json").exists, 60), "shop's worker did not start the encode"
    point_current(host, "releases/r2")
    restart_at = time.time()
    rc, out = restart()
    return {"rc": rc, "out": out, "dir": out_dir, "before": before, "restart_at": restart_at,
            "after": pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES),
            "started": json_file(host, out_dir + "/started.json"), "done": json_file(host, out_dir + "/done.json")}


def test_restart_after_activation_succeeds(activation):
    assert activation["rc"] == 0, activation["out"][-3000:]


def test_the_encode_running_on_r1_finished_on_r1_in_its_own_process(activation):
    started, done = activation["started"], activation["done"]
    assert started["release"] == R1 and started["pid"] == activation["before"]["shop-worker:shop-worker_00"][1]
    assert done, "no done.json: the encode did not finish before the worker recycled"
    assert done["release"] == R1 and done["pid"] == started["pid"]


def test_the_encode_was_still_running_when_the_restart_began(activation):
    finished = time.mktime(time.strptime(activation["done"]["finished_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert finished > activation["restart_at"], (activation["done"]["finished_at"], activation["restart_at"])


def test_every_program_of_both_apps_runs_again_under_a_new_pid(activation):
    for process in ELMS_PROCESSES + SHOP_PROCESSES:
        state, pid = activation["after"][process]
        assert state == "RUNNING" and pid != activation["before"][process][1], process


def test_shops_programs_run_r2_after_activation(host, activation):
    for process in SHOP_PROCESSES:
        assert release_of(host, activation["after"][process][1]) == R2, process


def next_job_release(host, name):
    """Dispatch a job through shop's current release; the release that processed it."""
    marker = "%s-%d" % (name, time.time())
    assert shop_artisan(host, "elms:dispatch-ping", marker).rc == 0
    path = "%s/markers/%s.json" % (SHARED, marker)
    assert wait_until(lambda: host.file(path).exists, 60), "no worker processed %s within 60 s" % marker
    return json_file(host, path)["release"]


def test_the_next_job_runs_on_r2(host, activation):
    assert next_job_release(host, "after-r2") == R2


def test_the_daemon_stopped_gracefully_on_its_restart_command(host, activation):
    old = json_file(host, "%s/daemon/%d.json" % (SHARED, activation["before"]["shop-daemon:shop-daemon_00"][1]))
    assert old["stopped_because"] == "restart-signal" and old["release"] == R1, old
    new_pid = activation["after"]["shop-daemon:shop-daemon_00"][1]
    assert wait_until(lambda: json_file(host, "%s/daemon/%d.json" % (SHARED, new_pid)) is not None, 30)
    assert json_file(host, "%s/daemon/%d.json" % (SHARED, new_pid))["release"] == R2


def test_no_job_failed_on_either_app(host, activation):
    assert "No failed jobs" in shop_artisan(host, "queue:failed").stdout
    assert "No failed jobs" in host.run("cd /var/www/html && runuser -u www-data -- php artisan queue:failed").stdout


def test_rollback_is_current_back_to_r1_and_restart_again(host, supervisor_status, activation):
    point_current(host, "releases/r1")
    rc, out = restart()
    assert rc == 0, out[-3000:]
    status = supervisor_status()
    for process in SHOP_PROCESSES:
        assert status[process][0] == "RUNNING" and release_of(host, status[process][1]) == R1, process
    assert next_job_release(host, "rollback-r1") == R1


def test_a_release_with_its_own_cache_is_refused_before_any_signal(host, supervisor_status):
    # r3 keeps storage/ (and with it the file cache) inside the release: workers of r1 would
    # never see a restart signal written there.
    made = host.run("cp -a %s %s/releases/r3 && rm %s/releases/r3/storage && cp -a %s/shared/storage %s/releases/r3/storage"
                    % (R1, SHOP, SHOP, SHOP, SHOP))
    assert made.rc == 0, made.stderr
    point_current(host, "releases/r3")
    before = pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES)
    try:
        rc, out = restart()
    finally:
        point_current(host, "releases/r1")
    assert rc != 0
    assert "inside the release %s/releases/r3" % SHOP in out and "Share it between releases" in out, out[-3000:]
    assert pids(supervisor_status, ELMS_PROCESSES + SHOP_PROCESSES) == before


def test_the_diagnosis_checks_each_app_with_its_own_user_and_kinds(host):
    rc, out = deploy(ELMS_APP, SHOP_APP, name="diagnose.yml", extra=["-e", "queue_workers_diagnose_dir="])
    assert rc == 0, out[-4000:]
    # The report's lines as printed, without the output's line folding.
    out = " ".join(out.split()).replace("''", "'")
    assert "diagnosis of elms-mol-apps app elms" in out and "diagnosis of elms-mol-apps app shop" in out
    assert "shop runs 'artisan schedule:list' (exit 0)" in out
    assert "shop runs 'artisan queue:work --once' (exit 0)" in out


def test_removing_an_app_stops_and_removes_its_programs_only(host, supervisor_status):
    before = pids(supervisor_status, ELMS_PROCESSES)
    rc, out = deploy(ELMS_APP, dict(SHOP_APP, state="absent"))
    assert rc == 0, out[-3000:]
    status = supervisor_status()
    assert not any(p in status for p in SHOP_PROCESSES), status
    for name in SHOP_PROGRAM_NAMES:
        assert not host.file("%s/%s%s" % (EXPECT["include_dir"], name, EXPECT["extension"])).exists
    assert pids(supervisor_status, ELMS_PROCESSES) == before
    assert status["admin-heartbeat"][0] == "RUNNING"
    # No shop process is left behind outside supervisor either.
    assert host.run("pgrep -u shop -f artisan").rc == 1
