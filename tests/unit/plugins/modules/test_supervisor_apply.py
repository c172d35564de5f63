"""supervisor_apply: reread/update parsing, and putting refused files back.

supervisorctl is mocked at the argv level with output copied from supervisor 4.2.5;
the files restored are real files in a temporary directory.
"""

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.elms.queue_workers.plugins.modules import supervisor_apply as sa

CTL = "/usr/bin/supervisorctl"
CONF = "/etc/supervisor/supervisord.conf"
REFUSED_OURS = ("ERROR: CANT_REREAD: The directory named as part of the path /nonexist/x.log does not exist in "
                "section 'program:elms-video-worker' (file: '%s')\n")
REFUSED_FOREIGN = ("ERROR: CANT_REREAD: Source contains parsing errors: '/etc/supervisor/conf.d/bad.conf'\n"
                   "\t[line  2]: 'garbage line\\n'\n")


class Exit(Exception):
    pass


def run_module(monkeypatch, args, outputs, check_mode=False):
    """Run main() with args; outputs maps the supervisorctl verb to a list of (rc, out, err)."""
    calls = []
    args = dict(args, _ansible_check_mode=check_mode)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    if hasattr(basic, "_ANSIBLE_PROFILE"):  # ansible-core 2.19+ decodes arguments by profile
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")

    def run_command(self, argv, environ_update=None, **kwargs):
        assert argv[:3] == [CTL, "-c", CONF] and environ_update["LC_ALL"] == "C"
        calls.append(argv[3])
        return outputs[argv[3]].pop(0)

    def leave(self, **result):
        raise Exit(result)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", leave)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", lambda self, **r: leave(self, failed=True, **r))
    with pytest.raises(Exit) as done:
        sa.main()
    return done.value.args[0], calls


BASE = {"supervisorctl_path": CTL, "config_file": CONF}


def test_update_reports_groups_and_changed(monkeypatch):
    result, calls = run_module(monkeypatch, BASE, {
        "reread": [(0, "elms-default-worker: changed\nnew-worker: available\n", "")],
        "update": [(0, "elms-default-worker: stopped\nelms-default-worker: updated process group\n"
                       "new-worker: added process group\n", "")],
    })
    assert calls == ["reread", "update"]
    assert result["changed"] is True
    assert result["update"] == {"added": ["new-worker"], "updated": ["elms-default-worker"], "removed": []}


def test_no_change_runs_update_but_reports_unchanged(monkeypatch):
    result, _calls = run_module(monkeypatch, BASE, {
        "reread": [(0, "No config updates to processes\n", "")], "update": [(0, "", "")]})
    assert result["changed"] is False


def test_check_mode_never_updates(monkeypatch):
    result, calls = run_module(monkeypatch, BASE, {"reread": [(0, "x: available\n", "")]}, check_mode=True)
    assert calls == ["reread"] and result["changed"] is True


def test_check_only_lists_groups_and_changes_nothing(monkeypatch):
    result, calls = run_module(monkeypatch, dict(BASE, check_only=True), {
        "reread": [(0, "No config updates to processes\n", "")],
        "avail": [(0, "admin-heartbeat                  in use    auto      999:999\n"
                      "elms-video-worker:elms-video-worker_00 in use auto 999:999\n", "")]})
    assert calls == ["reread", "avail"]
    assert result["groups"] == ["admin-heartbeat", "elms-video-worker"] and result["changed"] is False


def test_refused_new_file_is_removed_and_named(monkeypatch, tmp_path):
    new = tmp_path / "elms-video-worker.conf"
    new.write_text("[program:elms-video-worker]\n")
    result, calls = run_module(monkeypatch, dict(BASE, rollback=[{"path": str(new)}]), {
        "reread": [(1, REFUSED_OURS % new, ""), (0, "No config updates to processes\n", "")]})
    assert result["failed"] and not new.exists()
    assert calls == ["reread", "reread"]
    assert "refused the program file(s) this run wrote" in result["msg"] and "/nonexist/x.log" in result["msg"]
    assert result["refused_file"] == str(new)


def test_refused_changed_file_gets_its_previous_version_back(monkeypatch, tmp_path):
    path, backup = tmp_path / "w.conf", tmp_path / "w.conf.123.2026~"
    path.write_text("new\n")
    backup.write_text("old\n")
    result, _calls = run_module(monkeypatch, dict(BASE, rollback=[{"path": str(path), "backup": str(backup)}]), {
        "reread": [(1, REFUSED_OURS % path, ""), (0, "No config updates to processes\n", "")]})
    assert result["failed"] and path.read_text() == "old\n" and not backup.exists()


def test_foreign_broken_file_is_named_with_the_fix(monkeypatch):
    result, calls = run_module(monkeypatch, BASE, {"reread": [(1, REFUSED_FOREIGN, "")]})
    assert result["failed"] and calls == ["reread"]
    assert "/etc/supervisor/conf.d/bad.conf is not a file this collection wrote" in result["msg"]


def test_foreign_broken_file_found_after_writing_puts_ours_back_too(monkeypatch, tmp_path):
    ours = tmp_path / "w.conf"
    ours.write_text("[program:w]\n")
    result, calls = run_module(monkeypatch, dict(BASE, rollback=[{"path": str(ours)}]), {
        "reread": [(1, REFUSED_FOREIGN, ""), (1, REFUSED_FOREIGN, "")]})
    assert result["failed"] and not ours.exists()
    assert "not a file this collection wrote" in result["msg"] and "put back" in result["msg"]


def test_backups_are_removed_once_supervisor_accepted_the_files(monkeypatch, tmp_path):
    path, backup = tmp_path / "w.conf", tmp_path / "w.conf.1.2026~"
    path.write_text("new\n")
    backup.write_text("old\n")
    result, _calls = run_module(monkeypatch, dict(BASE, rollback=[{"path": str(path), "backup": str(backup)}]), {
        "reread": [(0, "w: changed\n", "")], "update": [(0, "w: stopped\nw: updated process group\n", "")]})
    assert result["changed"] and not backup.exists() and path.read_text() == "new\n"


@pytest.mark.parametrize("rc, out, err, refused", [
    pytest.param(0, "No config updates to processes\n", "", False, id="clean"),
    pytest.param(1, REFUSED_FOREIGN, "", True, id="cant-reread-4x"),
    pytest.param(0, "ERROR: CANT_REREAD: x\n", "", True, id="cant-reread-old-exit-0"),
    pytest.param(7, "", "unix:///var/run/supervisor.sock no such file\n", True, id="socket-missing"),
])
def test_refusal(rc, out, err, refused):
    assert bool(sa.refusal(rc, out, err)) is refused
