# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restart's cache store check, as the app's probe reports it (the real module runs in restart and apps)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import recycling
from ansible_collections.elms.queue_workers.plugins.modules import queue_workers_recycle as module

APP = {"name": "shop", "dir": "/srv/shop/current/", "user": "shop", "php": "/usr/bin/php"}


def probe(**extra):
    found = {"store": "file", "driver": "file", "ok": True, "utc_offset": 0, "base": "/srv/shop/releases/r1",
             "data": "/srv/shared/storage/framework/cache/data"}
    found.update(extra)
    return found


def test_a_shared_store_passes():
    assert module.cache_problem(APP, probe()) is None
    assert module.cache_problem(APP, probe(driver="redis", store="redis", data=None)) is None


@pytest.mark.parametrize("found, words", [
    (probe(data="/srv/shop/releases/r1/storage/framework/cache/data"),
     ["app shop", "inside the release /srv/shop/releases/r1 that /srv/shop/current points to", "Share it between releases"]),
    (probe(driver="database", store="database", data="/srv/shop/releases/r1/database/database.sqlite"),
     ["keeps its data in /srv/shop/releases/r1/database/database.sqlite", "storage/ and database/"]),
    (probe(driver="array", store="array", data=None), ["the array driver, which keeps nothing between processes"]),
    (probe(ok=False), ["does not keep what is put in it"]),
], ids=["file-in-release", "sqlite-in-release", "array", "not-ok"])
def test_a_store_the_signal_cannot_reach_every_worker_through_is_named(found, words):
    problem = module.cache_problem(APP, found)
    assert problem and all(word in problem for word in words), problem


def test_the_report_names_each_busy_worker_with_its_job():
    recycled = {"a:a_00": {"state": "recycled", "pid_before": 1, "pid_after": 2, "job": None, "job_age_seconds": None},
                "v:v_00": {"state": "busy", "pid_before": 7, "pid_after": 7, "job": "App\\Jobs\\Encode",
                           "job_age_seconds": 42}}
    assert recycling.report_lines(recycled, 120) == [
        "1 of 2 worker processes run the new code; still busy with a job after 120 s (each recycles when its job ends):",
        "v:v_00 (pid 7) busy with App\\Jobs\\Encode running for 42 s"]
