# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's batches are the ones ansible-core itself cuts a play with the same serial into.

A controller-side test (the rollout action cuts them so; it imports ansible-core's PlaybookExecutor, which module_utils tests may not).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.executor.playbook_executor import PlaybookExecutor
from ansible_collections.elms.queue_workers.plugins.module_utils.rollout import batches as queue_worker_batches


class _Inventory(object):
    def __init__(self, hosts):
        self.hosts = hosts

    def get_hosts(self, pattern, order=None):
        return list(self.hosts)


class _Play(object):
    hosts = "all"
    order = "inventory"

    def __init__(self, serial):
        self.serial = serial


def ansible_batches(hosts, serial):
    """ansible-core's own cut of a play with this serial (the list a play's serial becomes)."""
    executor = PlaybookExecutor.__new__(PlaybookExecutor)
    executor._inventory = _Inventory(hosts)
    return executor._get_serialized_batches(_Play(serial if isinstance(serial, list) else [serial]))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 20])
@pytest.mark.parametrize("serial", ["100%", "25%", "50%", "10%", "1%", 1, 2, 3, "3", [1, "25%", "100%"], [1, 2], ["50%", 1]])
def test_batches_are_ansibles_own(count, serial):
    hosts = ["h%02d" % index for index in range(count)]
    assert queue_worker_batches(hosts, serial) == ansible_batches(hosts, serial)
