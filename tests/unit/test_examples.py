"""The inventory examples in examples/ pass the same checks as a real run."""

import glob
import os

import pytest
import yaml

from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as wp

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "inventory", "group_vars", "*.yml")))
SPEC = yaml.safe_load(open(os.path.join(ROOT, "roles", "queue_workers", "meta", "argument_specs.yml")))


def test_there_are_examples_for_both_server_sizes():
    assert {os.path.basename(p) for p in EXAMPLES} >= {"high_traffic.yml", "low_resource.yml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_variables_are_known_and_valid(path):
    data = yaml.safe_load(open(path))
    options = SPEC["argument_specs"]["main"]["options"]
    assert [name for name in data if name not in options] == []
    group = dict(yaml.safe_load(open(os.path.join(ROOT, "roles", "queue_workers", "defaults", "main.yml"))))
    group.update(yaml.safe_load(open(os.path.join(os.path.dirname(path), "elms.yml"))))
    group.update(data)
    keys = options["queue_workers_programs"]["options"]
    for worker in group["queue_workers_programs"]:
        assert [k for k in worker if k not in keys] == []
    assert wp.worker_errors(group["queue_workers_programs"], retry_after=group["queue_workers_retry_after"],
                            default_user=group["queue_workers_user"]) == []


def test_low_resource_auto_sizing_gives_one_of_each_on_two_cores():
    data = yaml.safe_load(open(os.path.join(ROOT, "examples", "inventory", "group_vars", "low_resource.yml")))
    assert [wp.numprocs(w, {"cpus": 2, "memory_mb": 2048}) for w in data["queue_workers_programs"]] == [1, 1]
