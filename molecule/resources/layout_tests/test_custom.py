"""Two globs: the first DIR/*.EXT wins, the admin's program in the second is untouched."""


def test_admin_program_still_runs(supervisor_status):
    assert supervisor_status()["admin-heartbeat"][0] == "RUNNING"


def test_nothing_written_beside_the_admins_program(host):
    assert host.run("ls /etc/supervisor/conf.d/").stdout.split() == ["admin-heartbeat.conf"]
