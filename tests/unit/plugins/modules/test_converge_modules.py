"""supervisor_programs (the converge/write step) and supervisor_apply (its handler), run whole.

Each test gets a real supervisord of its own (the one pinned in requirements-dev.txt), with a
config in a temporary directory, an include directory conf.d/*.conf and a program of someone
else (qw-mod-other, no marker) that must never be touched. The modules' main() run in-process the
way Ansible's own module tests do: arguments patched in, the JSON printed on exit read back.
"""

import json
import os
import shutil
import stat
import sys
import time
import uuid
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.elms.queue_workers.plugins.modules import supervisor_apply
from ansible_collections.elms.queue_workers.plugins.modules import queue_workers_recycle
from ansible_collections.elms.queue_workers.plugins.modules import supervisor_programs

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19
    import contextlib

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode("utf-8")
        with mock.patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield


OWNER = "test.owner"
MARKER = "; Managed by Ansible (%s).\n" % OWNER
NAME = "qw-mod-ours"
OTHER = "qw-mod-other"
SLEEP = "/bin/sleep 1000"
DOWN = ("STOPPED", "EXITED", "FATAL")

OTHER_CONF = """\
[program:{name}]
command={command}
startsecs=1
"""


def program_text(name=NAME, command=SLEEP, extra=""):
    return "%s[program:%s]\ncommand=%s\nstartsecs=1\n%s" % (MARKER, name, command, extra)


def failing_text(name=NAME):
    return program_text(name, "/bin/false", "startretries=1\n")


def wait_for(check, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


class Supervisord:
    """The test's supervisord (tests/unit/conftest.py's real_supervisord, including conf.d/*.conf, with someone
    else's program in it), and what it runs, read independently of the modules."""

    def __init__(self, server):
        self.server = server
        self.config = server.config
        self.include = os.path.join(server.here, "conf.d")
        self.backups = os.path.join(server.here, "backups")
        self.client = rpc.connect(self.config)

    def path(self, name):
        return os.path.join(self.include, name + ".conf")

    def stop(self):
        self.server.stop()

    # What supervisord runs, read independently of the modules.
    def info(self, name=NAME):
        return dict((p["group"], p) for p in self.client.processes()).get(name)

    def groups(self):
        return set(p["group"] for p in self.client.processes())

    def running(self, name=NAME):
        return wait_for(lambda: (self.info(name) or {}).get("statename") == "RUNNING" and self.info(name)["pid"])


@pytest.fixture
def sv(real_supervisord):
    server = real_supervisord(files={"conf.d/%s.conf" % OTHER: OTHER_CONF.format(name=OTHER, command=SLEEP)},
                              include="conf.d/*.conf", prefix="elms-mod-")
    started = Supervisord(server)
    assert started.running(OTHER), "the other program did not start"
    return started


@pytest.fixture
def run(capsys, monkeypatch):
    """run(module, args, check_mode=False, diff=False) -> the module's result dict."""
    # get_bin_path must find the venv's supervisord when none runs (the not-running case).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))

    def call(module, args, check_mode=False, diff=False):
        capsys.readouterr()
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        # As in a module's own process: once any test of this process has imported the controller's code,
        # ansible-core sends module.warn() to the controller's display instead of the result.
        with patch_module_args(args), mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
                mock.patch.object(module_utils_internal, "is_controller", False):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        return json.loads(out)
    return call


def converge(run, sv, programs, check_mode=False, diff=False, **extra):
    args = dict(owner=OWNER, programs=programs, config_file=sv.config, backup_dir=sv.backups)
    args.update(extra)
    return run(supervisor_programs, args, check_mode=check_mode, diff=diff)


def apply(run, sv, converged, **extra):
    args = dict(config_file=sv.config, programs=converged["apply"], rollback=converged["rollback"], wait_timeout=30)
    args.update(extra)
    return run(supervisor_apply, args)


def ours(content=None, **extra):
    entry = dict(name=NAME, content=program_text() if content is None else content)
    entry.update(extra)
    return entry


def read(path):
    with open(path) as handle:
        return handle.read()


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o644)


