# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The queue_workers role's variables as a host sees them, read once, on the controller.

Shared by the action plugins queue_workers_converge and queue_workers_rollout: each variable
of the role's argument spec is templated once and checked against the spec (types, choices),
the way ansible.builtin.validate_argument_spec checks them, but with one line per problem and
no spec dump; the plan is then made from these values in Python (module_utils/role_plan.py).
"""

from __future__ import annotations

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.yaml import yaml_load

ROLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles", "queue_workers")
ROLE_NAME = "queue_workers"


def _load(*parts):
    with open(os.path.join(ROLE_DIR, *parts), "rb") as handle:
        return yaml_load(handle) or {}


def _our_role(task):
    role = getattr(task, "_role", None)
    if role is not None and role.get_name(include_role_fqcn=False) == ROLE_NAME:
        return role
    return None


def spec_options(task=None):
    """The options of the role's 'main' entry point, which covers every variable of the role.

    Inside the role, Ansible parsed the spec when it loaded the role (the worker process inherits
    it); elsewhere it is read from the role's folder in this collection."""
    role = _our_role(task)
    specs = getattr(getattr(role, "_metadata", None), "argument_specs", None) if role is not None else None
    if not specs:
        specs = _load("meta", "argument_specs.yml").get("argument_specs") or {}
    return specs["main"]["options"]


def defaults():
    """The role's defaults, for a host whose variables are read outside the role (the rollout's first step)."""
    return _load("defaults", "main.yml")


def alert_script():
    with open(os.path.join(ROLE_DIR, "files", "alert_listener.py"), encoding="utf-8") as handle:
        return handle.read()


def collect(templar, variables, options, base=None):
    """({variable: value} templated, [spec problems]) for every variable of the spec that is set.

    base: values under the host's own (the role's defaults, when read outside the role)."""
    raw = dict((name, value) for name, value in (base or {}).items() if name in options)
    raw.update((name, variables[name]) for name in options if name in variables)
    values = templar.template(raw)
    checked = ArgumentSpecValidator(options).validate(dict(values), validate_role_argument_spec=True)
    for name, option in options.items():
        if name not in values and "default" in option:
            values[name] = option["default"]
    return values, list(checked.error_messages)


def tags_converge(variables):
    """Whether --tags/--skip-tags select the workers' converge (tag queue_workers), or only look at the host."""
    run = set(variables.get("ansible_run_tags") or ["all"])
    skip = set(variables.get("ansible_skip_tags") or [])
    wanted = {"queue_workers", "queue_workers_converge"}
    return bool(run & ({"all", "tagged"} | wanted)) and not skip & wanted


def play_variables(task, host_name, base):
    """Another host's variables as a task of this play would see them (inventory, play vars, extra vars, facts)."""
    manager = task.get_variable_manager()
    inventory = getattr(manager, "_inventory", None)
    host = inventory.get_host(host_name) if inventory is not None else None
    if manager is None or host is None:
        return None
    return manager.get_vars(play=task.get_play(), host=host, task=task, include_hostvars=True)
