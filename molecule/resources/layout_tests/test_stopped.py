"""A stopped, disabled supervisor is started and enabled by the role."""

import pytest

pytestmark = pytest.mark.layout("stopped")


def test_supervisor_is_running_and_enabled(host):
    assert host.service("supervisor").is_running
    assert host.service("supervisor").is_enabled
