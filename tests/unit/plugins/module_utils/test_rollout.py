# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling deploys: batches cut as ansible-core cuts them, each host's outcome, the fleet's summary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import rollout


@pytest.mark.parametrize("value", [0, "0", "0%", "101%", "abc", "", [], True, -1, "25 %", "1.5", None, ["25%", "x"]])
def test_bad_batch_sizes_name_the_variable(value):
    errors = rollout.batch_errors(value)
    assert errors and all("queue_workers_batch" in error for error in errors)


@pytest.mark.parametrize("value", [1, "5", "25%", "100%", [1, "25%", "100%"]])
def test_good_batch_sizes(value):
    assert rollout.batch_errors(value) == []


@pytest.mark.parametrize("value", [-1, 101, "x", True, "150%"])
def test_bad_max_fail_percentage(value):
    errors = rollout.max_fail_errors(value)
    assert errors and "queue_workers_max_fail_percentage" in errors[0]


@pytest.mark.parametrize("value", [0, "0", 25, "25%", 100, 12.5])
def test_good_max_fail_percentage(value):
    assert rollout.max_fail_errors(value) == []


APPS = {"apps": [{"name": "gone", "state": "absent", "dir": "/srv/gone", "user": "u", "php": "/usr/bin/php"},
                 {"name": "elms", "state": "present", "dir": "/var/www/html", "user": "www-data",
                  "php": "/usr/bin/php", "connection": "database"},
                 {"name": "shop", "state": "present", "dir": "/srv/shop/current", "user": "shop", "php": "php"}]}


def test_canary_from_a_class_name_goes_to_the_first_present_app():
    errors, spec = rollout.canary("App\\Jobs\\Canary", APPS)
    assert errors == []
    assert spec == {"job": "App\\Jobs\\Canary", "args": [], "app": "elms", "dir": "/var/www/html", "user": "www-data",
                    "php": "/usr/bin/php", "connection": "database", "queue": "", "timeout": 120}


def test_canary_dict_picks_its_app_queue_args_and_timeout():
    errors, spec = rollout.canary({"job": "\\App\\Jobs\\WritePing", "args": ["canary"], "app": "shop",
                                   "queue": "default", "timeout": "30"}, APPS)
    assert errors == []
    assert (spec["job"], spec["args"], spec["dir"], spec["user"], spec["queue"], spec["timeout"]) == \
        ("App\\Jobs\\WritePing", ["canary"], "/srv/shop/current", "shop", "default", 30)


def test_no_canary():
    assert rollout.canary("", APPS) == ([], None)
    assert rollout.canary(None, APPS) == ([], None)


@pytest.mark.parametrize("value, words", [
    ({"job": "App\\Jobs\\X", "tiemout": 3}, "unknown key(s) tiemout"),
    ({"job": "rm -rf /"}, "is not a PHP class name"),
    ({"job": "App\\Jobs\\X", "args": "a"}, "args must be a list"),
    ({"job": "App\\Jobs\\X", "app": "gone"}, "'gone' is not a present app"),
    ({"job": "App\\Jobs\\X", "timeout": 0}, "timeout"),
    ({"job": "App\\Jobs\\X", "queue": "a b"}, "is not a queue queue name"),
    (["App\\Jobs\\X"], "must be a job class name or a dict"),
])
def test_bad_canary_names_the_variable_and_the_problem(value, words):
    errors, spec = rollout.canary(value, APPS)
    assert spec is None
    assert any("queue_workers_canary_job" in error and words in error for error in errors), errors


def test_canary_without_a_present_app():
    errors, _spec = rollout.canary("App\\Jobs\\X", {"apps": [APPS["apps"][0]]})
    assert "no app is present" in errors[0]


def test_checks_use_the_playbooks_default_batch_when_unset():
    assert rollout.checks("", 0, "", APPS, defaults_batch="25%") == []
    assert rollout.checks("0", "x", {"job": 1}, APPS)  # every problem at once
    assert len(rollout.checks("0", "x", {"job": "1"}, APPS)) == 3


def test_site_outcomes():
    unchanged = rollout.outcome("site", result={"ready": True, "changed": False})
    assert unchanged["status"] == "unchanged" and unchanged["workers_restarted"] == 0
    applied = {"pids": {"elms-default": {"before": {"elms-default_00": 10, "elms-default_01": 11},
                                         "after": {"elms-default_00": 20, "elms-default_01": 11}},
                        "elms-new": {"before": {"elms-new_00": None}, "after": {"elms-new_00": 30}}}}
    changed = rollout.outcome("site", result={"ready": True, "changed": True}, applied=applied)
    assert changed["status"] == "changed" and changed["workers_restarted"] == 2
    assert rollout.outcome("site", result={"ready": True}, installed=True)["status"] == "changed"
    failed = rollout.outcome("site", error={"task": "Apply the worker programs", "result": {"msg": "x " * 400}})
    assert failed["status"] == "failed" and failed["reason"].startswith("Apply the worker programs: x x")
    assert len(failed["reason"]) <= rollout.REASON_LIMIT + len("Apply the worker programs: ")
    # Supervisor missing and the run did not fail: tests/unit/plugins/modules/test_converge_modules.py, with the
    # result the converge module returns.


