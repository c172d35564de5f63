"""Helpers shared by the scenario checks (tests/) and the layout checks (layout_tests/).

A scenario states its platform's layout through the verifier's environment
(ELMS_EXPECT_*); the defaults are Debian's.
"""

import json
import os
import shlex
import subprocess
import time

import pytest

EXPECT = {
    "include_dir": os.environ.get("ELMS_EXPECT_INCLUDE_DIR", "/etc/supervisor/conf.d"),
    "extension": os.environ.get("ELMS_EXPECT_EXTENSION", ".conf"),
    "config": os.environ.get("ELMS_EXPECT_CONFIG", "/etc/supervisor/supervisord.conf"),
    "supervisorctl": os.environ.get("ELMS_EXPECT_SUPERVISORCTL", "/usr/bin/supervisorctl"),
}
APP = "/var/www/html"
APP_USER = "www-data"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def playbook(name, programs=None, *extra, cwd=None, **env):
    """Run one of the collection's playbooks against this scenario's host; returns (rc, output)."""
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            name if name.startswith("elms.") else os.path.join(ROOT, "playbooks", name)]
    if programs is not None:
        argv += ["-e", json.dumps({"queue_workers_programs": programs})]
    done = subprocess.run(argv + list(extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", **env), cwd=cwd, check=False)
    return done.returncode, done.stdout


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
