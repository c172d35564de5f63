# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that render and check queue worker definitions (logic in module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs


def supervisor_program(worker, settings):
    return worker_programs.render_program(worker, settings)


def queue_worker_select(workers, which):
    """The workers that are 'present', 'absent', or 'autostarted' (present and autostart)."""
    return worker_programs.select(workers, which)


def queue_worker_log(worker, settings):
    return worker_programs.log_path(worker, settings)


def queue_worker_errors(workers, settings, margin=30, allow_root=False):
    errors = worker_programs.settings_errors(settings)
    return errors + worker_programs.worker_errors(workers, margin=margin, allow_root=allow_root,
                                                  default_user=settings.get("user"))


class FilterModule(object):
    def filters(self):
        return {
            "supervisor_program": supervisor_program,
            "queue_worker_errors": queue_worker_errors,
            "queue_worker_log": queue_worker_log,
            "queue_worker_select": queue_worker_select,
        }
