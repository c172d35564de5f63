# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""queue_workers_canary's argv and how it reads the app's answer (run_command mocked at argv level).

The module against a real Laravel app, its workers and their queue runs in the fleet scenario
(molecule/resources/fleet_tests/test_fleet.py); these cover its error paths.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible_collections.elms.queue_workers.plugins.modules import queue_workers_canary

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19
    import contextlib

    @contextlib.contextmanager
    def patch_module_args(args=None):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode("utf-8")):
            yield

ME = pwd.getpwuid(os.geteuid()).pw_name
BASE = {"connection": "database", "queue": "default", "driver": "database"}


def run(capsys, answer, check_mode=False, **extra):
    """Run the module with php answering `answer` (a dict, or raw text); (result, argv of the php call)."""
    calls = []

    def fake(self, argv, **kwargs):
        calls.append((argv, kwargs))
        return 0, answer if isinstance(answer, str) else json.dumps(answer) + "\n", ""

    args = dict(app_dir="/srv/app", user=ME, php="/usr/bin/php", job="App\\Jobs\\Canary", args=["x", 2],
                queue="default", timeout=30, _ansible_check_mode=check_mode)
    args.update(extra)
    capsys.readouterr()
    # As in a module's own process (see test_converge_modules.run).
    with patch_module_args(args), mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            mock.patch.object(module_utils_internal, "is_controller", False), \
            mock.patch.object(basic.AnsibleModule, "run_command", fake):
        with pytest.raises(SystemExit):
            queue_workers_canary.main()
    return json.loads(capsys.readouterr().out), calls


def test_processed(capsys):
    result, calls = run(capsys, dict(BASE, processed=True, seconds=1.25))
    assert not result.get("failed") and not result["changed"]
    assert result["processed"] and result["seconds"] == 1.25 and result["queue"] == "default"
    (argv, kwargs), = calls
    # Run as the app's user (here: this user, so no prefix), killed after the timeout plus the app's boot.
    php = argv.index("/usr/bin/php")
    # The code php runs: it boots the app from its directory, pushes the job with a token in its payload, and reads
    # what to push from the JSON argument that follows it.
    code = argv[php + 2]
    assert argv[php + 1] == "-r"
    for words in ("require 'bootstrap/app.php'", "createPayloadUsing", "json_decode($argv[1], true)", "pushOn($queue"):
        assert words in code, words
    wanted = {"job": "App\\Jobs\\Canary", "args": ["x", 2], "connection": "", "queue": "default", "timeout": 30}
    assert json.loads(argv[php + 3]) == wanted
    assert argv[php - 1] == "90" and kwargs["cwd"] == "/srv/app"


def test_check_mode_pushes_nothing(capsys):
    result, calls = run(capsys, {}, check_mode=True)
    assert result["skipped"] and calls == []


@pytest.mark.parametrize("answer, words", [
    ({"error": "the app has no class App\\Jobs\\Canary"}, "the app has no class"),
    (dict(BASE, driver="sqs", error="the queue connection 'sqs' uses the 'sqs' driver: a canary can be followed only "
                                    "on the database and redis drivers"), "only on the database and redis"),
    (dict(BASE, processed=False, failed=True, exception="RuntimeException: boom", seconds=3),
     "failed in a worker after 3 s: RuntimeException: boom"),
    (dict(BASE, processed=False, pending=True, seconds=30), "was not processed within 30 s: is a worker"),
    (dict(BASE, processed=False, pending=True, seconds=30, read_error="database is locked"),
     "(reading the queue failed: database is locked)"),
    ("PHP Parse error: syntax error in config/queue.php", "could not run the canary (php exited 0): PHP Parse error"),
])
def test_failures_say_why(capsys, answer, words):
    result, _calls = run(capsys, answer)
    assert result["failed"] and not result.get("processed")
    assert words in result["msg"], result["msg"]


def test_a_timeout_below_one_is_refused(capsys):
    result, calls = run(capsys, {}, timeout=0)
    assert result["failed"] and "timeout must be at least 1" in result["msg"] and calls == []
