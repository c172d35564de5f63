"""Alpine's layout: the include directory is created, the config keeps its mode."""

import pytest

pytestmark = pytest.mark.layout("alpine")


def test_include_directory_was_created_root_owned(host):
    include_dir = host.file("/etc/supervisor.d")
    assert include_dir.is_directory and include_dir.user == "root" and include_dir.mode == 0o755


def test_config_keeps_mode_600(host):
    assert host.file("/etc/supervisord.conf").mode == 0o600


def test_supervisord_runs_with_the_long_option(supervisord_argv):
    assert supervisord_argv[-2:] == ["--configuration", "/etc/supervisord.conf"]
