# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that render and check queue worker definitions (logic in module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs


def supervisor_program(worker, settings):
    return worker_programs.render_program(worker, settings)


def supervisor_standalone_config(workers, settings):
    return worker_programs.render_standalone(workers, settings)


def queue_workers_stale(workers, program_files, settings):
    """The workers whose program file is missing, or differs in text, mode or owner (root, 0644)."""
    stale = []
    for worker in workers or []:
        current = (program_files or {}).get(worker["name"]) or {}
        if (current.get("content") != worker_programs.render_program(worker, settings)
                or current.get("mode") != "0644" or current.get("uid") != 0):
            stale.append(worker)
    return stale


def queue_workers_controller_path(path):
    """An absolute path on the controller; a relative one is taken from where ansible-playbook runs.

    Filters run in the controller's own process, whose working directory is the one the user
    started ansible-playbook in (the pipe lookup, by contrast, runs in the playbook's directory,
    which for an installed collection is inside the collection).
    """
    return os.path.abspath(os.path.expanduser(str(path)))


def queue_worker_select(workers, which):
    """The workers that are 'present', 'absent', or 'autostarted' (present and autostart)."""
    return worker_programs.select(workers, which)


def queue_worker_rollback(copy_results):
    """[{path, backup}] for the program files a copy loop changed (backup null when new)."""
    return [{"path": r["dest"], "backup": r.get("backup_file")}
            for r in copy_results or [] if r.get("changed") and r.get("dest")]


def queue_worker_pids(status_text, running_only=False):
    """{process: pid} from 'supervisorctl status' output (RUNNING ones only, if asked)."""
    return worker_programs.status_pids(status_text, running_only)


def queue_workers_recycled(before_status, after_status):
    """True when every process of the first status is RUNNING again under a new pid."""
    before = worker_programs.status_pids(before_status)
    after = worker_programs.status_pids(after_status, running_only=True)
    return bool(before) and all(name in after and after[name] != pid for name, pid in before.items())


def queue_worker_numprocs(worker, settings):
    """The worker's process count on this host ('auto' resolved)."""
    return worker_programs.numprocs(worker, settings)


def queue_worker_log(worker, settings):
    return worker_programs.log_path(worker, settings)


def queue_worker_errors(workers, settings, margin=30, allow_root=False, retry_after=0):
    errors = worker_programs.settings_errors(settings, workers)
    return errors + worker_programs.worker_errors(workers, margin=margin, allow_root=allow_root,
                                                  default_user=settings.get("user"), retry_after=retry_after)


class FilterModule(object):
    def filters(self):
        return {
            "supervisor_program": supervisor_program,
            "supervisor_standalone_config": supervisor_standalone_config,
            "queue_worker_errors": queue_worker_errors,
            "queue_worker_log": queue_worker_log,
            "queue_worker_select": queue_worker_select,
            "queue_worker_rollback": queue_worker_rollback,
            "queue_worker_pids": queue_worker_pids,
            "queue_worker_numprocs": queue_worker_numprocs,
            "queue_workers_recycled": queue_workers_recycled,
            "queue_workers_stale": queue_workers_stale,
            "queue_workers_controller_path": queue_workers_controller_path,
        }
