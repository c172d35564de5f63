# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the role's variables on the controller: the spec check and the tags."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.template import Templar

from ansible_collections.elms.queue_workers.plugins.plugin_utils import role_vars


def collect(variables):
    return role_vars.collect(Templar(loader=None, variables=variables), variables, role_vars.spec_options(),
                             base=role_vars.defaults())


def test_the_defaults_pass_and_fill_every_variable():
    values, errors = collect({})
    assert errors == []
    assert values["queue_workers_user"] == "www-data" and len(values["queue_workers_programs"]) == 2


def test_a_bad_type_is_one_line_naming_the_variable():
    values, errors = collect({"queue_workers_allow_root": "maybe", "queue_workers_wait_timeout": "soon"})
    assert len(errors) == 2
    assert any("queue_workers_allow_root" in error for error in errors)
    assert any("queue_workers_wait_timeout" in error for error in errors)


def test_host_values_win_over_the_defaults():
    values, errors = collect({"queue_workers_user": "deploy"})
    assert errors == [] and values["queue_workers_user"] == "deploy"


@pytest.mark.parametrize("run, skip, converge", [
    (["all"], [], True), (["queue_workers"], [], True), (["supervisor"], [], False),
    (["all"], ["queue_workers"], False), (["tagged"], [], True), (None, None, True),
])
def test_tags_decide_whether_the_converge_writes(run, skip, converge):
    variables = {}
    if run is not None:
        variables.update(ansible_run_tags=run, ansible_skip_tags=skip)
    assert role_vars.tags_converge(variables) is converge
