"""meta/runtime.yml claims exactly the ansible-core series the tests run."""

import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_requires_ansible_is_the_tested_series():
    pinned = re.search(r"^ansible-core==(\d+\.\d+)\.", open(os.path.join(ROOT, "requirements-dev.txt")).read(), re.M)
    assert pinned, "requirements-dev.txt must pin ansible-core"
    runtime = yaml.safe_load(open(os.path.join(ROOT, "meta", "runtime.yml")))
    assert runtime["requires_ansible"] == ">=%s.0" % pinned.group(1)
    for role in ("ffmpeg", "queue_workers", "supervisor"):
        meta = yaml.safe_load(open(os.path.join(ROOT, "roles", role, "meta", "main.yml")))
        assert meta["galaxy_info"]["min_ansible_version"] == pinned.group(1)
