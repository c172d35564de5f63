"""The newest ansible-core people run (2.21 on Python 3.13, a Debian 13 controller), driving the collection.

The controller is a container of its own (elms-test/debian13-controller), with this checkout's files copied in as
ansible_collections/elms/queue_workers and the host's docker CLI and socket, through which its docker connection
reaches the scenario's host. The tests build on each other in file order: sanity and units first, then a deploy of the
host from nothing, a rerun that changes nothing, the diagnosis and the restart.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import EXPECT, ROOT

IMAGE = "elms-test/debian13-controller:latest"
CONTROLLER = "elms-mol-newest-core-controller"
COLLECTIONS = "/srv/controller"
COPY = COLLECTIONS + "/ansible_collections/elms/queue_workers"
CORE = "2.21"
WORKERS = ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01",
           "elms-video-worker:elms-video-worker_00"]


def docker(*argv, **kwargs):
    return subprocess.run(["docker"] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def controller(host):
    docker("rm", "-f", CONTROLLER)
    started = docker("run", "-d", "--name", CONTROLLER, "--network", "host",
                     "-v", "/var/run/docker.sock:/var/run/docker.sock",
                     "-v", "%s:/usr/local/bin/docker:ro" % os.path.realpath(shutil.which("docker")),
                     IMAGE, "sleep", "infinity")
    assert started.returncode == 0, started.stdout
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               stdout=subprocess.PIPE, check=True).stdout
        present = b"\0".join(p for p in files.split(b"\0") if p and os.path.lexists(os.path.join(ROOT, p.decode())))
        packed = subprocess.run(["tar", "--null", "-T", "-", "-cf", "-"], cwd=ROOT, input=present,
                                stdout=subprocess.PIPE, check=True).stdout
        assert docker("exec", CONTROLLER, "mkdir", "-p", COPY).returncode == 0
        unpacked = subprocess.run(["docker", "exec", "-i", CONTROLLER, "tar", "-xf", "-", "-C", COPY], input=packed)
        assert unpacked.returncode == 0
        # ansible-test lists the collection's files with git; tests/harness/ansible-test.sh runs it from the
        # checkout's link under .build, as make sanity does.
        assert docker("exec", CONTROLLER, "git", "-C", COPY, "init", "-q").returncode == 0
        link = COPY + "/.build/collections/ansible_collections/elms"
        assert docker("exec", CONTROLLER, "sh", "-c", "mkdir -p %s && ln -sfn %s %s/queue_workers"
                      % (link, COPY, link)).returncode == 0
        target = host.backend.get_hostname()
        inventory = "%s ansible_connection=community.docker.docker ansible_python_interpreter=/usr/bin/python3 " \
                    "ansible_become=false\n" % target
        written = docker("exec", CONTROLLER, "sh", "-c", "printf '%%s' '%s' > %s/inventory" % (inventory, COLLECTIONS))
        assert written.returncode == 0, written.stdout
        yield
    finally:
        docker("rm", "-f", CONTROLLER)


def inside(*argv, cwd=COPY):
    """Run a command in the controller, as a user there would (the collection found in COLLECTIONS)."""
    env = ["-e", "ANSIBLE_COLLECTIONS_PATH=%s" % COLLECTIONS, "-e", "ANSIBLE_PIPELINING=1", "-e", "ANSIBLE_NOCOLOR=1",
           "-e", "ANSIBLE_FORCE_COLOR=0", "-e", "PY_COLORS=0"]
    done = docker("exec", "-w", cwd, *env, CONTROLLER, *argv)
    return done.returncode, done.stdout


def playbook(name, *extra):
    return inside("ansible-playbook", "-i", COLLECTIONS + "/inventory", "%s/playbooks/%s" % (COPY, name), *extra,
                  cwd=COLLECTIONS)


def status(host):
    found = {}
    for line in host.run("%s -c %s status" % (EXPECT["supervisorctl"], EXPECT["config"])).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            found[fields[0]] = (fields[1], fields[3].rstrip(",") if len(fields) > 3 and fields[2] == "pid" else None)
    return found


def our_warnings(out):
    """Warnings that name a file of this collection (a Python deprecation, an Ansible one)."""
    return [line for line in out.splitlines() if "warning" in line.lower() and "queue_workers" in line]


def test_the_controller_runs_the_newest_core(controller):
    rc, out = inside("ansible", "--version")
    assert rc == 0 and re.search(r"core %s\.\d+" % re.escape(CORE), out), out
    assert "python version = 3.13" in out, out


def test_sanity_and_units_pass_on_the_newest_core(controller):
    """make sanity's own script (empty ignore files, the same excludes), on the newest core and Python 3.13."""
    rc, out = inside("env", "ANSIBLE_TEST_PYTHON=3.13", "bash", "tests/harness/ansible-test.sh", "--color", "no")
    assert "ansible-test sanity: exit 0" in out, out[-6000:]
    assert "ansible-test units: exit 0" in out and re.search(r"\d+ passed", out), out[-6000:]
    assert rc == 0, out[-3000:]
    assert our_warnings(out) == [], our_warnings(out)


def test_a_fresh_host_is_deployed_by_the_newest_core(controller, host):
    rc, out = playbook("site.yml")
    assert rc == 0, out[-5000:]
    assert our_warnings(out) == [], our_warnings(out)
    assert host.file("%s/elms-default-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])).exists
    found = status(host)
    assert all(found.get(p, ("MISSING",))[0] == "RUNNING" for p in WORKERS), found


def test_the_rerun_changes_nothing(controller, host):
    before = status(host)
    rc, out = playbook("site.yml")
    assert rc == 0, out[-5000:]
    assert re.search(r"changed=0\s", out.split("PLAY RECAP")[-1]), out[-3000:]
    assert status(host) == before


def test_the_diagnosis_is_healthy(controller):
    rc, out = playbook("diagnose.yml", "-e", "queue_workers_diagnose_dir=" + COLLECTIONS + "/reports")
    assert rc == 0, out[-5000:]
    assert "No problem found" in out


def test_the_restart_recycles_every_worker(controller, host):
    before = status(host)
    rc, out = playbook("restart.yml")
    assert rc == 0, out[-5000:]
    assert "All 3 worker processes run the new code" in out, out[-3000:]
    after = status(host)
    assert all(after[p][0] == "RUNNING" and after[p][1] != before[p][1] for p in WORKERS), (before, after)
