"""Every filter has its documentation file (plugins/filter/NAME.yml), and its options are the function's arguments."""

import glob
import inspect
import os

import pytest
import yaml

from ansible_collections.elms.queue_workers.plugins.filter import install_roles, queue_workers

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FILTERS = dict(queue_workers.FilterModule().filters(), **install_roles.FilterModule().filters())
DOCS = sorted(os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, "plugins", "filter", "*.yml")))


def documentation(name):
    with open(os.path.join(ROOT, "plugins", "filter", name + ".yml")) as handle:
        return yaml.safe_load(handle)


def test_every_filter_is_documented_and_nothing_else():
    assert DOCS == sorted(FILTERS)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_documented_options_are_the_arguments(name):
    doc = documentation(name)["DOCUMENTATION"]
    parameters = list(inspect.signature(FILTERS[name]).parameters.values())[1:]  # the first is the piped _input
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    assert doc["name"] == name
    assert sorted(doc["options"]) == sorted(["_input"] + [p.name for p in parameters])
    assert [part.strip() for part in doc["positional"].split(",")] == ["_input"] + required
    assert dict((p.name, doc["options"][p.name].get("default")) for p in parameters if p.name not in required) == dict(
        (p.name, p.default) for p in parameters if p.name not in required)
