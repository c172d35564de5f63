# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""numprocs as a range: its checks, the two programs it is deployed as, the converge's hands-off state for the
spare processes (against a real supervisord), and the listener config that makes the listener its scaler (read
back by the listener's own parser)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import getpass
import importlib.util
import json
import os
import sys
import time

import pytest
import yaml

from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as ps
from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps as qa
from ansible_collections.elms.queue_workers.plugins.module_utils import role_plan
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_alerts as wa
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as wp

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
LISTENER = os.path.join(ROOT, "roles", "queue_workers", "files", "alert_listener.py")
_spec = importlib.util.spec_from_file_location("alert_listener_for_plan", LISTENER)
al = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(al)

SETTINGS = {"app_dir": "/var/www/html", "php": "/usr/bin/php", "user": "www-data", "connection": "",
            "stopwait_margin": 30, "owner": "elms.queue_workers", "log_dir": "storage/logs", "cpus": 8,
            "memory_mb": 8192}
VIDEO = {"name": "elms-video-worker", "queue": "video-encoding", "weight": "heavy", "timeout": 7200,
         "numprocs": {"min": 1, "max": 4}}
ALERTS = {"webhook": "", "syslog": False, "mail_to": [], "rate_limit": {"alerts": 3, "seconds": 600},
          "fatal_retry": {"delays": [60]}, "backoff_after": 30, "log_lines": 10, "backlog": {},
          "backlog_interval": 300, "scale_interval": 15, "python": "/usr/bin/python3", "host": "web1",
          "supervisor_config": "", "metrics_dir": ""}


def errors_of(numprocs, **worker):
    return wp.worker_errors([dict(dict(VIDEO, numprocs=numprocs), **worker)], default_user="www-data")


@pytest.mark.parametrize("numprocs, worker, words", [
    ({"min": 4, "max": 2}, {}, "numprocs: max (2) must be above min (4); for a fixed count set numprocs: 4"),
    ({"min": 2, "max": 2}, {}, "max (2) must be above min (2)"),
    ({"min": 0, "max": 2}, {}, "numprocs.min = 0 must be a whole number from 1 to 64"),
    ({"max": 2}, {}, "numprocs.min = None must be a whole number from 1 to 64"),
    ({"min": 1, "max": 0}, {}, "numprocs.max = 0 must be a whole number from 1 to 64, or auto"),
    ({"min": 1, "max": "lots"}, {}, "numprocs.max = 'lots' must be a whole number from 1 to 64, or auto"),
    ({"min": 1, "max": 65}, {}, "numprocs.max = 65"),
    ({"min": True, "max": 3}, {}, "numprocs.min = True"),
    ({"min": 1, "max": 3, "cooldown": -1}, {}, "numprocs.cooldown = -1 must be a whole number >= 0"),
    ({"min": 1, "max": 3, "step": 0}, {}, "numprocs.step = 0 must be a whole number >= 1"),
    ({"min": 1, "max": 3, "clear_seconds": "5m"}, {}, "numprocs.clear_seconds = '5m' must be a whole number >= 1"),
    ({"min": 1, "max": 3, "maximum": 5}, {}, "numprocs has unknown keys maximum; a range takes min, max"),
    ({"min": 1, "max": 3}, {"name": "w" * 60}, "the name of a scaled worker is at most 58 characters"),
], ids=lambda value: str(value)[:40])
def test_a_bad_range_is_refused_naming_the_key_and_the_fix(numprocs, worker, words):
    found = errors_of(numprocs, **worker)
    assert any(words in error for error in found), found
    assert all(error.startswith("queue_workers_programs[0]") for error in found), found


@pytest.mark.parametrize("worker, words", [
    ({"kind": "schedule"}, "(kind schedule) runs as one process: numprocs = {'min': 1, 'max': 3} must be 1"),
    ({"kind": "horizon"}, "(kind horizon) runs as one process: numprocs = {'min': 1, 'max': 3} must be 1"),
    ({"kind": "command", "command": ["reverb:start"]},
     "numprocs is a range, but only queue workers scale with their backlog (kind command)"),
], ids=["schedule", "horizon", "command"])
def test_a_range_on_another_kind_is_refused(worker, words):
    found = wp.worker_errors([dict(worker, name="one", numprocs={"min": 1, "max": 3})], default_user="www-data")
    assert any(words in error for error in found), found


def test_a_spare_name_taken_by_another_worker_is_refused():
    found = wp.worker_errors([VIDEO, {"name": "elms-video-worker-spare", "queue": "x"}], default_user="www-data")
    assert any("its spare processes run as program elms-video-worker-spare, which is also a worker's name" in error
               for error in found), found


def test_a_good_range_passes():
    assert errors_of({"min": 1, "max": "auto", "clear_seconds": 60, "step": 2, "cooldown": 0}) == []


def test_max_auto_is_the_hosts_auto_size_and_never_below_min():
    assert wp.scale_range(dict(VIDEO, numprocs={"min": 1, "max": "auto"}), SETTINGS)["max"] == 3  # heavy, 8 CPU/8 GB
    small = dict(SETTINGS, cpus=2, memory_mb=2048)
    assert wp.scale_range(dict(VIDEO, numprocs={"min": 2, "max": "auto"}), small)["max"] == 2
    assert wp.scale_range(VIDEO, SETTINGS) == {"min": 1, "max": 4, "clear_seconds": 300, "step": 1, "cooldown": 60,
                                               "spare": "elms-video-worker-spare"}
    assert wp.scale_range(dict(VIDEO, numprocs=2), SETTINGS) is None


def parsed(text, section):
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(text)
    return dict(parser.items(section))


def test_a_range_is_two_programs_the_minimum_and_the_spares_numbered_on():
    programs = wp.desired_programs([VIDEO], SETTINGS)
    assert [(p["name"], p["state"]) for p in programs] == [("elms-video-worker", "started"),
                                                           ("elms-video-worker-spare", "scaled")]
    base = parsed(programs[0]["content"], "program:elms-video-worker")
    spare = parsed(programs[1]["content"], "program:elms-video-worker-spare")
    assert base["numprocs"] == "1" and base.get("autostart", "true") == "true"
    assert spare["numprocs"] == "3" and spare["numprocs_start"] == "1" and spare["autostart"] == "false"
    assert spare["process_name"] == "elms-video-worker_%(process_num)02d"
    # The same worker: command, log, stop wait and user.
    for key in ("command", "stdout_logfile", "stopwaitsecs", "user", "directory"):
        assert spare[key] == base[key], key
    assert programs[1]["stopwaitsecs"] == programs[0]["stopwaitsecs"] == 7230


@pytest.mark.parametrize("state, spare", [("stopped", "stopped"), ("absent", "absent")])
def test_the_spares_follow_a_stopped_or_absent_worker(state, spare):
    programs = wp.desired_programs([dict(VIDEO, state=state)], SETTINGS)
    assert [(p["name"], p["state"]) for p in programs] == [("elms-video-worker", state),
                                                           ("elms-video-worker-spare", spare)]


def test_no_room_above_the_minimum_is_no_spare_program():
    small = dict(SETTINGS, cpus=2, memory_mb=2048)
    programs = wp.desired_programs([dict(VIDEO, numprocs={"min": 1, "max": "auto"})], small)
    assert [p["name"] for p in programs] == ["elms-video-worker"]
    assert qa.plan([{"name": "elms", "programs": [dict(VIDEO, numprocs={"min": 1, "max": "auto"})]}], small)["scaled"] == []


def test_the_apps_plan_names_each_scaled_worker_for_the_listener():
    plan = qa.plan([{"name": "elms", "programs": [VIDEO, {"name": "elms-default-worker", "queue": "default"}]}],
                   SETTINGS)
    assert plan["errors"] == []
    assert plan["scaled"] == [{"name": "elms-video-worker", "spare": "elms-video-worker-spare", "app": "elms",
                               "queues": ["video-encoding"], "log": "/var/www/html/storage/logs/elms-video-worker.log",
                               "min": 1, "max": 4, "clear_seconds": 300, "step": 1, "cooldown": 60}]
    # Only the minimum is recycled and waited for after a code deploy.
    assert [p["name"] for p in plan["recycle_programs"]] == ["elms-video-worker", "elms-default-worker"]


def listener_config(alerts=None, apps=None):
    plan = qa.plan(apps or [{"name": "elms", "programs": [VIDEO]}], SETTINGS)
    return wa.plan(dict(ALERTS, **(alerts or {})), plan, SETTINGS, "#!/usr/bin/python3\n")


def test_a_scaled_worker_alone_turns_the_listener_on_as_its_scaler():
    found = listener_config()
    assert found["errors"] == [] and [p["name"] for p in found["programs"]] == [wa.PROGRAM]
    config = json.loads(found["extra_files"][1]["content"])
    assert config["scaling"]["elms-video-worker"] == {
        "app": "elms", "spare": "elms-video-worker-spare", "min": 1, "max": 4, "queues": ["video-encoding"],
        "clear_seconds": 300, "step": 1, "cooldown": 60, "log": "/var/www/html/storage/logs/elms-video-worker.log"}
    assert config["backlog"]["interval"] == 15
    assert config["backlog"]["apps"]["elms"]["queues"] == {"video-encoding": None}
    assert set(config["programs"]) == {"elms-video-worker", "elms-video-worker-spare"}
    # The listener itself takes what the deploy writes.
    taken = al.normalize(config)
    assert taken["scaling"]["elms-video-worker"]["max"] == 4


def test_an_alerted_queue_keeps_its_threshold_and_the_longer_interval_wins_nothing():
    config = json.loads(listener_config({"backlog": {"video-encoding": 40}, "backlog_interval": 60,
                                         "scale_interval": 90})["extra_files"][1]["content"])
    assert config["backlog"]["apps"]["elms"]["queues"] == {"video-encoding": 40}
    assert config["backlog"]["interval"] == 60
    al.normalize(config)


def test_without_a_scaled_worker_nothing_turns_the_listener_on():
    found = listener_config(apps=[{"name": "elms", "programs": [dict(VIDEO, numprocs=2)]}])
    assert found["programs"] == [] and all(f["state"] == "absent" for f in found["extra_files"])


@pytest.mark.parametrize("value", [0, 4, "15", None])
def test_a_bad_scale_interval_is_refused(value):
    found = listener_config({"scale_interval": value})["errors"]
    assert any(error.startswith("queue_workers_scale_interval = %r must be a whole number of seconds >= 5" % (value,))
               for error in found), found


def test_the_role_asks_for_the_host_size_for_max_auto():
    with open(os.path.join(ROOT, "roles", "queue_workers", "defaults", "main.yml")) as handle:
        values = yaml.safe_load(handle)
    values["queue_workers_programs"] = [dict(VIDEO, numprocs={"min": 1, "max": "auto"})]
    assert role_plan.wants_sizes(values)
    plan = role_plan.build(values, "web1", sizes={"cpus": 8, "memory_mb": 8192}, alert_script="#!\n")
    assert plan["errors"] == [] and plan["apps"]["scaled"][0]["max"] == 3
    assert plan["alerts"]["programs"][0]["name"] == wa.PROGRAM


# --- the converge leaves spare processes as they are: a real supervisord -----------------

WORKER_SCRIPT = "import time\nwhile True:\n    time.sleep(1)\n"


def test_a_real_supervisord_runs_the_minimum_and_the_converge_leaves_the_spares_alone(real_supervisord):
    server = real_supervisord(include="conf.d/*.conf", start=False, prefix="elms-range-")
    os.mkdir(os.path.join(server.here, "app"))
    with open(os.path.join(server.here, "app", "artisan"), "w") as handle:
        handle.write(WORKER_SCRIPT)
    settings = dict(SETTINGS, app_dir=os.path.join(server.here, "app"), php=sys.executable, user=getpass.getuser(),
                    log_dir=os.path.join(server.here, "logs"))
    worker = dict(VIDEO, timeout=5, numprocs={"min": 1, "max": 3})
    desired = wp.desired_programs([worker], settings)
    files = {}
    for program in desired:
        path = os.path.join(server.here, "conf.d", program["name"] + ".conf")
        with open(path, "w") as handle:
            handle.write(program["content"])
        files[program["name"]] = {"path": path, "text": program["content"], "mode": "0644", "uid": 0}
    server.start()
    client = rpc.connect(server.config)
    deadline = time.monotonic() + 20
    while True:
        states = dict(("%s:%s" % (p["group"], p["name"]), p["statename"]) for p in client.processes())
        if states.get("elms-video-worker:elms-video-worker_00") != "STARTING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert states == {"elms-video-worker:elms-video-worker_00": "RUNNING",
                      "elms-video-worker-spare:elms-video-worker_01": "STOPPED",
                      "elms-video-worker-spare:elms-video-worker_02": "STOPPED"}, states

    def planned():
        return ps.plan(desired, files, {"added": [], "changed": [], "removed": []}, client.processes(),
                       "elms.queue_workers", purge=False)["programs"]
    assert planned()["elms-video-worker-spare"]["action"] == "unchanged"
    assert not ps.needs_apply({"programs": planned()})
    # The scaler started one: a deploy with no change neither stops it nor starts the other.
    client.start_process("elms-video-worker-spare:elms-video-worker_01")
    again = planned()
    assert again["elms-video-worker-spare"]["start"] == [] and again["elms-video-worker-spare"]["stop"] == []
    assert again["elms-video-worker-spare"]["action"] == "unchanged" and not ps.needs_apply({"programs": again})