def rollback_of(result):
    """The rollback entries' path, backup and new (the keys supervisor_apply acts on)."""
    return [dict((k, e.get(k)) for k in ("path", "backup", "new")) for e in result["rollback"]]


def warning_texts(result):
    """The module's warnings as text (ansible-core 2.19 returns each as a serialized WarningSummary)."""
    texts = []
    for warning in result.get("warnings", []):
        if isinstance(warning, dict):
            warning = (warning.get("event") or {}).get("msg") or warning.get("msg") or ""
        texts.append(warning)
    return texts


def kept_backups(sv):
    return sorted(os.listdir(sv.backups)) if os.path.isdir(sv.backups) else []


def installed(run, sv, content=None):
    """Write and apply our program; returns its pid."""
    result = converge(run, sv, [ours(content)])
    assert not result.get("failed"), result.get("msg")
    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    return sv.running()


# 1
def test_check_mode_on_an_empty_include_dir_writes_nothing(run, sv):
    result = converge(run, sv, [ours()], check_mode=True)

    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["pending"] is True
    assert result["programs"][NAME]["action"] == "added"
    assert not os.path.exists(sv.path(NAME))
    assert os.listdir(sv.include) == [OTHER + ".conf"]
    assert NAME not in sv.groups()


# 2
def test_write_apply_then_nothing_to_do(run, sv):
    result = converge(run, sv, [ours()])
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["programs"][NAME]["action"] == "added"
    assert rollback_of(result) == [{"path": sv.path(NAME), "backup": None, "new": True}]
    info = os.stat(sv.path(NAME))
    assert stat.S_IMODE(info.st_mode) == 0o644 and info.st_uid == 0 and info.st_gid == 0
    assert read(sv.path(NAME)) == program_text()

    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["changed"] is True and applied["added"] == [NAME]
    assert sv.info()["statename"] == "RUNNING"
    pid = applied["pids"][NAME]["after"]["%s:%s" % (NAME, NAME)]
    assert pid and pid == sv.info()["pid"]

    again = converge(run, sv, [ours()])
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False and again["pending"] is False
    assert again["programs"][NAME]["action"] == "unchanged"
    assert again["apply"] == [] and again["rollback"] == []


# 3
def test_changed_file_restarts_only_our_group(run, sv):
    other_pid = sv.running(OTHER)
    old_pid = installed(run, sv)

    result = converge(run, sv, [ours(program_text(extra="stopwaitsecs=5\n"))])
    assert result["programs"][NAME]["action"] == "changed"
    assert result["changed"] is True
    applied = apply(run, sv, result)

    assert not applied.get("failed"), applied.get("msg")
    assert applied["updated"] == [NAME] and applied["added"] == [] and applied["removed"] == []
    new_pid = sv.running()
    assert new_pid and new_pid != old_pid
    assert applied["pids"][NAME]["before"] == {"%s:%s" % (NAME, NAME): old_pid}
    assert applied["pids"][NAME]["after"] == {"%s:%s" % (NAME, NAME): new_pid}
    assert sv.info(OTHER)["pid"] == other_pid
    assert kept_backups(sv) == []  # the previous version is forgotten once the new one runs


# 4
def test_written_but_not_applied_is_pending(run, sv):
    old_pid = installed(run, sv)
    newer = program_text(extra="stopwaitsecs=7\n")
    write(sv.path(NAME), newer)  # as if an earlier run wrote it and its handler never ran

    result = converge(run, sv, [ours(newer)])
    assert not result.get("failed"), result.get("msg")
    assert result["programs"][NAME]["action"] == "pending"
    assert result["changed"] is True and result["pending"] is True
    assert [e["name"] for e in result["apply"]] == [NAME]

    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["updated"] == [NAME]
    new_pid = sv.running()
    assert new_pid and new_pid != old_pid
    assert read(sv.path(NAME)) == newer


