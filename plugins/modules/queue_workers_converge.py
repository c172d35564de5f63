#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: queue_workers_converge
short_description: The queue_workers role's work for one host, done once on the controller
version_added: "0.5.0"
description:
  - An action plugin (it runs on the controller, with the host's variables). It reads every variable of the
    C(elms.queue_workers.queue_workers) role once, checks them against the role's argument spec and the rules a
    spec cannot express (apps, programs, kinds, alert and rollout settings), and builds the host's whole plan -
    the program of every worker of every app, the alert listener, the restart plan and the canary job.
  - Bad input fails before the host is touched, with one line per problem that names the variable, the bad value
    and the fix.
  - With O(mode=converge) it then makes the one converging call, M(elms.queue_workers.supervisor_programs), and
    returns its result; C(changed) means there is work for the apply handler (M(elms.queue_workers.supervisor_apply)),
    which the role notifies. With C(queue_workers_supervisor_not_ready) C(report) or C(install) a host without a
    ready supervisor is reported in RV(missing) (with C(ffmpeg) when the binary on C(PATH) has not been proven by the C(ffmpeg) role)
    instead of failing.
  - When C(--tags) or C(--skip-tags) leave the tag C(queue_workers) out, or C(queue_workers_check_only) is true,
    the call only looks (check mode) - the host's side of the inputs is still checked.
  - With O(mode=plan) nothing is asked of the host; the plan is returned without the files' text.
  - Takes the role's variables (see the role's README), not task options besides O(mode).
author:
  - eLMS infrastructure team (@elms-platform)
options:
  mode:
    description:
      - C(converge) checks, plans and converges; C(plan) checks and returns the plan only (for the restart and the
        diagnosis); C(docker) checks the local development inputs (C(queue_workers_docker_*)) and returns the queue
        container's whole C(supervisord.conf) in RV(docker).
    type: str
    choices: [converge, plan, docker]
    default: converge
attributes:
  action:
    support: full
    description: Runs on the controller; the converging call is the only remote one.
  check_mode:
    support: full
    description: In check mode the converging call reports what it would write and apply, and writes nothing.
  diff_mode:
    support: full
    description: The converging call's diff of each program file, C(environment=) values hidden.
notes:
  - A worker with C(numprocs=auto) needs the host's CPUs and memory; when the facts are not known yet they are read
    in one more call and returned as facts.
"""

EXAMPLES = r"""
# What the role's tasks/main.yml does (the role notifies its apply handler when changed).
- name: Converge the workers of every app with the host
  elms.queue_workers.queue_workers_converge:
  register: queue_workers_result
  notify: Apply the worker programs

- name: Plan the restart of every app without touching the host
  elms.queue_workers.queue_workers_converge:
    mode: plan
  register: queue_workers_plan
"""

RETURN = r"""
apps:
  description: With O(mode=plan), the apps' plan (programs without their text, owners, the restart plan, each app's
    name, dir, user, php, connection, log dir and programs, their C(environment) values hidden).
  returned: mode plan
  type: dict
docker:
  description: With O(mode=docker), C(dest) (the config's path in the app repository) and C(content) (its text).
  returned: mode docker
  type: dict
restart:
  description: With O(mode=plan), the arguments of the restart's one call (M(elms.queue_workers.queue_workers_recycle))
    - C(apps), C(programs) and C(recycle).
  returned: mode plan
  type: dict
canary:
  description: The canary job resolved against the apps (job, args, app, dir, user, php, connection, queue,
    timeout), or null when C(queue_workers_canary_job) is empty.
  returned: success
  type: dict
single:
  description: Whether the role-wide variables describe the one app (no C(queue_workers_apps)).
  returned: success
  type: bool
missing:
  description: What the host lacks before its workers can run (C(supervisor), C(ffmpeg)), with
    C(queue_workers_supervisor_not_ready) C(report) or C(install); empty otherwise.
  returned: mode converge
  type: list
  elements: str
installed:
  description: What an earlier converge of this run found missing (installed since, or in check mode, to be).
  returned: mode converge
  type: list
  elements: str
follow_up:
  description: Whether the converge leaves work to the role's follow-up - something in RV(missing) to install (with
    C(queue_workers_supervisor_not_ready=install)), or a canary job (RV(canary)) to check once the workers run.
  returned: mode converge
  type: bool
summary:
  description: One line saying the layout found and each program's action.
  returned: mode converge
  type: str
ready:
  description: Whether supervisor is ready (see M(elms.queue_workers.supervisor_programs), whose every return value
    this returns in mode converge).
  returned: mode converge
  type: bool
"""