def test_a_failed_loop_names_each_failed_item_with_what_it_said():
    result = {"msg": "One or more items failed", "failed": True, "results": [
        {"item": {"name": "elms"}, "_ansible_item_label": "elms", "failed": True, "rc": 255, "msg": "non-zero return code",
         "stderr": "PHP Warning: x\nPHP Parse error: syntax error, unexpected end of file in config/queue.php on line 94\n"},
        {"item": {"name": "shop"}, "_ansible_item_label": "shop", "failed": False}]}
    found = rollout.outcome("restart", error={"task": "Check the cache", "result": result})
    assert found["reason"] == ("Check the cache: elms: non-zero return code: PHP Parse error: syntax error, unexpected "
                               "end of file in config/queue.php on line 94")


def test_a_failed_task_without_a_message_says_what_it_printed():
    found = rollout.outcome("site", error={"task": "Run it", "result": {"rc": 1, "stdout": "first\nlast words\n"}})
    assert found["reason"] == "Run it: last words"
    assert rollout.outcome("site", error={"task": "T", "result": {}})["reason"] == "T: failed without a message"


def test_restart_outcomes():
    recycled = {"a:a_00": {"state": "recycled"}, "a:a_01": {"state": "recycled"}}
    done = rollout.outcome("restart", restarted={"recycled": recycled})
    assert done["status"] == "changed" and done["workers_restarted"] == 2
    busy = dict(recycled, **{"v:v_00": {"state": "busy"}})
    assert rollout.outcome("restart", restarted={"recycled": busy}, require_all=False)["status"] == "changed"
    held = rollout.outcome("restart", restarted={"recycled": busy}, require_all=True)
    assert held["status"] == "failed" and "v:v_00 (busy)" in held["reason"]
    fatal = rollout.outcome("restart", restarted={"recycled": {"x:x_00": {"state": "FATAL"}}}, require_all=False)
    assert fatal["status"] == "failed"
    canary = rollout.outcome("restart", restarted={"recycled": recycled}, canary_result={"seconds": 1.5})
    assert canary["canary_seconds"] == 1.5


def _ok(status="unchanged", restarted=0):
    return {"status": status, "reason": "", "workers_restarted": restarted, "canary_seconds": None}


def _failed(reason):
    return {"status": "failed", "reason": reason, "workers_restarted": 0, "canary_seconds": None}


HOSTS = ["h1", "h2", "h3", "h4"]


def test_fleet_stops_after_a_failed_batch_and_names_the_untouched_hosts():
    summary = rollout.fleet("restart", HOSTS, {"h1": _failed("broken"), "h2": _ok("changed", 3)}, 2, 0)
    assert summary["stop"] and summary["stopped_at_batch"] == 1
    assert summary["failed"] == {"h1": "broken"} and summary["changed"] == ["h2"]
    assert set(summary["not_reached"]) == {"h3", "h4"}
    assert "stopped after batch 1" in summary["not_reached"]["h3"]
    assert summary["workers_restarted"] == 3
    assert any(line.startswith("FAILED h1: broken") for line in summary["text"])


def test_fleet_goes_on_within_the_allowed_failures():
    summary = rollout.fleet("site", HOSTS, {"h1": _failed("broken"), "h2": _ok()}, 2, 50)
    assert not summary["stop"] and summary["stopped_at_batch"] is None
    assert summary["not_reached"] == {"h3": "not run yet", "h4": "not run yet"}


def test_fleet_counts_an_unreachable_host_of_a_batch_that_ran():
    summary = rollout.fleet("site", HOSTS, {"h1": _ok(), "h3": _ok(), "h4": _ok("changed")}, 2, 0)
    assert summary["not_reached"] == {"h2": "unreachable in batch 1"}
    # The last batch ran clean: nothing stops, the unreachable host is still reported.
    assert not summary["stop"] and summary["changed"] == ["h4"] and summary["unchanged"] == ["h1", "h3"]


def test_fleet_all_at_once():
    summary = rollout.fleet("site", HOSTS, {host: _ok() for host in HOSTS}, "100%", 0)
    assert summary["batches"] == [HOSTS] and summary["batches_run"] == 1 and not summary["not_reached"]
