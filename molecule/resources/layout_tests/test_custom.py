"""Two globs: the first DIR/*.EXT wins, the admin's program in the second is untouched."""

import pytest

ADMIN_FILE = "/etc/supervisor/conf.d/admin-heartbeat.conf"


def test_admin_program_still_runs(supervisor_status):
    assert supervisor_status()["admin-heartbeat"][0] == "RUNNING"


def test_nothing_written_beside_the_admins_program(host):
    assert host.run("ls /etc/supervisor/conf.d/").stdout.split() == ["admin-heartbeat.conf"]


@pytest.mark.before_changes
def test_admin_program_file_is_byte_for_byte_the_same(baseline, after_deploy):
    assert ADMIN_FILE in baseline["snapshot"]["files"], "prepare recorded no %s" % ADMIN_FILE
    assert after_deploy["files"].get(ADMIN_FILE) == baseline["snapshot"]["files"][ADMIN_FILE]


@pytest.mark.before_changes
def test_admin_program_keeps_its_process_id(baseline, after_deploy):
    before = baseline["snapshot"]["programs"]["admin-heartbeat"]
    assert before["pid"] and after_deploy["programs"].get("admin-heartbeat") == before