# 5
def test_stopped_process_is_started(run, sv):
    installed(run, sv)
    sv.client.stop_process("%s:%s" % (NAME, NAME))
    assert sv.info()["statename"] == "STOPPED"

    result = converge(run, sv, [ours()])
    assert result["programs"][NAME]["action"] == "started"
    assert result["changed"] is True and result["pending"] is True
    applied = apply(run, sv, result)

    assert not applied.get("failed"), applied.get("msg")
    assert applied["started"] == ["%s:%s" % (NAME, NAME)]
    assert sv.info()["statename"] == "RUNNING"


# 6
def test_stopped_then_absent(run, sv):
    installed(run, sv)

    result = converge(run, sv, [ours(state="stopped")])
    assert result["programs"][NAME]["action"] == "stopped"
    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["stopped"] == ["%s:%s" % (NAME, NAME)]
    assert sv.info()["statename"] == "STOPPED"

    result = converge(run, sv, [dict(name=NAME, state="absent")])
    assert not result.get("failed"), result.get("msg")
    assert result["programs"][NAME]["action"] == "removed" and result["changed"] is True
    assert not os.path.exists(sv.path(NAME))
    backups = kept_backups(sv)
    assert len(backups) == 1 and backups[0].startswith(NAME + ".conf.")
    assert read(os.path.join(sv.backups, backups[0])) == program_text()
    assert rollback_of(result) == [{"path": sv.path(NAME), "backup": os.path.join(sv.backups, backups[0]), "new": False}]
    assert NAME in sv.groups()  # not applied yet

    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["removed"] == [NAME]
    assert NAME not in sv.groups()
    assert kept_backups(sv) == []
    assert OTHER in sv.groups()


# 7
def test_foreign_file_of_the_same_name(run, sv):
    foreign = "[program:%s]\ncommand=%s\nstartsecs=1\nstopwaitsecs=3\n" % (NAME, SLEEP)
    write(sv.path(NAME), foreign)
    sv.client.reload_config()
    sv.client.add_group(NAME)
    foreign_pid = sv.running()

    result = converge(run, sv, [ours()])
    assert result.get("failed") is True
    assert sv.path(NAME) in result["msg"] and "someone else" in result["msg"]
    assert read(sv.path(NAME)) == foreign
    assert kept_backups(sv) == []

    result = converge(run, sv, [ours()], take_over=True)
    assert not result.get("failed"), result.get("msg")
    assert result["programs"][NAME]["action"] == "changed"
    assert read(sv.path(NAME)) == program_text()
    backups = kept_backups(sv)
    assert len(backups) == 1 and read(os.path.join(sv.backups, backups[0])) == foreign
    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["updated"] == [NAME]
    assert sv.running() != foreign_pid


# 8
def test_changed_program_that_cannot_start_is_rolled_back(run, sv):
    old_pid = installed(run, sv)

    result = converge(run, sv, [ours(failing_text())])
    assert result["programs"][NAME]["action"] == "changed"
    assert read(sv.path(NAME)) == failing_text()
    applied = apply(run, sv, result)

    assert applied.get("failed") is True
    assert NAME in applied["msg"] and "previous version was put back and runs again" in applied["msg"]
    assert applied["rolled_back"] == [sv.path(NAME)]
    assert NAME in applied["not_running"]
    assert read(sv.path(NAME)) == program_text()
    assert kept_backups(sv) == []
    new_pid = sv.running()
    assert new_pid and new_pid != old_pid
    assert sv.info()["statename"] == "RUNNING"
    # The previous version is what supervisord runs now: nothing left to apply.
    again = converge(run, sv, [ours()])
    assert again["programs"][NAME]["action"] == "unchanged" and again["pending"] is False


def test_new_program_that_cannot_start_is_stopped(run, sv):
    result = converge(run, sv, [ours(failing_text())])
    assert result["programs"][NAME]["action"] == "added"
    applied = apply(run, sv, result)

    assert applied.get("failed") is True
    assert NAME in applied["msg"] and "it is new" in applied["msg"]
    assert applied["rolled_back"] == []
    assert sv.info()["statename"] in DOWN
    time.sleep(1.5)  # nothing brings it back up
    assert sv.info()["statename"] in DOWN
    assert sv.info(OTHER)["statename"] == "RUNNING"


