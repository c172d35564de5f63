"""Orphans of a dead supervisord are found and stopped, on real processes.

Every process here is real: an orphan is a program whose launcher exited, so the
kernel reparented it (to pid 1 or a subreaper), exactly as when supervisord is
killed. One test runs a real supervisord and kills it with SIGKILL. Group names
carry this run's pid and a random suffix, so parallel runs never see each other's
processes, and every process started is killed at teardown, also when a test fails.
Fixtures are function-scoped: `ansible-test units` runs each test in a fork of its
own, where a module-scoped fixture would never be torn down.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_collections.elms.queue_workers.plugins.module_utils import orphans

PREFIX = "elms-test-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# A queue worker stand-in. SIGTERM: finish the running "job" (1 s), write done-PID,
# exit 0, like `php artisan queue:work`. ELMS_TEST_MODE=ignore: SIGTERM is ignored.
# ELMS_TEST_CHILD=default|ignore: start a child in the same process group (ffmpeg
# started by the worker) with SIGTERM's default action, or ignoring it. Everything
# exits by itself after 120 s, so even a test run killed before its teardown
# leaves nothing behind for long. ready-PID (JSON: pid, child, process) says it
# is set up.
WORKER = r"""
import json, os, signal, subprocess, sys, time
state = os.environ["ELMS_TEST_DIR"]
stopping = []
if os.environ.get("ELMS_TEST_MODE") == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
child = None
if os.environ.get("ELMS_TEST_CHILD"):
    code = "import signal, time\n"
    if os.environ["ELMS_TEST_CHILD"] == "ignore":
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    child = subprocess.Popen([sys.executable, "-c", code + "time.sleep(120)"]).pid
ready = os.path.join(state, "ready-%d" % os.getpid())
with open(ready + ".tmp", "w") as handle:
    json.dump({"pid": os.getpid(), "child": child, "process": os.environ.get("SUPERVISOR_PROCESS_NAME")}, handle)
os.rename(ready + ".tmp", ready)
deadline = time.time() + 120
while not stopping and time.time() < deadline:
    time.sleep(0.05)
if stopping:
    time.sleep(1.0)
    with open(os.path.join(state, "done-%d" % os.getpid()), "w") as handle:
        handle.write("job finished")
    sys.exit(0)
"""

# Starts the worker in a new session (its own process group, as supervisord's
# setpgrp() does), prints its pid and exits: the worker loses its parent.
LAUNCHER = r"""
import subprocess, sys
with open(sys.argv[2], "ab") as log:
    proc = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
print(proc.pid)
"""

# A parent whose command line is a supervisord's (python3 .../supervisord): it
# starts one program the way supervisord does and stays alive.
FAKE_SUPERVISORD = r"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", os.environ.pop("ELMS_TEST_WORKER")], preexec_fn=os.setpgrp,
                 env=dict(os.environ, **{"SUPERVISOR_ENABLED": "1", "SUPERVISOR_GROUP_NAME": os.environ["ELMS_TEST_GROUP"],
                                         "SUPERVISOR_PROCESS_NAME": os.environ["ELMS_TEST_GROUP"] + "_00"}))
time.sleep(120)
"""


