"""aaPanel: the panel's supervisor is used as it is, and its own program is untouched."""

import pytest

from conftest import assert_file_untouched, assert_process_kept

pytestmark = pytest.mark.layout("aapanel")

PANEL_FILE = "/www/server/panel/plugin/supervisor/profile/panel-task.ini"
PANEL_PROCESS = "panel-task:panel-task_00"


def test_no_supervisorctl_on_path(host):
    assert host.run("command -v supervisorctl").rc != 0


def test_debian_supervisor_was_not_installed_beside_the_panels(host):
    assert not host.package("supervisor").is_installed


def test_workers_run_under_the_panels_supervisord(host, supervisor_status, supervisord_argv):
    pid = supervisor_status()["elms-video-worker:elms-video-worker_00"][1]
    parent = host.run("ps -o ppid= -p %s" % pid).stdout.strip()
    supervisord_pid = host.run("/www/server/panel/pyenv/bin/supervisorctl -c /etc/supervisor/supervisord.conf pid").stdout.strip()
    assert parent == supervisord_pid
    assert supervisord_argv[1] == "/www/server/panel/pyenv/bin/supervisord"


def test_panel_program_is_still_running(supervisor_status):
    assert supervisor_status()["panel-task:panel-task_00"][0] == "RUNNING"


def test_panel_program_file_is_untouched(host):
    assert "Managed by Ansible" not in host.file(PANEL_FILE).content_string


def test_panel_shows_our_program_names(supervisor_status):
    # The panel names a program by the text before the first '_' of its process name.
    shown = {process.split(":")[-1].split("_")[0] for process in supervisor_status()}
    assert {"elms-default-worker", "elms-video-worker"} <= shown


@pytest.mark.before_changes
def test_panel_program_file_is_byte_for_byte_the_same(baseline, after_deploy):
    assert_file_untouched(baseline, after_deploy, PANEL_FILE)


@pytest.mark.before_changes
def test_panel_program_keeps_its_process_id(baseline, after_deploy):
    assert_process_kept(baseline, after_deploy, PANEL_PROCESS)
