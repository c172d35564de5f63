"""Two globs: the first DIR/*.EXT wins, the admin's program in the second is untouched."""

import pytest

from conftest import assert_file_untouched, assert_process_kept

pytestmark = pytest.mark.layout("custom")

ADMIN_FILE = "/etc/supervisor/conf.d/admin-heartbeat.conf"


def test_admin_program_still_runs(supervisor_status):
    assert supervisor_status()["admin-heartbeat"][0] == "RUNNING"


def test_nothing_written_beside_the_admins_program(host):
    assert host.run("ls /etc/supervisor/conf.d/").stdout.split() == ["admin-heartbeat.conf"]


@pytest.mark.before_changes
def test_admin_program_file_is_byte_for_byte_the_same(baseline, after_deploy):
    assert_file_untouched(baseline, after_deploy, ADMIN_FILE)


@pytest.mark.before_changes
def test_admin_program_keeps_its_process_id(baseline, after_deploy):
    assert_process_kept(baseline, after_deploy, "admin-heartbeat")
