# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A rolling deploy's or restart's bookkeeping, on the controller: every host checked before any changes,
each batch's outcome, the fleet's summary, and the stop. Documentation: plugins/modules/queue_workers_rollout.py."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.elms.queue_workers.plugins.module_utils import role_plan, rollout
from ansible_collections.elms.queue_workers.plugins.plugin_utils import role_vars

STEPS = ("start", "end", "failed")
PLAYBOOKS = ("site", "restart")
# What the end step reads of each host of its batch, as the playbooks register it.
RESULTS = {"result": "queue_workers_result", "applied": "queue_workers_applied",
           "restarted": "queue_workers_restarted", "canary_result": "queue_workers_canary"}
STATE = "queue_workers_rollout"
ERROR = "queue_workers_error"
# The first line of the summary each batch prints: what tests and log readers look for.
HEADING = "Rollout summary after batch %d of %d:"

display = Display()


def batch_message(host, asked, first, running):
    return ("queue_workers_batch is %s for %s, which makes a first batch of %d host(s), but the play runs %d: Ansible "
            "reads a play's batch size before any host's variables, so a value from the inventory (group_vars, "
            "host_vars) is not seen. Give it as an extra var (-e queue_workers_batch=..., or the job template's extra "
            "variables), the same for every host." % (rollout.json_text(asked), host, len(first), running))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("step", "playbook"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        step = self._task.args.get("step")
        playbook = self._task.args.get("playbook", "site")
        if step not in STEPS or playbook not in PLAYBOOKS:
            return dict(result, failed=True, msg="step must be one of %s and playbook one of %s, got %r and %r"
                        % (", ".join(STEPS), ", ".join(PLAYBOOKS), step, playbook))
        result["changed"] = False
        if step == "failed":
            return self._failed(task_vars, result)
        options = role_vars.spec_options(self._task)
        values, errors = role_vars.collect(self._templar, task_vars, options, base=role_vars.defaults())
        if errors:
            return dict(result, failed=True, msg=["%s: %s" % (task_vars.get("inventory_hostname"), e) for e in errors])
        asked = values.get("queue_workers_batch") or role_plan.default_batch(playbook)
        hosts = list(task_vars.get("ansible_play_hosts_all") or [])
        cut = rollout.batches(hosts, asked)
        me = task_vars.get("inventory_hostname")
        index = next((number for number, members in enumerate(cut) if me in members), 0)
        previous = self._host_value(task_vars, cut[index - 1][0], STATE) if index else None
        if step == "start":
            return self._start(task_vars, result, playbook, options, index, previous)
        return self._end(task_vars, result, playbook, values, cut, index, previous)

    # -- reading other hosts ------------------------------------------------------------------------------------
    def _host_value(self, task_vars, host, name):
        value = (task_vars.get("hostvars") or {}).get(host, {}).get(name)
        return self._templar.template(value) if value is not None else None

    def _host_values(self, host, options, base):
        variables = role_vars.play_variables(self._task, host, base)
        if variables is None:
            return None, ["%s is not in the inventory" % host]
        templar = self._templar.copy_with_new_env(available_variables=variables)
        return role_vars.collect(templar, variables, options, base=base)

    # -- steps --------------------------------------------------------------------------------------------------
    def _start(self, task_vars, result, playbook, options, index, previous):
        """Before the first batch changes anything: every host's inputs, and the batch size each host asks for."""
        if index:
            if previous and previous.get("stop"):
                return dict(result, failed=True, msg="not run: the rollout stopped after batch %d (see its summary)"
                            % previous["fleet"]["stopped_at_batch"])
            return dict(result, msg="batch %d" % (index + 1))
        base = role_vars.defaults()
        running = list(task_vars.get("ansible_play_batch") or [])
        hosts = list(task_vars.get("ansible_play_hosts_all") or [])
        problems = []
        for host in hosts:
            values, errors = self._host_values(host, options, base)
            if not errors:
                errors = role_plan.build(values, host, playbook=playbook, content=False)["errors"]
            if not errors:
                asked = values.get("queue_workers_batch") or role_plan.default_batch(playbook)
                first = rollout.batches(hosts, asked)[0]
                if first != running:
                    errors = [batch_message(host, asked, first, len(running))]
            problems.extend("%s: %s" % (host, error) for error in errors)
        if problems:
            return dict(result, failed=True, msg=problems)
        return dict(result, msg="the inputs of %d host(s) are right" % len(hosts))

    def _outcome(self, task_vars, playbook, host, values, check_mode):
        found = dict((key, self._host_value(task_vars, host, name) or {}) for key, name in RESULTS.items())
        error = self._host_value(task_vars, host, ERROR)
        if error:
            return rollout.outcome(playbook, error={"reason": error.get("msg")}, **found)
        if found["result"] or found["restarted"] or host in (task_vars.get("ansible_play_hosts") or []):
            # Missing before this run's converge: installed (or, in check mode, to be).
            installed = bool(found["result"].get("installed") or found["result"].get("missing"))
            return rollout.outcome(playbook, installed=installed,
                                   require_all=role_plan.boolean(values.get("queue_workers_restart_require_all")),
                                   check_mode=check_mode, **found)
        return None

    def _end(self, task_vars, result, playbook, values, cut, index, previous):
        """After a batch: each of its hosts' outcome, the fleet's summary so far, and whether to stop."""
        outcomes = dict((previous or {}).get("outcomes") or {})
        for host in cut[index]:
            found = self._outcome(task_vars, playbook, host, values, self._task.check_mode)
            if found is not None:
                outcomes[host] = found
        fleet = rollout.fleet(playbook, list(task_vars.get("ansible_play_hosts_all") or []), outcomes,
                              values.get("queue_workers_batch") or role_plan.default_batch(playbook),
                              values.get("queue_workers_max_fail_percentage", 0))
        # Printed as it is, whatever the verbosity: the result itself (shown with -v) holds it as data.
        display.display("\n".join([HEADING % (index + 1, len(cut))] + ["  " + line for line in fleet["text"]]))
        result.update(msg=fleet["text"], outcomes=outcomes, stop=fleet["stop"], fleet=fleet)
        # The run's artifact (AWX, ansible-runner): the last batch's summary is the fleet's.
        result["ansible_stats"] = {"data": {"queue_workers_fleet": fleet}, "per_host": False, "aggregate": False}
        return result

    def _failed(self, task_vars, result):
        """In a rescue: this host fails, with what failed in words (the summary says it again, once)."""
        task = task_vars.get("ansible_failed_task") or {}
        error = {"task": task.get("name", "") if isinstance(task, dict) else "",
                 "result": task_vars.get("ansible_failed_result") or {}}
        return dict(result, failed=True, msg=rollout.reason(self._templar.template(error)))
