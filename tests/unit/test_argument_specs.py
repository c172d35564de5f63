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
