#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: queue_workers_rollout
short_description: The steps of a rolling deploy or restart over a fleet, on the controller
version_added: "0.5.0"
description:
  - An action plugin (it runs on the controller only, never on a host). The collection's C(site) and C(restart)
    playbooks are one play each, cut into batches by C(serial) (C(queue_workers_batch)); this module is their
    bookkeeping, written once for both.
  - O(step=start) runs once per batch (C(run_once)). In the first batch it reads every host of the play with its own
    variables, checks each against the C(queue_workers) role's spec and rules, and checks that the batches the play
    runs are the ones each host's C(queue_workers_batch) asks for (Ansible reads a play's C(serial) before any host's
    variables, so a value from the inventory would be silently ignored). Any problem fails every host of the batch
    with one line per host and problem, before any host changes. In a later batch it stops the rollout when the
    batch before asked to (its hosts are not touched).
  - O(step=end) runs once per batch (C(run_once), in the C(always) part of the batch's block). It works out each host's
    outcome from what the role registered (C(queue_workers_result), C(queue_workers_applied),
    C(queue_workers_restarted), C(queue_workers_canary), C(queue_workers_error)), prints the fleet's summary so far
    (hosts changed, unchanged, failed with their reasons, not reached; worker processes restarted; the batch that
    stopped the rollout; the canary times) and returns it as the run's statistic C(queue_workers_fleet) (AWX and
    ansible-runner keep it with the job). When more of the batch's hosts failed or were unreachable than
    C(queue_workers_max_fail_percentage) allows, RV(stop) is true and the next batch's start step ends the rollout.
  - O(step=failed) is for a C(rescue) section; it fails the host with the failed task's name and what it said (for a
    loop, each failed item's own message) - which the end step's summary repeats.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  step:
    description: Which step of the batch.
    type: str
    choices: [start, end, failed]
    required: true
  playbook:
    description: The rollout's kind; its default batch size (C(site) all hosts at once, C(restart) C(25%)) and how a
      host's outcome is read.
    type: str
    choices: [site, restart]
    default: site
attributes:
  action:
    support: full
    description: Runs on the controller only.
  check_mode:
    support: full
    description: Changes nothing anywhere; in check mode a host that would install supervisor counts as changed.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
# The shape of playbooks/site.yml: a batch checks first, then each host works, then the batch is recorded.
- name: Check every host's inputs before any host changes
  elms.queue_workers.queue_workers_rollout:
    step: start
  run_once: true

- name: Deploy this host
  block:
    - name: Converge the workers
      ansible.builtin.import_role:
        name: elms.queue_workers.queue_workers
  rescue:
    - name: Fail this host, saying why
      elms.queue_workers.queue_workers_rollout:
        step: failed
      register: queue_workers_error
  always:
    - name: Record the batch and say the fleet's summary
      elms.queue_workers.queue_workers_rollout:
        step: end
      run_once: true
      register: queue_workers_rollout
"""

RETURN = r"""
msg:
  description: The fleet's summary, line by line (end), or the problems found, one per host and problem (start).
  returned: always
  type: raw
outcomes:
  description: Each host's outcome so far (status changed, unchanged or failed; reason; workers restarted; canary seconds).
  returned: step end
  type: dict
fleet:
  description: The fleet's summary as data, also the run's statistic C(queue_workers_fleet).
  returned: step end
  type: dict
stop:
  description: Whether the rollout stops after this batch.
  returned: step end
  type: bool
"""