def proc_stat(pid):
    """(state, ppid, pgid, start ticks) read from /proc, or None when the pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rpartition(")")[2].split()
    except (IOError, OSError):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return b""


def alive(pid, ticks=None):
    """Running (a zombie has exited) and, when ticks is given, still the same process."""
    stat = proc_stat(pid)
    return bool(stat) and stat[0] not in ("Z", "X") and (ticks is None or stat[3] == ticks)


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def supervisor_env(group, process=None, server_url=None, **extra):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("SUPERVISOR_"))
    if group is not None:
        env.update(SUPERVISOR_ENABLED="1", SUPERVISOR_GROUP_NAME=group,
                   SUPERVISOR_PROCESS_NAME=process or group + "_00")
    if server_url:
        env["SUPERVISOR_SERVER_URL"] = server_url
    env.update(extra)
    return env


class Processes:
    """Starts test processes and kills every one of them at teardown."""

    def __init__(self, state_dir):
        self.state = state_dir
        self.log = os.path.join(state_dir, "processes.log")
        self.popens = []
        self.tracked = []  # (pid, start ticks)

    def track(self, pid):
        stat = proc_stat(pid)
        if stat:
            self.tracked.append((pid, stat[3]))

    def popen(self, argv, env, **kwargs):
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **kwargs)
        self.popens.append(proc)
        self.track(proc.pid)
        return proc

    def ready(self, pid):
        """Wait for a worker's ready file; track its child. Returns the file's content."""
        path = os.path.join(self.state, "ready-%d" % pid)
        try:
            wait_for(lambda: os.path.exists(path), what="worker %d to start" % pid)
        except AssertionError:
            with open(self.log) as handle:
                raise AssertionError("worker %d did not start; its output:\n%s" % (pid, handle.read()))
        with open(path) as handle:
            info = json.load(handle)
        if info["child"]:
            self.track(info["child"])
        return info

    def started(self):
        """Pids of the workers that have written their ready file."""
        names = [n for n in os.listdir(self.state) if n.startswith("ready-") and not n.endswith(".tmp")]
        return sorted(int(n[len("ready-"):]) for n in names)

    def worker_env(self, group, mode="graceful", child=None, **kwargs):
        extra = {"ELMS_TEST_DIR": self.state, "ELMS_TEST_MODE": mode}
        if child:
            extra["ELMS_TEST_CHILD"] = child
        return supervisor_env(group, **dict(kwargs, **extra))

    def orphan(self, env):
        """A worker whose parent has exited. Returns (pid, launcher pid, ready info)."""
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, WORKER, self.log], env=env,
                                  stdout=subprocess.PIPE, check=True, timeout=30)
        pid = int(launcher.stdout.decode().strip())
        self.track(pid)
        return pid, self.ready(pid)

    def with_parent(self, env, new_group=True):
        """A worker whose parent (this test process) stays alive."""
        proc = self.popen([sys.executable, "-c", WORKER], env, start_new_session=new_group)
        return proc, self.ready(proc.pid)

    def cleanup(self):
        for pid, ticks in reversed(self.tracked):
            if not alive(pid, ticks):
                continue
            stat = proc_stat(pid)
            try:
                if stat and stat[2] == pid:
                    os.killpg(pid, signal.SIGKILL)  # only a group this test created
                else:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for proc in self.popens:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def procs():
    state = tempfile.mkdtemp(prefix="elms-orphans-")
    processes = Processes(state)
    try:
        yield processes
    finally:
        processes.cleanup()
        shutil.rmtree(state, ignore_errors=True)


# --- finding ------------------------------------------------------------------------

def group(name):
    """A group name no other test, and no parallel run, uses."""
    return "%s-%s-%s" % (PREFIX, name, uuid.uuid4().hex[:6])


# Each sets up one kind of process for `name` in a fresh test (ansible-test runs every
# test in a fork of its own, so nothing is shared between tests) and returns its pid.
def orphan(procs, name):
    return procs.orphan(procs.worker_env(name))[0]


def child_of_orphan(procs, name):
    return procs.orphan(procs.worker_env(name, child="ignore"))[1]["child"]


def orphan_of_other_group(procs, name):
    return procs.orphan(procs.worker_env(name + "-other"))[0]


def orphan_without_supervisor_env(procs, name):
    return procs.orphan(procs.worker_env(None))[0]


def orphan_without_supervisor_enabled(procs, name):
    env = procs.worker_env(name)
    del env["SUPERVISOR_ENABLED"]
    return procs.orphan(env)[0]


def orphan_of_server_a(procs, name):
    return procs.orphan(procs.worker_env(name, server_url=SERVER_A))[0]


def leader_with_live_parent(procs, name):
    return procs.with_parent(procs.worker_env(name))[0].pid


def non_leader_with_live_parent(procs, name):
    return procs.with_parent(procs.worker_env(name), new_group=False)[0].pid


def program_of_running_supervisord(procs, name):
    """A parent whose command line is a supervisord's starts the program as supervisord does."""
    script = os.path.join(procs.state, "supervisord")
    with open(script, "w") as handle:
        handle.write(FAKE_SUPERVISORD)
    env = dict(procs.worker_env(None), ELMS_TEST_WORKER=WORKER, ELMS_TEST_GROUP=name)
    fake = procs.popen([sys.executable, script], env, start_new_session=True)
    wait_for(procs.started, what="the program of the fake supervisord")
    pid = procs.started()[0]
    procs.track(pid)
    assert proc_stat(pid)[1:3] == (fake.pid, pid)
    return pid


