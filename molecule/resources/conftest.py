"""Helpers shared by the scenario checks (tests/) and the layout checks (layout_tests/).

A host states its platform's layout through its inventory variable elms_test_expect
(include_dir, extension, config, supervisorctl; each defaults to Debian's): take it from
the expect fixture. EXPECT is Debian's layout, for the single-host scenarios on Debian's
package.

Session rules: a test file or directory that the scenario's verifier lists in
additional_files_or_dirs must exist and yield tests (molecule drops a path that matches
nothing without a word); a module marked layout(NAME) runs on the hosts whose
elms_test_layout is NAME and is deselected on the others, and a host whose layout has such
a module in layout_tests/ that the scenario does not run fails the session; tests marked
before_changes run before all others (some layout tests change the host on purpose: kill
supervisord, run more deploys).
"""

import glob
import json
import os
import re
import shlex
import subprocess
import time

import pytest
import yaml

# Debian's layout; a host's elms_test_expect overrides any of these keys.
EXPECT = {
    "include_dir": "/etc/supervisor/conf.d",
    "extension": ".conf",
    "config": "/etc/supervisor/supervisord.conf",
    "supervisorctl": "/usr/bin/supervisorctl",
}
LAYOUT_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layout_tests")
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


# node_exporter as the alerts scenario runs it (prepare.yml): its textfile collector reads the listener's metrics.
METRICS = "http://127.0.0.1:9911/metrics"


def scrape(host):
    """{(name, frozenset(labels)): value} of the elms_ samples node_exporter serves (its HTTP endpoint, not the file)."""
    out = host.run("python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], "
                   "timeout=10).read().decode())' %s" % METRICS)
    assert out.rc == 0, out.stderr
    found = {}
    for line in out.stdout.splitlines():
        if line.startswith("elms_") or line.startswith("node_textfile_scrape_error"):
            name, _sep, rest = line.partition("{")
            labels, value = (rest.rsplit("} ", 1) if rest else ("", line.split()[1]))
            name = name.split()[0]
            pairs = frozenset(tuple(p.split("=", 1)) for p in labels.replace('"', "").split(",") if p)
            found[(name, pairs)] = float(value)
    return found


def metric(found, name, **labels):
    return found.get((name, frozenset(labels.items())))


_HOST_VARS = {}


def host_vars(testinfra_host):
    """A testinfra host's inventory variables (read once per host, from the local inventory)."""
    name = testinfra_host.backend.get_hostname()
    if name not in _HOST_VARS:
        found = {}
        if testinfra_host.backend.get_connection_type() == "ansible":
            found = testinfra_host.ansible.get_variables()
        _HOST_VARS[name] = found
    return _HOST_VARS[name]


def host_expect(testinfra_host):
    """EXPECT with the host's elms_test_expect applied; an unknown key is an error naming it."""
    overrides = host_vars(testinfra_host).get("elms_test_expect") or {}
    if not isinstance(overrides, dict):
        raise pytest.UsageError("elms_test_expect of %s must be a mapping, not %r"
                                % (testinfra_host.backend.get_hostname(), overrides))
    unknown = sorted(set(overrides) - set(EXPECT))
    if unknown:
        raise pytest.UsageError("elms_test_expect of %s: unknown key(s) %s (known: %s)"
                                % (testinfra_host.backend.get_hostname(), ", ".join(unknown), ", ".join(sorted(EXPECT))))
    return dict(EXPECT, **overrides)


@pytest.fixture(scope="module")
def expect(host):
    """Where this host's programs must land: include_dir, extension, config, supervisorctl."""
    return host_expect(host)


@pytest.fixture(scope="module")
def supervisor_status(host, expect):
    """Call it for {process: (state, pid)} from supervisorctl status with the platform's config."""
    def status():
        result = host.run("%s -c %s status" % (expect["supervisorctl"], expect["config"]))
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
def supervisord_argv(host, expect):
    """The command line of the supervisord that supervisorctl reaches with the config."""
    pid = host.run("%s -c %s pid" % (expect["supervisorctl"], expect["config"])).stdout.strip()
    return host.file("/proc/%s/cmdline" % pid).content_string.rstrip("\0").split("\0")


