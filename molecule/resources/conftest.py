"""Helpers shared by the scenario checks (tests/) and the layout checks (layout_tests/).

A scenario states its platform's layout through the verifier's environment
(ELMS_EXPECT_*); the defaults are Debian's.

Two session rules: a test file or directory that the scenario's verifier lists in
additional_files_or_dirs must exist and yield tests (molecule drops a path that matches
nothing without a word), and tests marked before_changes run before all others (some
layout tests change the host on purpose: kill supervisord, run more deploys).
"""

import glob
import json
import os
import shlex
import subprocess
import time

import pytest
import yaml

EXPECT = {
    "include_dir": os.environ.get("ELMS_EXPECT_INCLUDE_DIR", "/etc/supervisor/conf.d"),
    "extension": os.environ.get("ELMS_EXPECT_EXTENSION", ".conf"),
    "config": os.environ.get("ELMS_EXPECT_CONFIG", "/etc/supervisor/supervisord.conf"),
    "supervisorctl": os.environ.get("ELMS_EXPECT_SUPERVISORCTL", "/usr/bin/supervisorctl"),
}
APP = "/var/www/html"
APP_USER = "www-data"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Written by prepare.yml (baseline/someone_else.yml) before the first deploy.
BASELINE = "/root/elms-test-baseline.json"
SNAPSHOT = "/root/elms-test-snapshot.py"


def playbook(name, programs=None, *extra, cwd=None, **env):
    """Run one of the collection's playbooks against this scenario's host; returns (rc, output)."""
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            name if name.startswith("elms.") else os.path.join(ROOT, "playbooks", name)]
    if programs is not None:
        argv += ["-e", json.dumps({"queue_workers_programs": programs})]
    done = subprocess.run(argv + list(extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", **env), cwd=cwd, check=False)
    return done.returncode, done.stdout


def wait_until(check, seconds):
    """Poll check() every second until it is true or seconds have passed; its last answer."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(1)
    return check()


@pytest.fixture(scope="module")
def expect():
    return dict(EXPECT)


@pytest.fixture(scope="module")
def supervisor_status(host):
    """Call it for {process: (state, pid)} from supervisorctl status with the platform's config."""
    def status():
        result = host.run("%s -c %s status" % (EXPECT["supervisorctl"], EXPECT["config"]))
        found = {}
        for line in result.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
                found[fields[0]] = (fields[1], pid)
        return found
    return status


@pytest.fixture(scope="module")
def artisan(host):
    """Run php artisan in the fixture app as its user."""
    def run(*args):
        return host.run("cd %s && runuser -u %s -- php artisan %s" % (APP, APP_USER, " ".join(shlex.quote(a) for a in args)))
    return run


@pytest.fixture(scope="module")
def wait_for_file(host):
    def wait(path, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if host.file(path).exists:
                return True
            time.sleep(1)
        return False
    return wait


@pytest.fixture(scope="module")
def supervisord_argv(host):
    """The command line of the supervisord that supervisorctl reaches with the config."""
    pid = host.run("%s -c %s pid" % (EXPECT["supervisorctl"], EXPECT["config"])).stdout.strip()
    return host.file("/proc/%s/cmdline" % pid).content_string.rstrip("\0").split("\0")


@pytest.fixture(scope="module")
def baseline(host):
    """What prepare recorded before the first deploy (see baseline/someone_else.yml)."""
    recorded = host.file(BASELINE)
    assert recorded.exists, "prepare did not record %s: was the scenario prepared with resources/prepare.yml?" % BASELINE
    return json.loads(recorded.content_string)


@pytest.fixture(scope="module")
def after_deploy(host, baseline):
    """The same snapshot as the baseline's, taken now (supervisord, programs, files of others)."""
    assert baseline["supervisord_ran"], baseline["reason"]
    argv = ["python3", SNAPSHOT, baseline["supervisorctl"], baseline["config"]] + baseline["include_globs"]
    taken = host.run(" ".join(shlex.quote(arg) for arg in argv))
    assert taken.rc == 0, taken.stdout + taken.stderr
    return json.loads(taken.stdout)


def assert_file_untouched(baseline, after_deploy, path):
    """A file of someone else's is byte for byte what prepare recorded."""
    assert path in baseline["snapshot"]["files"], "prepare recorded no %s" % path
    assert after_deploy["files"].get(path) == baseline["snapshot"]["files"][path]


def assert_process_kept(baseline, after_deploy, process):
    """A program of someone else's runs under the pid prepare recorded."""
    before = baseline["snapshot"]["programs"][process]
    assert before["pid"] and after_deploy["programs"].get(process) == before


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "before_changes: runs before every other test, on the host the converge and idempotence runs left")


def listed_test_paths():
    """[(entry, glob)] of the scenario's verifier additional_files_or_dirs, resolved as molecule does."""
    scenario = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    directory = os.environ.get("MOLECULE_VERIFIER_TEST_DIRECTORY")
    if not scenario or not directory:
        return []
    with open(os.path.join(scenario, "molecule.yml"), encoding="utf-8") as scenario_file:
        verifier = (yaml.safe_load(scenario_file) or {}).get("verifier") or {}
    return [(entry, os.path.join(glob.escape(directory), entry)) for entry in verifier.get("additional_files_or_dirs") or []]


def missing_tests(items):
    """What the scenario lists for its verifier but yields no test: each a line of the error."""
    collected = [os.path.realpath(str(item.path)) for item in items]
    problems = []
    for entry, pattern in listed_test_paths():
        paths = [os.path.realpath(path) for path in glob.glob(pattern)]
        if not paths:
            problems.append("%s matches nothing (%s)" % (entry, os.path.normpath(pattern)))
        elif not any(test == path or test.startswith(path + os.sep) for test in collected for path in paths):
            problems.append("no test was collected from %s" % entry)
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # tryfirst: before -k / -m deselect anything.
    problems = missing_tests(items)
    if problems:
        raise pytest.UsageError("the scenario's verifier additional_files_or_dirs: " + "; ".join(problems))
    items.sort(key=lambda item: item.get_closest_marker("before_changes") is None)
