#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_apply
short_description: Apply supervisor program changes group by group, wait for RUNNING, and roll back what fails
version_added: "0.1.0"
description:
  - The handler of M(elms.queue_workers.supervisor_programs). Through supervisord's XML-RPC interface (what
    C(supervisorctl) itself uses), and only for the programs in O(programs), it does what C(reread) and
    C(update) do - added groups are added, changed groups are stopped (each running job finishes within the
    program's C(stopwaitsecs)) and added again with their new config, removed groups are stopped and removed.
    Every other group, and supervisord itself, is left alone; supervisord is never restarted or reloaded.
  - A supervisord that does not answer is started through its service (O(service)), never restarted.
  - Processes of a C(started) program that are C(STOPPED), C(EXITED) or C(FATAL) are started; a C(stopped)
    program's processes are stopped. Orphans of these programs (processes no supervisord manages, left by a
    supervisord that died) are sent SIGTERM, so that a running job finishes, and their process group is killed
    only after the program's C(stopwaitsecs).
  - Then it waits (at most O(wait_timeout) seconds) until every process of the C(started) programs is RUNNING.
  - When supervisor refuses the config because of a file in O(rollback), every file in O(rollback) is put back
    as it was and nothing is applied. When a changed program does not reach RUNNING, its previous version (and
    any file removed in the same run) is put back and applied, and the module waits for the old version to run
    again, then fails naming the program, the reason (its log's last lines) and that the previous version runs.
    A new program has no previous version; it is stopped and reported.
  - Returns the process ids before and after, per program.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  config_file:
    description: The supervisord config (see RV(elms.queue_workers.supervisor_programs#module:supervisor)).
    type: path
    required: true
  service:
    description: The service that runs supervisord, started when supervisord does not answer.
    type: str
  programs:
    description: The programs to apply, as returned by M(elms.queue_workers.supervisor_programs) in RV(elms.queue_workers.supervisor_programs#module:apply).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Program (group) name.
        type: str
        required: true
      state:
        description:
          - Desired state. C(scaled) is a program whose processes neither this module nor the converge
            starts or stops (a scaled worker's spare processes, which the alert listener runs).
        type: str
        choices: [started, stopped, absent, scaled]
        default: started
      stopwaitsecs:
        description: Longest time an orphan of this program may take to stop after SIGTERM.
        type: int
        default: 10
      action:
        description: What the write step did (C(added), C(changed), C(removed), ...); decides what a failure rolls back.
        type: str
        default: pending
  rollback:
    description: Files written or removed for these programs, with their kept previous version (null when new).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The program file.
        type: path
        required: true
      backup:
        description: The kept previous version, or null.
        type: path
      new:
        description: Whether the file did not exist before.
        type: bool
        default: false
      name:
        description: The program the file defines.
        type: str
      mode:
        description: The file's mode before the write step (kept copies are private); null means C(0644).
        type: str
  wait_timeout:
    description: Seconds to wait for the processes of started programs to be RUNNING.
    type: int
    default: 60
  stop_orphans:
    description: Stop orphaned processes of these programs.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what supervisord would be asked to do (from C(reloadConfig), which applies nothing).
  diff_mode:
    support: none
    description: M(elms.queue_workers.supervisor_programs) shows the file changes.
seealso:
  - module: elms.queue_workers.supervisor_programs
"""

EXAMPLES = r"""
# A handler, notified by elms.queue_workers.supervisor_programs registered as programs_result:
- name: Apply program changes
  elms.queue_workers.supervisor_apply:
    config_file: "{{ programs_result.supervisor.config_file }}"
    service: "{{ programs_result.supervisor.service_name | default(omit, true) }}"
    programs: "{{ programs_result.apply }}"
    rollback: "{{ programs_result.rollback }}"
    wait_timeout: 60
"""

RETURN = r"""
supervisord_started:
  description: Whether supervisord did not answer and was started through its service.
  returned: always
  type: bool
added:
  description: Groups added.
  returned: always
  type: list
  elements: str
updated:
  description: Groups stopped and added again with their new config.
  returned: always
  type: list
  elements: str
removed:
  description: Groups stopped and removed.
  returned: always
  type: list
  elements: str
started:
  description: Processes that were down and were started.
  returned: always
  type: list
  elements: str
stopped:
  description: Processes stopped because their program is C(stopped).
  returned: always
  type: list
  elements: str
orphans:
  description: Orphaned processes stopped, with the signal that ended them (C(TERM) or C(KILL)) and how long it took.
  returned: always
  type: list
  elements: dict
pids:
  description: Per program, C(before) and C(after), each a map of process name to pid (null when not running).
  returned: always
  type: dict
not_running:
  description: Per program that did not reach RUNNING, its processes' states and the last lines of its log.
  returned: always
  type: dict
rolled_back:
  description: Files put back (the previous version restored, or a new file removed).
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import orphans as orphan_procs
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as state
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.elms.queue_workers.plugins.module_utils.recycling import POLL, connect, log_tail, pids_by_group


def start_service(module, service, config_file, timeout=60):
    """Start supervisord through its service manager (a start, never a restart) and wait until it answers."""
    systemctl = module.get_bin_path("systemctl")
    if systemctl and os.path.isdir("/run/systemd/system"):
        # A unit whose supervisord died waits in 'auto-restart' (Debian's for 50 s), and a start
        # then waits for that delay too; a restart runs it now. Nothing of it runs to be stopped:
        # its main process is dead, and KillMode=process leaves the orphaned workers to us.
        rc, out, _err = module.run_command([systemctl, "show", "-p", "SubState", "--value", service],
                                           environ_update={"LC_ALL": "C"})
        argv = [systemctl, "restart" if rc == 0 and out.strip() == "auto-restart" else "start", service]
    else:
        argv = [module.get_bin_path("service") or "service", service, "start"]
    rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
    if rc != 0:
        return "'%s' failed (%d): %s" % (" ".join(argv), rc, (err or out).strip())
    deadline = time.time() + timeout
    while True:
        try:
            client = connect(config_file)
            if client.state() == "RUNNING":
                return None
        except (rpc.RPCError, IOError, OSError) as exc:
            last = str(getattr(exc, "message", exc))
        else:
            last = "supervisord is not RUNNING yet"
        if time.time() > deadline:
            return "supervisord did not answer within %d s after '%s': %s" % (timeout, " ".join(argv), last)
        time.sleep(POLL)


def restore(entries):
    """Put each file back as it was before the write step; returns the paths restored."""
    restored = []
    for entry in entries:
        path, backup = entry["path"], entry.get("backup")
        if backup and os.path.exists(backup):
            shutil.copyfile(backup, path)
            os.chmod(path, int(entry.get("mode") or "0644", 8))
            os.unlink(backup)
            restored.append(path)
        elif entry.get("new") and os.path.exists(path):
            os.unlink(path)
            restored.append(path)
    return restored


def forget_backups(entries):
    for entry in entries:
        if entry.get("backup") and os.path.exists(entry["backup"]):
            os.unlink(entry["backup"])


def apply_groups(client, names, added, changed, removed, result):
    """What 'supervisorctl update' does, for these groups only: removed and changed ones are stopped (each
    running job finishes within stopwaitsecs) and removed, changed and added ones are added."""
    for name in names:
        if name in removed or name in changed:
            client.stop_group(name)
            client.remove_group(name)
            (result["removed"] if name in removed else result["updated"]).append(name)
        if name in added or name in changed:
            client.add_group(name)
            if name in added:
                result["added"].append(name)


def reapply(client, names, result):
    """Make supervisord run what the files now say for these groups."""
    added, changed, removed = client.reload_config()
    apply_groups(client, names, added, changed, removed, result)


def wait_running(client, names, timeout):
    """Wait until every process of these groups is RUNNING; returns {group: [(process, state, spawnerr)]} of the rest.

    A FATAL or STOPPED process is not waited for: supervisor gave up on it, or it was
    stopped. EXITED is waited for: with autorestart it is about to start again.
    """
    deadline = time.time() + timeout
    while True:
        pending = {}
        for info in client.processes():
            if info["group"] in names and info["statename"] != "RUNNING":
                pending.setdefault(info["group"], []).append(
                    ("%s:%s" % (info["group"], info["name"]), info["statename"], info.get("spawnerr") or ""))
        waiting = [g for g, procs in pending.items() if any(s not in ("FATAL", "STOPPED") for _p, s, _e in procs)]
        if not waiting or time.time() > deadline:
            return pending
        time.sleep(POLL)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="path", required=True),
            service=dict(type="str"),
            programs=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", default="started", choices=list(state.DESIRED_STATES)),
                stopwaitsecs=dict(type="int", default=10),
                action=dict(type="str", default="pending"),
            )),
            rollback=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                backup=dict(type="path"),
                new=dict(type="bool", default=False),
                name=dict(type="str"),
                mode=dict(type="str"),
            )),
            wait_timeout=dict(type="int", default=60),
            stop_orphans=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    programs = dict((p["name"], p) for p in params["programs"])
    names = sorted(programs)
    result = dict(changed=False, supervisord_started=False, added=[], updated=[], removed=[], started=[], stopped=[],
                  orphans=[], pids={}, not_running={}, rolled_back=[])

    try:
        client = connect(params["config_file"])
        client.state()
    except rpc.RPCError as exc:
        if not params["service"]:
            module.fail_json(msg="supervisord does not answer (%s) and no service is known to start it: set service"
                             % exc.message, **result)
        result["changed"] = result["supervisord_started"] = True
        if module.check_mode:
            module.exit_json(**result)
        problem = start_service(module, params["service"], params["config_file"])
        if problem:
            module.fail_json(msg="supervisord was not running and could not be started: %s" % problem, **result)
        client = connect(params["config_file"])

    before = pids_by_group(client, names)

    # Orphans get SIGTERM now and finish their jobs while the programs are applied.
    orphan_thread, orphan_report = None, []
    if params["stop_orphans"] and names and not module.check_mode:
        found = orphan_procs.find_orphans(set(names))
        if found:
            waits = dict((n, p["stopwaitsecs"]) for n, p in programs.items())

            def stop():
                orphan_report.extend(orphan_procs.stop_orphans(found, waits))
            orphan_thread = threading.Thread(target=stop)
            orphan_thread.start()
            result["changed"] = True

    try:
        added, changed, removed = client.reload_config()
    except rpc.RPCError as exc:
        if exc.code != rpc.CANT_REREAD:
            module.fail_json(msg="supervisord answered with an error: %s" % exc.message, **result)
        written = [e["path"] for e in params["rollback"]]
        if written and not module.check_mode and any(path in exc.message for path in written):
            result["rolled_back"] = restore(params["rollback"])
            module.fail_json(msg=(
                "supervisor refused the program file(s) this run wrote: %s. They were put back as they were (%s); "
                "nothing was applied and every running program was left as it was." % (exc.message, ", ".join(written))),
                **result)
        module.fail_json(msg=(
            "supervisor cannot read its config: %s. That is not a file of these programs: fix or remove it. Until then "
            "supervisor can add or change no program on this host." % exc.message), **result)

    if module.check_mode:
        result["updated"] = [n for n in names if n in changed]
        result["added"] = [n for n in names if n in added]
        result["removed"] = [n for n in names if n in removed]
        result["changed"] = result["changed"] or any((result["updated"], result["added"], result["removed"]))
        module.exit_json(**result)

    try:
        apply_groups(client, names, added, changed, removed, result)
        current = dict(("%s:%s" % (i["group"], i["name"]), i) for i in client.processes())
        for process, info in sorted(current.items()):
            program = programs.get(info["group"])
            if program is None:
                continue
            if program["state"] == "started" and info["statename"] in state.DOWN_STATES:
                try:
                    client.start_process(process, wait=False)
                except rpc.RPCError as exc:
                    if exc.code != rpc.ALREADY_STARTED:
                        raise
                result["started"].append(process)
            elif program["state"] == "stopped" and info["statename"] not in state.DOWN_STATES:
                client.stop_process(process)
                result["stopped"].append(process)
    except rpc.RPCError as exc:
        module.fail_json(msg="supervisord refused a step: %s" % exc.message, **result)
    result["changed"] = result["changed"] or any(
        result[k] for k in ("added", "updated", "removed", "started", "stopped"))

    running = [n for n in names if programs[n]["state"] == "started"]
    failing = wait_running(client, set(running), params["wait_timeout"]) if running else {}
    for group, procs in sorted(failing.items()):
        result["not_running"][group] = {
            "states": dict((p, s) for p, s, _e in procs),
            "spawnerr": sorted(set(e for _p, _s, e in procs if e)),
            "log": log_tail(client, procs[0][0]),
        }

    if failing:
        changed_now = [g for g in failing if programs[g]["action"] in ("changed", "pending")]
        # The failing programs' previous versions, and every file removed in this run.
        removed_now = [n for n, p in programs.items() if p["action"] == "removed"]
        files_back = [e for e in params["rollback"] if not e.get("new") and e.get("backup")
                      and (e.get("name") in changed_now or e.get("name") in removed_now or not e.get("name"))]
        new_now = [g for g in failing if programs[g]["action"] == "added"]
        try:
            if files_back:
                result["rolled_back"] = restore(files_back)
                reapply(client, names, {"added": [], "updated": [], "removed": []})
            for group in new_now:
                client.stop_group(group)
            old_running = wait_running(client, set(g for g in changed_now), params["wait_timeout"])
        except rpc.RPCError as exc:
            module.fail_json(msg="rolling back failed: %s" % exc.message, **result)
        result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, names).items())
        parts = []
        for group in sorted(failing):
            info = result["not_running"][group]
            reason = "; ".join(info["spawnerr"]) or " | ".join(info["log"][-5:]) or "no log output"
            if group in changed_now and files_back and group not in old_running:
                outcome = "its previous version was put back and runs again"
            elif group in changed_now and files_back:
                outcome = "its previous version was put back but does not run either"
            elif group in new_now:
                outcome = "it is new, so there is no previous version: it was stopped"
            else:
                outcome = "there is no previous version to go back to"
            parts.append("%s did not reach RUNNING within %d s (%s): %s; %s" % (
                group, params["wait_timeout"], ", ".join("%s %s" % kv for kv in sorted(info["states"].items())),
                reason, outcome))
        # The programs that did reach RUNNING keep their new version: their old one is not needed.
        forget_backups([e for e in params["rollback"] if e not in files_back])
        if orphan_thread:
            orphan_thread.join()
            result["orphans"] = orphan_report
        module.fail_json(msg="; ".join(parts), **result)

    forget_backups(params["rollback"])
    if orphan_thread:
        orphan_thread.join()
        result["orphans"] = orphan_report
    result["pids"] = dict((n, {"before": before.get(n, {}), "after": p}) for n, p in pids_by_group(client, names).items())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
