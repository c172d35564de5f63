"""The collection's playbooks run the way AWX and Automation Platform run them: by ansible-runner.

A private data directory as AWX writes one (inventory/hosts, env/extravars, env/envvars,
project/ with a playbook that imports the collection's), `ansible-runner run` with no
terminal (stdin closed), against one container of the scenario with the host variables the
scenario's converge used (read from molecule's inventory, never copied). The job must
succeed, ask for nothing, hand its results back as artifacts (set_stats: the fleet summary,
the diagnosis), and write nothing outside the runner's directories: neither in the
directory it is started from, nor in the collection's checkout.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
# A hang (a job waiting for input that never comes) must end the test, not the session.
HANG = 1800


def tool(name):
    """The command of the toolchain running these tests (the verifier's venv)."""
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else name


def checkout_state():
    """What `git status` says about the collection's checkout, the test tree's .build/ aside."""
    done = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=all"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True)
    return sorted(line for line in done.stdout.splitlines() if not line[3:].startswith(".build/"))


@pytest.fixture(scope="module")
def target():
    """(host, its variables): one host of the scenario, its variables as the converge saw them."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    listed = json.loads(subprocess.run([tool("ansible-inventory"), "-i", inventory, "--list"], stdout=subprocess.PIPE,
                                       text=True, check=True).stdout)
    hosts = sorted(listed["_meta"]["hostvars"]) or sorted(listed.get("all", {}).get("hosts", []))
    assert hosts, "no host in %s" % inventory
    host = os.environ.get("ELMS_RUNNER_HOST", hosts[0])
    # --host merges the host's own, its groups' and the group_vars/ host_vars/ beside the inventory.
    variables = json.loads(subprocess.run([tool("ansible-inventory"), "-i", inventory, "--host", host],
                                          stdout=subprocess.PIPE, text=True, check=True).stdout)
    # molecule's own helpers point at molecule's files and environment, which a job does not have.
    return host, {name: value for name, value in variables.items() if not name.startswith("molecule_")}


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """A collections path holding exactly the collection under test (this checkout)."""
    path = tmp_path_factory.mktemp("collections")
    os.makedirs(str(path / "ansible_collections" / "elms"))
    os.symlink(ROOT, str(path / "ansible_collections" / "elms" / "queue_workers"))
    return str(path)


class Job:
    """One `ansible-runner run` of a private data directory, and what it left."""

    def __init__(self, private, ident, done):
        self.private = private
        self.ident = ident
        self.rc = done.returncode
        self.output = done.stdout
        self.artifacts = os.path.join(private, "artifacts", ident)

    def read(self, name):
        with open(os.path.join(self.artifacts, name), encoding="utf-8") as handle:
            return handle.read().strip()

    def events(self):
        found = []
        for path in sorted(glob.glob(os.path.join(self.artifacts, "job_events", "*.json"))):
            with open(path, encoding="utf-8") as handle:
                found.append(json.load(handle))
        return found

    def stats(self):
        """The playbook_on_stats event's data (artifact_data is what set_stats returned)."""
        stats = [event for event in self.events() if event.get("event") == "playbook_on_stats"]
        assert len(stats) == 1, self.output
        return stats[0]["event_data"]


@pytest.fixture(scope="module")
def runner(target, collections, tmp_path_factory):
    """Run one of the collection's playbooks by ansible-runner, AWX's way; returns (Job, cwd it ran from, checkout before)."""
    host, variables = target

    def run(playbook, **extravars):
        private = str(tmp_path_factory.mktemp("private_data_dir"))
        for sub in ("inventory", "env", "project"):
            os.makedirs(os.path.join(private, sub))
        write(os.path.join(private, "inventory", "hosts"), {"all": {"hosts": {host: variables}}})
        write(os.path.join(private, "env", "extravars"), dict({"elms_hosts": host}, **extravars))
        write(os.path.join(private, "env", "envvars"), {"ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_FORCE_COLOR": "0"})
        write(os.path.join(private, "project", playbook + ".yml"),
              [{"name": "The collection's %s playbook" % playbook,
                "ansible.builtin.import_playbook": "elms.queue_workers." + playbook}])
        cwd = str(tmp_path_factory.mktemp("cwd"))
        before = checkout_state()
        done = subprocess.run([tool("ansible-runner"), "run", private, "-p", playbook + ".yml", "--ident", playbook],
                              cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=HANG, check=False)
        return Job(private, playbook, done), cwd, before
    return run


def write(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)


@pytest.fixture(scope="module")
def site(runner):
    return runner("site")


@pytest.fixture(scope="module")
def diagnose(runner):
    return runner("diagnose")


def asked_for_input(job):
    """Events of a prompt: vars_prompt, or a pause task (which waits on a terminal)."""
    return [event for event in job.events()
            if event.get("event") == "playbook_on_vars_prompt"
            or event.get("event_data", {}).get("task_action") in ("pause", "ansible.builtin.pause", "ansible.legacy.pause")]


@pytest.mark.parametrize("name", ["site", "diagnose"])
def test_the_job_succeeds(request, name):
    job, _, _ = request.getfixturevalue(name)
    assert job.rc == 0, job.output
    assert job.read("status") == "successful"
    assert job.read("rc") == "0"


@pytest.mark.parametrize("name", ["site", "diagnose"])
def test_the_job_asks_for_no_input(request, name):
    job, _, _ = request.getfixturevalue(name)
    assert job.events(), job.output
    assert asked_for_input(job) == []


@pytest.mark.parametrize("name", ["site", "diagnose"])
def test_the_job_writes_nothing_where_it_is_started(request, name):
    _, cwd, _ = request.getfixturevalue(name)
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("name", ["site", "diagnose"])
def test_the_job_leaves_the_collection_checkout_alone(request, name):
    _, _, before = request.getfixturevalue(name)
    assert checkout_state() == before


@pytest.mark.parametrize("name", ["site", "diagnose"])
def test_the_project_directory_holds_only_the_playbook(request, name):
    # ansible-runner starts ansible-playbook in project/: a relative path written there
    # would be lost with the job, not kept with its artifacts.
    job, _, _ = request.getfixturevalue(name)
    assert os.listdir(os.path.join(job.private, "project")) == [name + ".yml"]


def test_the_fleet_summary_is_in_the_jobs_artifacts(site, target):
    job, _, _ = site
    host, _ = target
    fleet = job.stats()["artifact_data"].get("queue_workers_fleet")
    assert fleet, "no queue_workers_fleet in the playbook_on_stats event's artifact_data: %r" % job.stats()
    assert fleet["playbook"] == "site"
    assert fleet["hosts"] == 1
    assert host in fleet["changed"] + fleet["unchanged"], fleet
    assert fleet["failed"] == {} and fleet["not_reached"] == {}, fleet
    assert fleet["stopped_at_batch"] is None, fleet


def test_the_diagnosis_is_in_the_jobs_artifacts(diagnose, target):
    job, _, _ = diagnose
    host, _ = target
    diagnosis = job.stats()["artifact_data"].get("queue_workers_diagnosis", {}).get(host)
    assert diagnosis, "no queue_workers_diagnosis for %s in artifact_data: %r" % (host, job.stats())
    assert int(diagnosis["problems"]) == 0, diagnosis["report"]
    assert "Result: healthy: nothing to do" in diagnosis["report"]
    # The report file is in the job's artifact directory, which AWX keeps with the job.
    assert diagnosis["file"] == os.path.join(os.path.abspath(job.artifacts), "diagnose-reports", host + ".txt")
    assert job.read(os.path.join("diagnose-reports", host + ".txt")) == diagnosis["report"].strip()
