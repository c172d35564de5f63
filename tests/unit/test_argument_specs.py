"""Each role's meta/argument_specs.yml documents exactly its defaults/main.yml."""

import glob
import os

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ROLES = sorted(os.path.basename(os.path.dirname(path)) for path in glob.glob(os.path.join(ROOT, "roles", "*", "defaults")))


def load(role, relative):
    with open(os.path.join(ROOT, "roles", role, relative)) as handle:
        return yaml.safe_load(handle) or {}


def test_every_role_is_checked():
    assert ROLES == ["ffmpeg", "queue_workers", "supervisor"]


@pytest.mark.parametrize("role", ROLES)
def test_spec_names_every_default_and_nothing_else(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_role_defaults(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert {name: spec.get("default") for name, spec in options.items()} == defaults


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_described_and_typed(role):
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert [name for name, spec in options.items() if not spec.get("description") or not spec.get("type")] == []


def test_a_workers_keys_are_the_same_in_the_spec_and_in_the_python_that_renders_and_checks_them():
    from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs

    spec = load("queue_workers", "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    keys = spec["queue_workers_programs"]["options"]
    assert sorted(keys) == sorted(worker_programs.WORKER_KEYS)
    assert sorted(keys["state"]["choices"]) == sorted(worker_programs.WORKER_STATES)
    assert sorted(keys["ionice_class"]["choices"]) == sorted(worker_programs.IONICE_CLASSES)
