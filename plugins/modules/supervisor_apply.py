#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: supervisor_apply
short_description: Apply supervisor program changes with reread and update, undoing files supervisor refuses
version_added: "0.1.0"
description:
  - Runs C(supervisorctl reread), then C(supervisorctl update). New groups are added, changed groups
    restart, removed groups stop, and every other group keeps running. supervisord itself is never
    restarted or reloaded.
  - When supervisor refuses the config (C(CANT_REREAD)) and O(rollback) lists the files this run
    wrote, each is put back as it was (its backup restored, or a new file removed), supervisor is
    asked again, and the module fails with supervisor's message. Nothing was applied, so every
    running program is left as it was.
  - When supervisor still refuses the config without those files, the broken file is not one this
    run wrote, and the module fails naming it (until it is fixed, supervisor can add or change no program
    on the host). Use O(check_only) before writing anything to find that out first.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  supervisorctl_path:
    description: The supervisorctl to run (see M(elms.queue_workers.supervisor_facts)).
    type: path
    required: true
  config_file:
    description: The supervisord config, passed as C(-c) so supervisorctl reaches the right server.
    type: path
    required: true
  rollback:
    description:
      - Files this run wrote, to undo if supervisor refuses the config.
      - C(backup) is the copy of the previous version (as returned by M(ansible.builtin.copy) with
        C(backup=true)), or null when the file is new.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The program file.
        type: path
        required: true
      backup:
        description: Its previous version, or null for a new file.
        type: path
  check_only:
    description:
      - Only check that supervisor can read its config (a C(reread), which applies nothing), and list
        the program groups it knows in RV(groups). Changes nothing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: In check mode only C(reread) runs, which applies nothing.
  diff_mode:
    support: none
    description: The files themselves are diffed by the tasks that write them.
"""

EXAMPLES = r"""
- name: Write a program file, keeping the previous version
  ansible.builtin.copy:
    content: "{{ program_text }}"
    dest: /etc/supervisor/conf.d/worker.conf
    backup: true
  register: program_file

- name: Apply it; put the old file back if supervisor refuses it
  elms.queue_workers.supervisor_apply:
    supervisorctl_path: "{{ ansible_facts.supervisor.supervisorctl_path }}"
    config_file: "{{ ansible_facts.supervisor.config_file }}"
    rollback:
      - path: "{{ program_file.dest }}"
        backup: "{{ program_file.backup_file | default(omit) }}"
"""

RETURN = r"""
reread:
  description: What reread reported, by kind.
  returned: always
  type: dict
  contains:
    available:
      description: New groups.
      type: list
      elements: str
    changed:
      description: Groups whose config changed.
      type: list
      elements: str
    disappeared:
      description: Groups whose config is gone.
      type: list
      elements: str
update:
  description: What update did, by kind (empty in check mode and with O(check_only)).
  returned: always
  type: dict
  contains:
    added:
      description: Groups added and started.
      type: list
      elements: str
    updated:
      description: Groups stopped and started again with their new config.
      type: list
      elements: str
    removed:
      description: Groups stopped and removed.
      type: list
      elements: str
groups:
  description: Every program group supervisor knows (with O(check_only)).
  returned: with O(check_only)
  type: list
  elements: str
restored:
  description: Files put back after supervisor refused the config.
  returned: on failure
  type: list
  elements: str
refused_file:
  description: The file supervisor named when it refused the config.
  returned: on failure
  type: str
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

C_ENV = {"LC_ALL": "C", "LANG": "C"}
_REREAD_RE = re.compile(r"^(\S+): (available|changed|disappeared)$")
_UPDATE_RE = re.compile(r"^(\S+): (added|updated|removed) process group$")
_FILE_RE = re.compile(r"(?:parsing errors: |file: )'([^']+)'")


def _groups_by_kind(stdout, pattern, kinds):
    """{kind: [group, ...]} from lines 'GROUP: KIND ...' that match pattern."""
    found = dict((kind, []) for kind in kinds)
    for line in stdout.splitlines():
        match = pattern.match(line.strip())
        if match:
            found[match.group(2)].append(match.group(1))
    return found


def parse_reread(stdout):
    return _groups_by_kind(stdout, _REREAD_RE, ("available", "changed", "disappeared"))


def parse_update(stdout):
    return _groups_by_kind(stdout, _UPDATE_RE, ("added", "updated", "removed"))


def parse_avail(stdout):
    """The program group names supervisor knows (from 'avail' lines 'GROUP:PROCESS in use auto 999:999')."""
    groups = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] in ("in", "avail"):
            group = fields[0].split(":")[0]
            if group not in groups:
                groups.append(group)
    return groups


def refusal(rc, stdout, stderr):
    """supervisor's message when it refuses the config, else None."""
    text = (stdout + "\n" + stderr).strip()
    if rc != 0 or "ERROR" in stdout or "CANT_REREAD" in text:
        return text or "supervisorctl exited %d without a message" % rc
    return None


def refused_file(message):
    match = _FILE_RE.search(message or "")
    return match.group(1) if match else None


def restore(entries):
    """Put each file back as it was before this run; returns the paths restored."""
    restored = []
    for entry in entries:
        path, backup = entry["path"], entry.get("backup")
        if backup:
            os.rename(backup, path)
        elif os.path.exists(path):
            os.unlink(path)
        restored.append(path)
    return restored


def main():
    module = AnsibleModule(
        argument_spec=dict(
            supervisorctl_path=dict(type="path", required=True),
            config_file=dict(type="path", required=True),
            rollback=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                backup=dict(type="path"),
            )),
            check_only=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    base = [module.params["supervisorctl_path"], "-c", module.params["config_file"]]
    result = dict(changed=False, reread=parse_reread(""), update=parse_update(""))

    def reread():
        rc, out, err = module.run_command(base + ["reread"], environ_update=C_ENV)
        return refusal(rc, out, err), out

    message, out = reread()
    if message:
        bad = result["refused_file"] = refused_file(message)
        written = [entry["path"] for entry in module.params["rollback"]]
        if written and not module.check_mode:
            result["restored"] = restore(module.params["rollback"])
            again, _out = reread()
            if not again:
                module.fail_json(msg=(
                    "supervisor refused the program file(s) this run wrote: %s. They were put back as they were (%s); "
                    "nothing was applied and every running program was left as it was." % (message, ", ".join(written))),
                    **result)
            message = again
        put_back = " The files this run wrote were put back as they were." if result.get("restored") else ""
        module.fail_json(msg=(
            "supervisor cannot read its config: %s. %s is not a file this collection wrote: fix or remove it. Until "
            "then supervisor can add or change no program on this host, and a restart of supervisord would stop "
            "every program.%s" % (message, bad or "The file it names", put_back)),
            **result)

    result["reread"] = parse_reread(out)
    if module.params["check_only"]:
        rc, out, err = module.run_command(base + ["avail"], environ_update=C_ENV)
        result["groups"] = parse_avail(out)
        module.exit_json(**result)
    if module.check_mode:
        result["changed"] = any(result["reread"].values())
        module.exit_json(**result)

    rc, out, err = module.run_command(base + ["update"], environ_update=C_ENV)
    message = refusal(rc, out, err)
    if message:
        module.fail_json(msg="supervisorctl update failed: %s" % message, **result)
    result["update"] = parse_update(out)
    result["changed"] = any(result["update"].values())
    for entry in module.params["rollback"]:
        if entry.get("backup") and os.path.exists(entry["backup"]):
            os.unlink(entry["backup"])  # applied: the old version is no longer needed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
