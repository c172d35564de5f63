# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn queue worker definitions into supervisor programs, and check them (logic in module_utils).

They are what a playbook needs to use elms.queue_workers.supervisor_programs with worker
definitions without the queue_workers role.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs


def supervisor_program(worker, settings):
    return worker_programs.render_program(worker, settings)


def supervisor_standalone_config(workers, settings):
    return worker_programs.render_standalone(workers, settings)


def queue_worker_programs(workers, settings, content=True):
    return worker_programs.desired_programs(workers, settings, content=content)


def queue_worker_requirements(workers, settings):
    return worker_programs.host_requirements(workers, settings)


def queue_workers_controller_path(path, base=""):
    """An absolute path on the controller; a relative one is taken from base, else from where ansible-playbook runs.

    Filters run in the controller's own process, whose working directory is the one the user
    started ansible-playbook in (the pipe lookup, by contrast, runs in the playbook's directory,
    which for an installed collection is inside the collection). Under ansible-runner (AWX,
    Automation Platform, ansible-navigator) that directory is nobody's: base is then the job's
    artifact directory, which the runner exports as AWX_ISOLATED_DATA_DIR and keeps with the job.
    """
    path = os.path.expanduser(str(path))
    base = os.path.expanduser(str(base or ""))
    if base and not os.path.isabs(base):
        raise AnsibleFilterError("queue_workers_controller_path: base must be an absolute directory, got %r" % base)
    return os.path.abspath(os.path.join(base, path) if base else path)


def queue_worker_errors(workers, settings, margin=30, allow_root=False, retry_after=0):
    errors = worker_programs.settings_errors(settings, workers)
    return errors + worker_programs.worker_errors(workers, margin=margin, allow_root=allow_root,
                                                  default_user=settings.get("user"), retry_after=retry_after)


class FilterModule(object):
    def filters(self):
        return {
            "supervisor_program": supervisor_program,
            "supervisor_standalone_config": supervisor_standalone_config,
            "queue_worker_programs": queue_worker_programs,
            "queue_worker_requirements": queue_worker_requirements,
            "queue_worker_errors": queue_worker_errors,
            "queue_workers_controller_path": queue_workers_controller_path,
        }
