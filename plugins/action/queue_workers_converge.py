# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The queue_workers role's work for one host, on the controller, once: read and check the role's
variables, build the plan, and make the one converging call (elms.queue_workers.supervisor_programs).
Documentation: plugins/modules/queue_workers_converge.py."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.elms.queue_workers.plugins.module_utils import role_plan
from ansible_collections.elms.queue_workers.plugins.plugin_utils import role_vars

MODES = ("converge", "plan", "docker")


def problems_message(host, errors):
    """Bad input: one line per problem, each naming the variable and the fix."""
    return ["%s: %s" % (host, error) for error in errors]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("mode",))

    def _sizes(self, plan_vars, task_vars, result):
        """The host's CPUs and memory, only when a worker asks for numprocs: auto (one more remote call
        when the facts are not known yet; they are returned, so that later tasks do not ask again)."""
        if not role_plan.wants_sizes(plan_vars):
            return {}
        facts = task_vars.get("ansible_facts") or {}
        if "processor_nproc" not in facts:
            found = self._execute_module(module_name="ansible.builtin.setup", task_vars=task_vars,
                                         module_args={"gather_subset": ["!all", "!min", "hardware"]})
            if found.get("failed"):
                raise _Failed("could not read the host's CPUs and memory for numprocs auto: %s" % found.get("msg"))
            facts = found.get("ansible_facts") or {}
            result["ansible_facts"] = facts
        return {"cpus": facts.get("ansible_processor_nproc", facts.get("processor_nproc")),
                "memory_mb": facts.get("ansible_memtotal_mb", facts.get("memtotal_mb"))}

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        mode = self._task.args.get("mode", "converge")
        if mode not in MODES:
            return dict(result, failed=True, msg="mode must be one of %s, got %r" % (", ".join(MODES), mode))
        host = task_vars.get("inventory_hostname", "")
        values, errors = role_vars.collect(self._templar, task_vars, role_vars.spec_options(self._task))
        if errors:
            return dict(result, failed=True, msg=problems_message(host, errors))
        if mode == "docker":
            found = role_plan.docker(values)
            if found["errors"]:
                return dict(result, failed=True, msg=problems_message(host, found["errors"]))
            return dict(result, changed=False, docker={"dest": found["dest"], "content": found["content"]})
        try:
            sizes = self._sizes(values, task_vars, result) if mode == "converge" else {}
        except _Failed as failed:
            return dict(result, failed=True, msg=str(failed))
        playbook = values.get("queue_workers_playbook") or "site"
        plan = role_plan.build(values, host, playbook=playbook, sizes=sizes,
                               alert_script=role_vars.alert_script, content=mode == "converge")
        if plan["errors"]:
            return dict(result, failed=True, msg=problems_message(host, plan["errors"]))
        result.update(changed=False, canary=plan["canary"], single=plan["single"])
        if mode == "plan":
            # Planned without the files' text (which may hold secrets): names, owners, the restart plan.
            result["apps"] = role_plan.shown(plan["apps"])
            result["restart"] = role_plan.restart_args(plan["apps"])
            return result
        return self._converge(values, plan, task_vars, result)

    def _converge(self, values, plan, task_vars, result):
        previous = task_vars.get("queue_workers_result") if isinstance(task_vars.get("queue_workers_result"), dict) else {}
        missing_before = list(previous.get("missing") or [])
        # install: what the host lacks is reported (the module's report) and the role's follow-up installs it.
        install = values.get("queue_workers_supervisor_not_ready") == "install"
        not_ready = "report" if install else values.get("queue_workers_supervisor_not_ready") or "fail"
        # In check mode nothing was installed after an earlier converge of this run found supervisor missing.
        if self._task.check_mode and missing_before:
            not_ready = "report"
        check_only = role_plan.boolean(values.get("queue_workers_check_only")) or not role_vars.tags_converge(task_vars)
        tools, files, libraries = [], [], {}
        stamp = self._templar.template(task_vars.get("ffmpeg_verify_stamp")) or role_plan.FFMPEG_STAMP
        if not_ready == "report":
            tools, files, libraries = ["ffmpeg"], [stamp], {"ffmpeg": role_plan.libraries_list(stamp)}
        args = role_plan.converge_args(values, plan, not_ready=not_ready, tools=tools, files=files,
                                       tool_libraries=libraries)
        check_mode = self._task.check_mode
        try:
            if check_only:
                self._task.check_mode = True
            found = self._execute_module(module_name="elms.queue_workers.supervisor_programs", module_args=args,
                                         task_vars=task_vars)
        finally:
            self._task.check_mode = check_mode
        facts = result.pop("ansible_facts", None)
        result.update(found)
        if facts:
            result["ansible_facts"] = facts
        if found.get("failed"):
            return result
        result["missing"] = role_plan.missing(found, stamp) if not_ready == "report" else []
        # What an earlier converge of this run found missing, and the run installed (or, in check mode, would).
        result["installed"] = missing_before
        result["check_only"] = check_only
        # Work the converge leaves to the role's follow-up (roles/queue_workers/tasks/follow_up.yml): what to
        # install first (with install), a canary job to check once the workers run.
        result["follow_up"] = (install and bool(result["missing"])) or plan["canary"] is not None
        # Only a real converge hands work to the handler.
        result["changed"] = bool(found.get("pending")) and not check_only
        result["summary"] = role_plan.summary(found)
        return result


class _Failed(Exception):
    pass