def unshare_refused():
    """Why a new mount namespace cannot be made here, or None: unshare needs root and a kernel or container that
    allows it (an unprivileged container refuses it with 'Operation not permitted')."""
    if os.geteuid() != 0:
        return "unshare --mount needs root"
    if not shutil.which("unshare"):
        return "unshare is not installed"
    tried = subprocess.run(["unshare", "--mount", "true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, check=False)
    if tried.returncode != 0:
        return "unshare --mount is not permitted here: %s" % tried.stdout.strip()
    return None


def leader_in_other_mount_namespace(procs, name):
    refused = unshare_refused()
    if refused:
        pytest.skip(refused)
    proc = procs.popen(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", WORKER],
                       procs.worker_env(name), start_new_session=True)
    procs.ready(proc.pid)
    assert os.readlink("/proc/%d/ns/mnt" % proc.pid) != os.readlink("/proc/self/ns/mnt")
    return proc.pid


def zombie(procs, name):
    proc = procs.popen([sys.executable, "-c", "pass"], procs.worker_env(name), start_new_session=True)
    wait_for(lambda: (proc_stat(proc.pid) or "Z")[0] == "Z", what="the zombie")
    return proc.pid


SERVER_A = "unix:///tmp/%s-a/supervisor.sock" % PREFIX
SERVER_B = "unix:///tmp/%s-b/supervisor.sock" % PREFIX


@pytest.mark.parametrize("make, server_url, expected", [
    pytest.param(orphan, None, True, id="orphan-found"),
    pytest.param(child_of_orphan, None, False, id="child-of-orphan-not-group-leader"),
    pytest.param(orphan_of_other_group, None, False, id="other-group"),
    pytest.param(orphan_without_supervisor_env, None, False, id="no-supervisor-env"),
    pytest.param(orphan_without_supervisor_enabled, None, False, id="group-name-without-supervisor-enabled"),
    pytest.param(leader_with_live_parent, None, True, id="live-parent-not-supervisord"),
    pytest.param(non_leader_with_live_parent, None, False, id="live-parent-not-group-leader"),
    pytest.param(program_of_running_supervisord, None, False, id="parent-is-supervisord"),
    pytest.param(leader_in_other_mount_namespace, None, False, id="other-mount-namespace"),
    pytest.param(zombie, None, False, id="zombie"),
    pytest.param(orphan_of_server_a, None, True, id="any-server"),
    pytest.param(orphan_of_server_a, SERVER_A, True, id="same-server"),
    pytest.param(orphan_of_server_a, SERVER_A.replace("/supervisor.sock", "/./supervisor.sock"), True,
                 id="same-server-unnormalised"),
    pytest.param(orphan_of_server_a, SERVER_B, False, id="other-server"),
    pytest.param(orphan, SERVER_A, False, id="server-asked-process-has-none"),
])
def test_find_orphans(procs, make, server_url, expected):
    name = group("find")
    pid = make(procs, name)
    found = orphans.find_orphans([name], server_url=server_url)
    assert (pid in [o["pid"] for o in found]) is expected


def test_orphan_lost_its_parent(procs):
    """The orphans made here are real ones: reparented, their own group leader."""
    pid, info = procs.orphan(procs.worker_env(group("real"), child="ignore"))
    _state, ppid, pgid, _ticks = proc_stat(pid)
    assert (pgid, ppid != os.getpid()) == (pid, True)
    _state, child_ppid, child_pgid, _ticks = proc_stat(info["child"])
    assert (child_ppid, child_pgid) == (pid, pid)


def test_find_orphans_describes_the_process(procs):
    name = group("describe")
    pid = orphan(procs, name)
    _state, ppid, _pgid, ticks = proc_stat(pid)
    assert orphans.find_orphans([name]) == [{
        "pid": pid, "ppid": ppid, "pgid": pid, "uid": os.getuid(),
        "group": name, "process": name + "_00", "cmdline": [sys.executable, "-c", WORKER],
        "started": ticks / float(CLOCK_TICKS),
    }]


def test_find_orphans_reads_environ_through_the_given_reader(procs):
    name = group("reader")
    pid = orphan(procs, name)
    child = child_of_orphan(procs, name)
    asked = []

    def reader(pid, proc_root):
        asked.append(pid)
        return None
    assert orphans.find_orphans([name], read_environ=reader) == []
    assert pid in asked
    assert child not in asked  # not a group leader: its environ is never read


def test_find_orphans_returns_every_orphan_of_the_groups_asked_for(procs):
    first, second, other = group("first"), group("second"), group("other")
    pids = sorted([orphan(procs, first), orphan(procs, second), orphan(procs, first)])
    orphan(procs, other)
    assert [o["pid"] for o in orphans.find_orphans([first, second])] == pids


# --- reading another user's environ -------------------------------------------------

READER = r"""
import json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=json.loads(sys.argv[2]))._install()
pid = int(sys.argv[1])
try:
    open("/proc/%d/environ" % pid, "rb").read()
    direct = "read"
except PermissionError:
    direct = "denied"
from ansible_collections.elms.queue_workers.plugins.module_utils import orphans
env = orphans.read_environ(pid)
print(direct, (env or {}).get("ELMS_TEST_MARK"))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_read_environ_as_the_process_user_when_denied(procs):
    """Root that may not read another uid's environ directly reads it as that uid."""
    target = procs.popen(["sleep", "60"], dict(supervisor_env(group("uid")), ELMS_TEST_MARK=PREFIX),
                         user=65534, group=65534, extra_groups=[])
    wait_for(lambda: cmdline(target.pid).startswith(b"sleep"), what="the target to exec")
    # Root without the capabilities that bypass the check (as in a container
    # without CAP_SYS_PTRACE) gets EACCES on the file.
    reader = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-sys_ptrace", sys.executable, "-c", READER,
         str(target.pid), json.dumps(AnsibleCollectionConfig.collection_paths)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)
    assert reader.returncode == 0, reader.stderr.decode()
    assert reader.stdout.decode().split() == ["denied", PREFIX]


def exited_pid():
    """The pid of a process that has exited and been reaped."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              stdout=subprocess.PIPE, check=True).stdout)


@pytest.mark.parametrize("pid", [
    pytest.param(lambda: 2 ** 22 + 1, id="pid-never-used"),
    pytest.param(exited_pid, id="pid-exited-and-reaped"),
])
def test_read_environ_of_a_vanished_process(pid):
    assert orphans.read_environ(pid()) is None


# --- stopping -----------------------------------------------------------------------

def done_file(procs, pid):
    path = os.path.join(procs.state, "done-%d" % pid)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def test_stop_graceful_orphan_finishes_its_job(procs):
    """SIGTERM goes to the worker only: its ffmpeg (SIGTERM would end it) keeps running."""
    name = group("graceful")
    pid, info = procs.orphan(procs.worker_env(name, child="default"))
    found = orphans.find_orphans([name])
    assert [o["pid"] for o in found] == [pid]
    result = orphans.stop_orphans(found, {name: 10})
    assert [(r["pid"], r["group"], r["process"], r["signal"], r["error"]) for r in result] == [
        (pid, name, name + "_00", "TERM", None)]
    assert 0.9 <= result[0]["seconds"] < 5
    assert done_file(procs, pid) == "job finished"
    assert not alive(pid)
    assert alive(info["child"])


def test_stop_signals_all_orphans_at_once(procs):
    name = group("many")
    pids = [procs.orphan(procs.worker_env(name, process="%s_%02d" % (name, n)))[0] for n in range(3)]
    found = orphans.find_orphans([name])
    started = time.monotonic()
    result = orphans.stop_orphans(found, {name: 10})
    elapsed = time.monotonic() - started
    assert sorted(r["pid"] for r in result if r["signal"] == "TERM") == sorted(pids)
    assert elapsed < 2.5, "three 1 s jobs took %.1f s: orphans were stopped one after another" % elapsed
    assert [done_file(procs, pid) for pid in pids] == ["job finished"] * 3


def test_stop_kills_the_group_of_an_orphan_that_ignores_sigterm(procs):
    name = group("stubborn")
    pid, info = procs.orphan(procs.worker_env(name, mode="ignore", child="ignore"))
    child = info["child"]
    found = orphans.find_orphans([name])
    result = orphans.stop_orphans(found, {name: 1})
    assert [(r["pid"], r["signal"], r["error"]) for r in result] == [(pid, "KILL", None)]
    assert 1.0 <= result[0]["seconds"] < 3
    assert not alive(pid)
    wait_for(lambda: not alive(child), timeout=5, what="the worker's child to die with its group")
    assert done_file(procs, pid) is None


def test_stop_waits_each_groups_stopwaitsecs(procs):
    quick, slow = group("quick"), group("slow")
    quick_pid = procs.orphan(procs.worker_env(quick, mode="ignore"))[0]
    slow_pid = procs.orphan(procs.worker_env(slow, mode="ignore"))[0]
    result = dict((r["pid"], r) for r in orphans.stop_orphans(orphans.find_orphans([quick, slow]),
                                                              {quick: 1, slow: 2}))
    assert result[quick_pid]["signal"] == result[slow_pid]["signal"] == "KILL"
    assert 1.0 <= result[quick_pid]["seconds"] < 1.8
    assert 2.0 <= result[slow_pid]["seconds"] < 2.8


def test_stop_skips_an_orphan_that_vanished(procs):
    name = group("vanished")
    pid = procs.orphan(procs.worker_env(name))[0]
    found = orphans.find_orphans([name])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the orphan to die")
    result = orphans.stop_orphans(found, {name: 10})
    assert result == [{"pid": pid, "group": name, "process": name + "_00", "signal": None, "seconds": 0.0,
                       "error": None}]


def test_stop_leaves_a_reused_pid_alone(procs):
    """Same pid, another start time: another process now, never signalled."""
    name = group("reused")
    pid = procs.orphan(procs.worker_env(name))[0]
    found = orphans.find_orphans([name])
    found[0]["started"] -= 5.0
    result = orphans.stop_orphans(found, {name: 10})
    assert [(r["pid"], r["signal"]) for r in result] == [(pid, None)]
    time.sleep(0.3)
    assert alive(pid)
    assert done_file(procs, pid) is None


def test_stop_counts_a_zombie_as_gone(procs):
    """An orphan whose new parent never reaps it stays a zombie after exiting."""
    name = group("zombie")
    proc, _info = procs.with_parent(procs.worker_env(name))  # this test process does not reap it
    found = orphans.find_orphans([name])
    assert [o["pid"] for o in found] == [proc.pid]
    result = orphans.stop_orphans(found, {name: 5})
    assert (proc_stat(proc.pid) or ("gone",))[0] == "Z"
    assert [(r["signal"], r["error"]) for r in result] == [("TERM", None)]
    assert result[0]["seconds"] < 3
    assert done_file(procs, proc.pid) == "job finished"


def test_stop_uses_the_injected_clock_and_sleep(procs):
    """stopwaitsecs is measured with the given clock: 30 fake seconds pass in a few real polls."""
    name = group("fakeclock")
    pid = procs.orphan(procs.worker_env(name, mode="ignore"))[0]
    now = [0.0]

    def sleep(seconds):
        now[0] += 10.0
        time.sleep(0.01)
    started = time.monotonic()
    result = orphans.stop_orphans(orphans.find_orphans([name]), {name: 30}, sleep=sleep, clock=lambda: now[0])
    assert [(r["pid"], r["signal"]) for r in result] == [(pid, "KILL")]
    assert 30 <= result[0]["seconds"] <= 50
    assert time.monotonic() - started < 3


# --- a real supervisord killed with SIGKILL -----------------------------------------

# Its program (tests/unit/conftest.py's supervisord): two workers that write to the test's state directory.
PROGRAM = """
[program:{name}]
command={python} %(here)s/worker.py
process_name=%(program_name)s_%(process_num)02d
numprocs=2
startsecs=0
environment=ELMS_TEST_DIR="{state}"
"""


def test_programs_of_a_killed_supervisord(procs, real_supervisord):
    name = group("sv")
    server = real_supervisord(PROGRAM.format(name=name, python=sys.executable, state=procs.state),
                              files={"worker.py": WORKER})
    supervisord = server.process
    procs.track(supervisord.pid)

    def programs():
        """pid -> SUPERVISOR_PROCESS_NAME of the programs that have started."""
        found = {}
        for entry in os.listdir(procs.state):
            if entry.startswith("ready-") and not entry.endswith(".tmp"):
                with open(os.path.join(procs.state, entry)) as handle:
                    info = json.load(handle)
                found[info["pid"]] = info["process"]
        return found
    wait_for(lambda: len(programs()) == 2, what="supervisord's two programs")
    started = programs()
    pids = sorted(started)
    for pid in pids:
        procs.track(pid)
        assert proc_stat(pid)[1:3] == (supervisord.pid, pid), "supervisord's child, its own group leader"
    assert orphans.find_orphans([name]) == [], "programs of a running supervisord are no orphans"

    supervisord.kill()
    supervisord.wait(timeout=10)
    assert all(alive(pid) for pid in pids), "programs outlive a supervisord killed with SIGKILL"

    url = "unix://%s" % server.socket
    assert orphans.find_orphans([name], server_url="unix:///run/elms-elsewhere.sock") == []
    found = orphans.find_orphans([name], server_url=url)
    assert dict((o["pid"], o["process"]) for o in found) == started
    assert sorted(started.values()) == [name + "_00", name + "_01"]

    result = orphans.stop_orphans(found, {name: 10})
    assert sorted((r["pid"], r["signal"]) for r in result) == [(pids[0], "TERM"), (pids[1], "TERM")]
    assert [done_file(procs, pid) for pid in pids] == ["job finished"] * 2