# 9
def test_refused_file_is_put_back_and_nothing_applied(run, sv):
    old_pid = installed(run, sv)
    refused = program_text(extra="stdout_logfile=/nonexistent/dir/x.log\n")

    result = converge(run, sv, [ours(refused)])
    assert not result.get("failed"), result.get("msg")
    assert read(sv.path(NAME)) == refused
    applied = apply(run, sv, result)

    assert applied.get("failed") is True
    assert "refused" in applied["msg"] and sv.path(NAME) in applied["msg"]
    assert applied["rolled_back"] == [sv.path(NAME)]
    assert applied["updated"] == [] and applied["added"] == [] and applied["removed"] == []
    assert read(sv.path(NAME)) == program_text()
    assert sv.info()["pid"] == old_pid and sv.info()["statename"] == "RUNNING"
    assert sv.client.reload_config() == ([], [], [])


# 10
def test_broken_foreign_file_blocks_writes_only(run, sv):
    broken = sv.path("qw-mod-broken")
    write(broken, "[program:qw-mod-broken]\nthis line is no option\n")

    result = converge(run, sv, [ours()])
    assert result.get("failed") is True
    assert broken in result["msg"] and "Nothing was written" in result["msg"]
    assert not os.path.exists(sv.path(NAME))

    os.unlink(broken)
    pid = installed(run, sv)
    write(broken, "[program:qw-mod-broken]\nthis line is no option\n")
    result = converge(run, sv, [ours()])
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["programs"][NAME]["action"] == "unchanged"
    assert broken in result["warnings_blocked"]
    assert any("cannot read its config" in w and broken in w for w in warning_texts(result))
    assert sv.info()["pid"] == pid


# 11
def test_diff_hides_environment_values(run, sv):
    # A value no path or process name on the machine can contain by chance.
    secret = "s3cr3t-%s" % uuid.uuid4().hex
    text = program_text(extra='environment=SECRET="%s"\n' % secret)
    result = converge(run, sv, [ours(text)], diff=True)

    assert not result.get("failed"), result.get("msg")
    assert read(sv.path(NAME)) == text
    diff = json.dumps(result["diff"])
    assert "(values hidden)" in diff and secret not in diff
    assert NAME in diff  # the rest of the file is shown
    dumped = json.dumps(result)
    assert secret not in dumped
    assert text not in dumped and json.dumps(text)[1:-1] not in dumped


# 12
def test_supervisord_not_running_is_reported(run, sv):
    installed(run, sv)
    sv.stop()

    result = converge(run, sv, [ours()], include_dir=sv.include, include_extension="conf")
    assert not result.get("failed"), result.get("msg")
    assert result["supervisord_running"] is False
    assert result["pending"] is True and result["changed"] is True
    assert [e["name"] for e in result["apply"]] == [NAME]
    assert read(sv.path(NAME)) == program_text()


# 13
def test_requirements_fail_before_writing(run, sv, tmp_path):
    missing_file = str(tmp_path / "no-such-file")
    require = [
        dict(kind="user", value="qw-no-such-user", msg="the user qw-no-such-user does not exist"),
        dict(kind="file", value=missing_file, msg="%s is missing" % missing_file),
    ]
    result = converge(run, sv, [ours()], require=require)

    assert result.get("failed") is True
    assert "the user qw-no-such-user does not exist" in result["msg"]
    assert "%s is missing" % missing_file in result["msg"]
    assert result["errors"] == [r["msg"] for r in require]
    assert not os.path.exists(sv.path(NAME))
    assert kept_backups(sv) == []


