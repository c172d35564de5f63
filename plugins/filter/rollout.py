# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for rolling deploys and restarts over a fleet (logic in module_utils/rollout.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.elms.queue_workers.plugins.module_utils import rollout


def queue_worker_rollout(settings, apps_plan):
    settings = settings or {}
    errors = rollout.checks(settings.get("batch"), settings.get("max_fail_percentage", 0),
                            settings.get("canary_job"), apps_plan, defaults_batch=settings.get("default_batch", "100%"))
    spec = None if errors else rollout.canary(settings.get("canary_job"), apps_plan)[1]
    return {"errors": errors, "canary": spec}


def queue_worker_outcome(inputs):
    inputs = dict(inputs or {})
    return rollout.outcome(inputs.pop("playbook"), **inputs)


def queue_worker_fleet(outcomes, playbook, hosts, batch, max_fail_percentage=0):
    return rollout.fleet(playbook, hosts, outcomes, batch, max_fail_percentage)


def queue_worker_batches(hosts, batch):
    return rollout.batches(hosts, batch)


class FilterModule(object):
    def filters(self):
        return {
            "queue_worker_rollout": queue_worker_rollout,
            "queue_worker_outcome": queue_worker_outcome,
            "queue_worker_fleet": queue_worker_fleet,
            "queue_worker_batches": queue_worker_batches,
        }
