"""Make `ansible_collections.elms.queue_workers` importable for plain pytest runs.

`make unit` runs pytest from the checkout's link under
.build/collections/ansible_collections/elms/queue_workers (or ANSIBLE_COLLECTIONS_PATH).
`ansible-test units` installs its own collection finder (with pytest's assertion
rewriting hooked into it) before this file is loaded; that one is kept.
"""

import errno
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder


def _collection_roots():
    here = os.path.abspath(os.path.dirname(__file__))
    parts = here.split(os.sep)
    if "ansible_collections" in parts:
        yield os.sep.join(parts[:len(parts) - parts[::-1].index("ansible_collections") - 1])
    for path in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if path:
            yield path


if AnsibleCollectionConfig.collection_finder is None:
    _AnsibleCollectionFinder(paths=list(_collection_roots()))._install()


# --- one real supervisord for the tests that need one --------------------------------------------------------------
# supervisor is a pinned test dependency (tests/unit/requirements.txt, requirements-dev.txt): without it these tests
# fail, they never skip.

SUPERVISORD_BASE = """\
[unix_http_server]
file={socket}{auth}

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}{auth}
{include}
"""
AUTH = "\nusername=admin\npassword=s3cret"


def _environ(pid):
    try:
        with open("/proc/%s/environ" % pid, "rb") as handle:
            raw = handle.read()
    except (IOError, OSError):
        return {}
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


class RealSupervisord:
    """A real supervisord (the pinned package, run by this Python) in a short temporary directory: a unix socket
    path must stay under 108 bytes. sections: its program and listener sections; files: {name: text} written beside
    its config (scripts, included program files); auth: a username and password on the socket; include: an
    [include] glob. stop() ends it and kills whatever of its programs outlived it (in leaked)."""

    def __init__(self, sections="", files=None, auth=False, include=None, prefix="elms-sv-"):
        if importlib.util.find_spec("supervisor") is None:
            pytest.fail("supervisor is not installed in this interpreter: it is a pinned test dependency "
                        "(requirements-dev.txt, tests/unit/requirements.txt)")
        self.here = tempfile.mkdtemp(prefix=prefix)
        self.socket = os.path.join(self.here, "supervisor.sock")
        self.config = os.path.join(self.here, "supervisord.conf")
        self.process = None
        self.leaked = []
        os.mkdir(os.path.join(self.here, "logs"))
        if include and "/" in include:
            os.makedirs(os.path.join(self.here, os.path.dirname(include)))
        for name, text in (files or {}).items():
            with open(os.path.join(self.here, name), "w") as handle:
                handle.write(text)
        with open(self.config, "w") as handle:
            handle.write(SUPERVISORD_BASE.format(socket=self.socket, auth=AUTH if auth else "",
                                                 include="\n[include]\nfiles = %s\n" % include if include else "")
                         + sections)

    def start(self, timeout=30):
        from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc
        with open(os.path.join(self.here, "stdout"), "a") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", self.config],
                                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

        def answers():
            try:
                return rpc.connect(self.config).state() == "RUNNING"
            except rpc.RPCError:
                return False
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and not answers():
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if self.process.poll() is not None or not answers():
            with open(os.path.join(self.here, "stdout")) as handle:
                pytest.fail("supervisord did not start:\n" + handle.read())
        return self

    def children(self):
        """Pids of processes this supervisord spawned (its programs carry its URL in their environment)."""
        url = ("unix://" + self.socket).encode("utf-8")
        return [int(entry) for entry in os.listdir("/proc")
                if entry.isdigit() and int(entry) != os.getpid() and _environ(entry).get(b"SUPERVISOR_SERVER_URL") == url]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # supervisord stops its programs when it ends; whatever is still there was left behind.
        for pid in self.children():
            self.leaked.append(pid)
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    os.kill(pid, signal.SIGKILL)

    def remove(self):
        self.stop()
        shutil.rmtree(self.here, ignore_errors=True)


@pytest.fixture(scope="session")
def supervisord_type():
    """RealSupervisord itself, for a fixture of a wider scope than a test's."""
    return RealSupervisord


@pytest.fixture
def real_supervisord():
    """make(sections, files=None, auth=False, include=None, start=True) -> a RealSupervisord, started unless told
    not to (write what its config names into its .here first, then .start() it); stopped and removed after the
    test, which fails when one of its programs outlived it."""
    made = []

    def make(sections="", start=True, **options):
        server = RealSupervisord(sections, **options)
        made.append(server)
        return server.start() if start else server
    yield make
    for server in made:
        server.remove()
    assert not [server.leaked for server in made if server.leaked], "programs outlived their supervisord"
