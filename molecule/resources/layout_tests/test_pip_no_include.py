"""A running pip supervisor without [include]: one is added and applied, no restart."""

import pytest

pytestmark = pytest.mark.layout("pip_no_include")


def test_supervisord_was_never_restarted(host, supervisord_argv):
    before = host.file("/root/supervisord.pid.before").content_string.strip()
    now = host.run("/opt/sv-pip/bin/supervisorctl -c /etc/supervisord.conf pid").stdout.strip()
    assert before and now == before


def test_include_was_added_to_the_config(host):
    assert "files = supervisord.d/*.ini" in host.file("/etc/supervisord.conf").content_string


def test_original_config_was_backed_up(host):
    backups = host.run("ls /etc/ | grep '^supervisord.conf\\..*~$'").stdout.split()
    assert len(backups) == 1
    assert "[include]\nfiles" not in host.file("/etc/" + backups[0]).content_string


def test_debian_package_was_not_installed(host):
    assert not host.package("supervisor").is_installed
