# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's plan for one host, from its variables (what the converge action sends the host)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible_collections.elms.queue_workers.plugins.module_utils import role_plan, worker_alerts

DEFAULTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "queue_workers", "defaults", "main.yml")


def role_vars(**overrides):
    with open(DEFAULTS) as handle:
        values = yaml.safe_load(handle)
    values.update(overrides)
    return values


def test_the_defaults_plan_both_workers_in_one_call():
    values = role_vars()
    plan = role_plan.build(values, "web1")
    assert plan["errors"] == [] and plan["single"] is True and plan["canary"] is None
    args = role_plan.converge_args(values, plan)
    assert [p["name"] for p in args["programs"]] == ["elms-default-worker", "elms-video-worker"]
    assert all(p["owner"] == "elms.queue_workers/elms" for p in args["programs"])
    # The listener's owner is spoken for, so that turning alerts off removes it.
    assert args["owners"] == ["elms.queue_workers/elms", worker_alerts.owner({"owner": "elms.queue_workers"})]
    assert args["not_ready"] == "fail" and args["tools"] == [] and "config_file" not in args
    assert "numprocs=2" in args["programs"][0]["content"]


def test_the_apps_errors_come_alone_and_name_the_variable():
    values = role_vars(queue_workers_programs=[{"name": "x", "queue": "default", "numprocs": 0}],
                       queue_workers_alert_webhook="not a url")
    errors = role_plan.build(values, "web1")["errors"]
    assert len(errors) == 1 and errors[0].startswith("queue_workers_programs[0] (x).numprocs = 0")


@pytest.mark.parametrize("name, value, words", [
    ("queue_workers_batch", "0", "queue_workers_batch: '0' is not a batch size"),
    ("queue_workers_max_fail_percentage", 150, "queue_workers_max_fail_percentage: 150 is not a percentage"),
    ("queue_workers_alert_webhook", "ftp://x", "queue_workers_alert_webhook must be an http:// or https:// URL"),
    ("queue_workers_wait_timeout", 0, "queue_workers_wait_timeout (0) and queue_workers_restart_wait (120)"),
], ids=lambda value: str(value)[:30])
def test_settings_checked_against_the_apps(name, value, words):
    errors = role_plan.build(role_vars(**{name: value}), "web1")["errors"]
    assert any(words in error for error in errors), errors


def test_the_restart_default_batch_is_a_quarter():
    assert role_plan.default_batch("restart") == "25%" and role_plan.default_batch("site") == "100%"
    assert role_plan.default_batch(None) == "100%"


def test_switches_as_the_command_line_gives_them():
    assert role_plan.boolean("false") is False and role_plan.boolean("yes") is True and role_plan.boolean(True)
    values = role_vars(queue_workers_take_over="false")
    assert role_plan.converge_args(values, role_plan.build(values, "h"))["take_over"] is False


def test_numprocs_auto_asks_for_the_host_size_and_uses_it():
    worker = {"name": "elms-video-worker", "queue": "video", "numprocs": "auto", "weight": "heavy"}
    values = role_vars(queue_workers_programs=[worker])
    assert role_plan.wants_sizes(values) and not role_plan.wants_sizes(role_vars())
    small = role_plan.build(values, "h", sizes={"cpus": 1, "memory_mb": 1024})
    large = role_plan.build(values, "h", sizes={"cpus": 8, "memory_mb": 16384})
    assert small["apps"]["programs"][0]["content"] != large["apps"]["programs"][0]["content"]


def test_a_canary_job_is_resolved_against_the_first_app():
    plan = role_plan.build(role_vars(queue_workers_canary_job="App\\Jobs\\WritePing"), "h")
    assert plan["canary"]["job"] == "App\\Jobs\\WritePing" and plan["canary"]["dir"] == "/var/www/html"


def test_the_alert_script_is_read_only_when_a_channel_is_on():
    calls = []

    def script():
        calls.append(1)
        return "#!/usr/bin/python3\n"
    role_plan.build(role_vars(), "h", alert_script=script)
    assert calls == []
    plan = role_plan.build(role_vars(queue_workers_alert_syslog=True), "h", alert_script=script)
    assert calls == [1] and plan["alerts"]["extra_files"][0]["content"] == "#!/usr/bin/python3\n"


@pytest.mark.parametrize("result, needs", [
    ({"ready": False, "tools": {"ffmpeg": {"path": "", "id": ""}}, "files": {}}, ["supervisor", "ffmpeg"]),
    ({"ready": True, "supervisor": {"service_enabled": False}, "tools": {"ffmpeg": {"path": "/usr/bin/ffmpeg", "id": "a"}},
      "files": {role_plan.FFMPEG_STAMP: "a"}}, ["supervisor"]),
    ({"ready": True, "supervisor": {"service_enabled": True}, "tools": {"ffmpeg": {"path": "/usr/bin/ffmpeg", "id": "b"}},
      "files": {role_plan.FFMPEG_STAMP: "a"}}, ["ffmpeg"]),
    ({"ready": True, "supervisor": {"service_enabled": None}, "tools": {"ffmpeg": {"path": "/usr/bin/ffmpeg", "id": "a"}},
      "files": {role_plan.FFMPEG_STAMP: "a"}}, []),
], ids=["fresh", "not-enabled", "new-ffmpeg", "ready"])
def test_what_a_host_lacks(result, needs):
    assert role_plan.missing(result) == needs


def test_the_docker_config_is_rendered_for_the_container():
    found = role_plan.docker(role_vars(queue_workers_docker_repo="/srv/app/"))
    assert found["errors"] == [] and found["dest"] == "/srv/app/docker/supervisor/supervisord.conf"
    assert "nodaemon=true" in found["content"] and "[program:elms-video-worker]" in found["content"]


@pytest.mark.parametrize("repo, path, words", [
    ("", "docker/supervisord.conf", 'queue_workers_docker_repo = "" must be the absolute path'),
    ("relative", "docker/supervisord.conf", 'queue_workers_docker_repo = "relative" must be the absolute path'),
    ("/srv/app", "../outside.conf", 'queue_workers_docker_config_path = "../outside.conf" must be a path inside'),
    ("/srv/app", "/etc/supervisord.conf", 'queue_workers_docker_config_path = "/etc/supervisord.conf" must be'),
], ids=["empty", "relative", "dotdot", "absolute"])
def test_docker_paths_are_checked(repo, path, words):
    found = role_plan.docker(role_vars(queue_workers_docker_repo=repo, queue_workers_docker_config_path=path))
    assert any(words in error for error in found["errors"]) and found["content"] == "", found["errors"]


def test_the_plan_a_task_returns_hides_environment_values():
    worker = dict(role_vars()["queue_workers_programs"][0], environment={"API_TOKEN": "s3cr3t"})
    plan = role_plan.build(role_vars(queue_workers_programs=[worker]), "h", content=False)
    shown = role_plan.shown(plan["apps"])
    assert "s3cr3t" not in repr(shown) and "s3cr3t" in repr(plan["apps"])
    assert shown["apps"][0]["programs"][0]["environment"] == {"API_TOKEN": "(hidden)"}
    assert shown["recycle"] == plan["apps"]["recycle"]
