"""RHEL's layout made by the pip method: venv, config, unit, socket."""

import pytest

pytestmark = pytest.mark.layout("rhel")


def test_supervisor_runs_from_the_virtualenv(host):
    assert host.file("/opt/supervisor/bin/supervisord").is_file
    assert not host.package("supervisor").is_installed


def test_service_is_named_supervisord_and_enabled(host):
    assert host.service("supervisord").is_running
    assert host.service("supervisord").is_enabled


def test_socket_is_under_run_supervisor(host):
    assert host.file("/run/supervisor/supervisor.sock").is_socket


def test_config_includes_supervisord_d_relatively(host):
    assert "files = supervisord.d/*.ini" in host.file("/etc/supervisord.conf").content_string