def test_extra_files_are_written_hidden_and_removed(run, sv, tmp_path):
    secret = "https://hooks.example.org/T0KEN-extra"
    config = str(tmp_path / "etc" / "alerts.json")
    wanted = [dict(path=config, content='{"url": "%s"}\n' % secret, mode="0600")]
    result = converge(run, sv, [ours()], extra_files=wanted, diff=True)
    assert not result.get("failed"), result.get("msg")
    assert result["extra_files"] == {config: {"action": "added"}}
    assert read(config) == '{"url": "%s"}\n' % secret and stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert secret not in json.dumps(result)
    apply(run, sv, result)

    again = converge(run, sv, [ours()], extra_files=wanted)
    assert again["changed"] is False and again["extra_files"] == {config: {"action": "unchanged"}}
    os.chmod(config, 0o644)
    assert converge(run, sv, [ours()], extra_files=wanted)["extra_files"][config]["action"] == "changed"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600

    gone = converge(run, sv, [ours()], extra_files=[dict(path=config, state="absent")], check_mode=True)
    assert gone["extra_files"][config]["action"] == "removed" and os.path.exists(config)
    gone = converge(run, sv, [ours()], extra_files=[dict(path=config, state="absent")])
    assert gone["changed"] is True and not os.path.exists(config)


def test_each_owner_keeps_its_programs_and_a_name_of_another_is_refused(run, sv):
    app_a, app_b = OWNER + "/a", OWNER + "/b"

    def text(owner, name):
        return "; Managed by Ansible (%s).\n[program:%s]\ncommand=%s\nstartsecs=1\n" % (owner, name, SLEEP)
    both = converge(run, sv, [dict(name="qw-a", owner=app_a, content=text(app_a, "qw-a")),
                              dict(name="qw-b", owner=app_b, content=text(app_b, "qw-b"))])
    assert not both.get("failed"), both.get("msg")
    apply(run, sv, both)
    pid_b = sv.running("qw-b")

    # Owner a alone, with nothing left: a's program goes, b's stays with its pid.
    only_a = converge(run, sv, [], owners=[app_a])
    assert sorted(only_a["programs"]) == ["qw-a"] and only_a["programs"]["qw-a"]["action"] == "removed"
    apply(run, sv, only_a)
    assert "qw-a" not in sv.groups() and sv.running("qw-b") == pid_b

    stolen = converge(run, sv, [dict(name="qw-b", owner=app_a, content=text(app_a, "qw-b"))], take_over=True)
    assert stolen.get("failed") and "already belongs to %s" % app_b in stolen["msg"]
    assert read(sv.path("qw-b")) == text(app_b, "qw-b")


def test_recycle_items_run_their_command_or_restart_through_supervisor(run, sv, tmp_path):
    old_pid = installed(run, sv)
    marker = tmp_path / "asked"
    programs = [dict(name=NAME, state="started", stopwaitsecs=10)]
    # Through supervisor (a scheduler's way): a stop and a start, so a new pid. The items are what the
    # role's plan gives, so that the module takes them as they are.
    items = queue_apps.recycle_plan([{"name": "a", "programs": [{"name": NAME, "kind": "schedule"}]}],
                                    {"app_dir": str(tmp_path), "php": "/usr/bin/php", "user": "root"})
    assert [item["command"] for item in items] == [None]
    result = run(queue_workers_recycle, dict(config_file=sv.config, programs=programs, wait_timeout=30, recycle=items))
    assert not result.get("failed"), result.get("msg")
    entry = result["recycled"]["%s:%s" % (NAME, NAME)]
    assert entry["state"] == "recycled" and entry["pid_before"] == old_pid and entry["pid_after"] != old_pid
    assert result["report"] == ["All 1 worker processes run the new code (each recycled after its job)."]
    # A command that does not make the program exit: it is idle under its old pid, and the run fails naming it.
    pid = sv.running()
    failed = run(queue_workers_recycle, dict(config_file=sv.config, programs=programs, wait_timeout=3,
                                             recycle=[dict(command=["touch", str(marker)], chdir=str(tmp_path),
                                                           programs=[NAME])]))
    assert failed.get("failed") and marker.exists()
    assert failed["recycled"]["%s:%s" % (NAME, NAME)]["pid_after"] == pid
    assert "is idle under its old pid %d: it never saw the restart signal" % pid in failed["msg"]
    unknown = run(queue_workers_recycle, dict(config_file=sv.config, programs=programs,
                                              recycle=[dict(programs=["nope"])]))
    assert unknown.get("failed") and "not in programs: nope" in unknown["msg"]
    # Check mode asks no worker anything.
    pid = sv.running()
    would = run(queue_workers_recycle, dict(config_file=sv.config, programs=programs, recycle=items), check_mode=True)
    assert would["changed"] and not would.get("failed") and sv.running() == pid


