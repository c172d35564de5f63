"""The inventory examples in examples/ pass the same checks as a real run."""

import glob
import os

import pytest
import yaml

from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps as qa
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as wp

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "inventory", "group_vars", "*.yml")))
SPEC = yaml.safe_load(open(os.path.join(ROOT, "roles", "queue_workers", "meta", "argument_specs.yml")))


def test_there_are_examples_for_both_server_sizes_several_apps_and_releases():
    assert {os.path.basename(p) for p in EXAMPLES} >= {"high_traffic.yml", "low_resource.yml", "panel_apps.yml",
                                                       "zero_downtime.yml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_variables_are_known_and_valid(path):
    data = yaml.safe_load(open(path))
    options = SPEC["argument_specs"]["main"]["options"]
    assert [name for name in data if name not in options] == []
    group = dict(yaml.safe_load(open(os.path.join(ROOT, "roles", "queue_workers", "defaults", "main.yml"))))
    group.update(yaml.safe_load(open(os.path.join(os.path.dirname(path), "elms.yml"))))
    group.update(data)
    keys = options["queue_workers_programs"]["options"]
    single = not group["queue_workers_apps"]
    apps = [{"name": group["queue_workers_app_name"], "programs": group["queue_workers_programs"]}] if single \
        else group["queue_workers_apps"]
    for app in apps:
        assert [k for k in app if k not in options["queue_workers_apps"]["options"]] == []
        for worker in app.get("programs") or []:
            assert [k for k in worker if k not in keys] == []
    settings = {"app_dir": group["queue_workers_app_dir"], "php": group["queue_workers_php"],
                "user": group["queue_workers_user"], "owner": group["queue_workers_owner"],
                "stopwait_margin": group["queue_workers_stopwait_margin"], "log_dir": group["queue_workers_log_dir"],
                "nice": group["queue_workers_nice_path"], "ionice": group["queue_workers_ionice_path"]}
    assert qa.errors(apps, settings, single=single, retry_after=group["queue_workers_retry_after"]) == []


def test_low_resource_auto_sizing_gives_one_of_each_on_two_cores():
    data = yaml.safe_load(open(os.path.join(ROOT, "examples", "inventory", "group_vars", "low_resource.yml")))
    assert [wp.numprocs(w, {"cpus": 2, "memory_mb": 2048}) for w in data["queue_workers_programs"]] == [1, 1]