@pytest.fixture(scope="module")
def baseline(host):
    """What prepare recorded before the first deploy (see baseline/someone_else.yml).

    Where the host's elms_test_supervisord_before says whether a supervisord ran before the
    first deploy, the record must agree: the checks against the baseline skip only where
    that is declared, never because prepare failed to find a supervisord that runs.
    """
    recorded = host.file(BASELINE)
    assert recorded.exists, "prepare did not record %s: was the scenario prepared with resources/prepare.yml?" % BASELINE
    found = json.loads(recorded.content_string)
    declared = host_vars(host).get("elms_test_supervisord_before")
    if declared is not None:
        assert found["supervisord_ran"] is bool(declared), (
            "elms_test_supervisord_before of %s is %s, but prepare recorded supervisord_ran: %s (%s)"
            % (host.backend.get_hostname(), declared, found["supervisord_ran"], found.get("reason", "")))
    return found


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
    config.addinivalue_line(
        "markers", "layout(name): the module's checks, run on the hosts whose elms_test_layout is name")


def listed_test_paths():
    """[(entry, glob)] of the scenario's verifier additional_files_or_dirs, resolved as molecule does."""
    scenario = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    directory = os.environ.get("MOLECULE_VERIFIER_TEST_DIRECTORY")
    if not scenario or not directory:
        return []
    with open(os.path.join(scenario, "molecule.yml"), encoding="utf-8") as scenario_file:
        verifier = (yaml.safe_load(scenario_file) or {}).get("verifier") or {}
    return [(entry, os.path.join(glob.escape(directory), entry)) for entry in verifier.get("additional_files_or_dirs") or []]


# How a layout_tests/ module names its layout (one line, read without importing the module).
LAYOUT_MARK = re.compile(r'^pytestmark = pytest\.mark\.layout\("([^"]+)"\)$', re.MULTILINE)


def layout_modules():
    """{layout: [path]} of the layout_tests/ modules marked layout(NAME)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(LAYOUT_TESTS), "test_*.py"))):
        with open(path, encoding="utf-8") as module:
            for layout in LAYOUT_MARK.findall(module.read()):
                found.setdefault(layout, []).append(os.path.realpath(path))
    return found


def item_host(item):
    """The testinfra host an item runs on, or None."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("_testinfra_host") if callspec else None


def select_layouts(items):
    """(kept, deselected, problems): a layout(NAME) test only where elms_test_layout is NAME."""
    kept, deselected, hosts = [], [], {}
    for item in items:
        marker, testinfra_host = item.get_closest_marker("layout"), item_host(item)
        if testinfra_host is not None:
            hosts[testinfra_host.backend.get_hostname()] = testinfra_host
        if marker is None or testinfra_host is None or host_vars(testinfra_host).get("elms_test_layout") == marker.args[0]:
            kept.append(item)
        else:
            deselected.append(item)
    ran = {(os.path.realpath(str(item.path)), item_host(item).backend.get_hostname()) for item in kept if item_host(item)}
    problems = []
    modules = layout_modules()
    for name, testinfra_host in sorted(hosts.items()):
        layout = host_vars(testinfra_host).get("elms_test_layout")
        for path in modules.get(layout, []):
            if (path, name) not in ran:
                problems.append("%s has elms_test_layout %s, but no test of %s runs there (list it in the verifier's "
                                "additional_files_or_dirs)" % (name, layout, os.path.relpath(path, os.path.dirname(LAYOUT_TESTS))))
    return kept, deselected, problems


def missing_tests(items):
    """What the scenario lists for its verifier but yields no test: each a line of the error."""
    collected = [os.path.realpath(str(item.path)) for item in items]
    problems = []
    for entry, pattern in listed_test_paths():
        paths = [os.path.realpath(path) for path in glob.glob(pattern)]
        if not paths:
            problems.append("%s matches nothing (%s)" % (entry, os.path.normpath(pattern)))
        elif not any(test == path or test.startswith(path + os.sep) for test in collected for path in paths):
            problems.append("no test was collected from %s on any host (a module marked layout(NAME) runs only on "
                            "hosts whose elms_test_layout is NAME)" % entry)
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    # Before the other implementations: before -k / -m deselect anything.
    items[:], deselected, problems = select_layouts(items)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    if problems:
        raise pytest.UsageError("layout checks: " + "; ".join(problems))
    problems = missing_tests(items)
    if problems:
        raise pytest.UsageError("the scenario's verifier additional_files_or_dirs: " + "; ".join(problems))
    result = yield
    # After them: pytest groups the tests by host (module-scoped parameter), which would
    # put one host's before_changes tests after another host's tests of the same module.
    items.sort(key=lambda item: item.get_closest_marker("before_changes") is None)
    return result