def test_the_restart_checks_each_app_cache_store_before_asking_any_worker(run, sv, tmp_path):
    """A broken app (php cannot boot it) fails the restart, naming the app and php's own words; no worker recycles."""
    pid = installed(run, sv)
    app = tmp_path / "app"
    app.mkdir()
    (app / "bootstrap").mkdir()
    (app / "bootstrap" / "app.php").write_text("<?php broken(\n")
    apps = [dict(name="elms", dir=str(app), user="root", php="/bin/false")]
    programs = [dict(name=NAME, state="started", stopwaitsecs=10)]
    items = [dict(command=["true"], chdir=str(app), programs=[NAME])]
    failed = run(queue_workers_recycle, dict(config_file=sv.config, apps=apps, programs=programs, recycle=items,
                                             wait_timeout=5))
    assert failed.get("failed") and failed["msg"].startswith("app elms: its cache store could not be checked"), failed
    assert sv.running() == pid and failed["recycled"] == {}


def test_a_host_without_supervisor_is_reported_and_the_rollout_says_why(run, tmp_path, monkeypatch):
    """The rollout's outcome read from the result the module itself returns (not a hand-made dict)."""
    from ansible_collections.elms.queue_workers.plugins.module_utils import rollout
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run(supervisor_programs, dict(owner=OWNER, programs=[], not_ready="report",
                                           config_file=str(tmp_path / "absent" / "supervisord.conf"),
                                           backup_dir=str(tmp_path / "backups")), check_mode=True)
    assert not result.get("failed") and result["ready"] is False and result["problems"], result
    would = rollout.outcome("site", result=result, check_mode=True)
    assert would["status"] == "changed"
    assert would["reason"] == "supervisor is not ready: %s" % "; ".join(result["problems"])
    assert "not installed" in would["reason"] or "include directory" in would["reason"]
    left_out = rollout.outcome("site", result=result)
    assert left_out["status"] == "unchanged" and left_out["reason"] == would["reason"]


def test_a_program_whose_file_vanished_is_written_back_and_keeps_its_pid(run, sv):
    """A wiped include directory (or one removed file): the next converge writes the file back; supervisord then runs
    the group unchanged, so the apply restarts nothing."""
    pid = installed(run, sv)
    shutil.rmtree(sv.include)
    result = converge(run, sv, [ours()])
    assert not result.get("failed"), result.get("msg")
    entry = result["programs"][NAME]
    assert entry["action"] == "added" and "written back" in " ".join(entry["reasons"]), entry
    assert read(sv.path(NAME)) == program_text()
    applied = apply(run, sv, result)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["updated"] == [] and applied["removed"] == [] and sv.running() == pid
    again = converge(run, sv, [ours()])
    assert again["programs"][NAME]["action"] == "unchanged" and not again["pending"]


def test_a_changed_program_whose_file_vanished_is_written_back_and_applied(run, sv):
    pid = installed(run, sv)
    os.unlink(sv.path(NAME))
    changed = program_text(extra="startretries=5\n")
    result = converge(run, sv, [ours(changed)])
    assert not result.get("failed"), result.get("msg")
    applied = apply(run, sv, result)
    assert not applied.get("failed") and applied["updated"] == [NAME], applied
    assert sv.running() not in (None, pid)


def test_a_vanished_group_of_another_app_is_not_written_back(run, sv):
    """The group's processes run another binary than this program's: another app's, refused, nothing written."""
    pid = installed(run, sv)
    os.unlink(sv.path(NAME))
    other_app = program_text(command="/bin/sh -c 'exec sleep 3600'")
    result = converge(run, sv, [ours(other_app)])
    assert result.get("failed") and "whose file is gone" in result["msg"] and "not this program's" in result["msg"]
    assert not os.path.exists(sv.path(NAME)) and sv.running() == pid
