"""Supervisor detection on a fake /proc and real config files, with run_command mocked at argv level.

The real thing runs in the Molecule scenarios; these cover choices and error paths
that a container cannot easily show (several supervisords, foreign namespaces, a
relative -c with a lost cwd, unreadable configs).
"""

import os

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_detect as sf

DEBIAN_CONF = """[unix_http_server]
file=/var/run/supervisor.sock
[supervisord]
[supervisorctl]
serverurl=unix:///var/run/supervisor.sock
[include]
files = %s
"""


class FakeModule:
    """Just what detect() uses of AnsibleModule; records every command it runs."""

    def __init__(self, params=None, bins=None, outputs=None):
        self.params = dict({"config_file": None, "supervisorctl_path": None, "include_dir": None,
                            "include_extension": None}, **(params or {}))
        self.bins = bins or {}
        self.outputs = outputs or {}
        self.commands = []

    def get_bin_path(self, name):
        return self.bins.get(name)

    def run_command(self, argv, environ_update=None):
        self.commands.append(list(argv))
        assert environ_update and environ_update.get("LC_ALL") == "C"
        return self.outputs.get(tuple(argv), (1, "", "not mocked"))

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs["msg"])


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A fake /proc; add(pid, argv, ...) creates one process."""
    root = tmp_path / "proc"
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink("mnt:[4026531840]", str(root / "self" / "ns" / "mnt"))
    monkeypatch.setattr(sf, "PROC", str(root))

    def add(pid, argv, cwd="/", env=None, ppid=1, ns="mnt:[4026531840]", unit="supervisor"):
        d = root / str(pid)
        (d / "ns").mkdir(parents=True)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (d / "environ").write_bytes(b"\0".join(("%s=%s" % kv).encode() for kv in (env or {}).items()))
        (d / "stat").write_text("%d (python3 (x)) S %d 1 1" % (pid, ppid))
        (d / "cgroup").write_text("0::/system.slice/%s.service\n" % unit)
        os.symlink(cwd, str(d / "cwd"))
        os.symlink(ns, str(d / "ns" / "mnt"))
        os.symlink(argv[0], str(d / "exe"))
    return add


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def executable(path):
    write(path, "#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_debian_running(proc, tmp_path):
    conf = write(tmp_path / "etc/supervisor/supervisord.conf", DEBIAN_CONF % "conf.d/*.conf")
    (tmp_path / "etc/supervisor/conf.d").mkdir()
    bindir = tmp_path / "usr/bin"
    supervisord = executable(bindir / "supervisord")
    ctl = executable(bindir / "supervisorctl")
    proc(460, ["/usr/bin/python3", supervisord, "-n", "-c", conf])
    module = FakeModule(outputs={(ctl, "-c", conf, "version"): (0, "4.2.5\n", "")})
    facts = sf.detect(module)
    assert facts["running"] and facts["pid"] == 460
    assert facts["config_file"] == conf and facts["config_source"] == "argv"
    assert facts["include_dir"] == str(tmp_path / "etc/supervisor/conf.d") and facts["include_extension"] == ".conf"
    assert facts["include_dir_exists"] is True
    assert facts["supervisorctl_path"] == ctl and facts["version"] == "4.2.5"
    assert facts["service_name"] == "supervisor"
    assert facts["problems"] == []


def test_every_key_is_always_returned(proc, tmp_path):
    facts = sf.detect(FakeModule())
    assert set(facts) == set(sf.empty_facts())
    assert facts["running"] is False
    assert any("not installed" in problem for problem in facts["problems"])


def test_supervisorctl_beside_the_panels_supervisord_wins_over_path(proc, tmp_path):
    conf = write(tmp_path / "etc/supervisor/supervisord.conf", DEBIAN_CONF % "/www/profile/*.ini")
    pyenv = tmp_path / "www/server/panel/pyenv/bin"
    supervisord = executable(pyenv / "supervisord")
    panel_ctl = executable(pyenv / "supervisorctl")
    path_ctl = executable(tmp_path / "usr/bin/supervisorctl")
    proc(700, [str(pyenv / "python3"), supervisord, "-c", conf], unit="supervisord")
    facts = sf.detect(FakeModule(bins={"supervisorctl": path_ctl}))
    assert facts["supervisorctl_path"] == panel_ctl
    assert facts["service_name"] == "supervisord"


def test_relative_config_resolved_against_the_process_cwd(proc, tmp_path):
    conf = write(tmp_path / "srv/sv/supervisord.conf", DEBIAN_CONF % "programs/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", "supervisord.conf"], cwd=str(tmp_path / "srv/sv"))
    facts = sf.detect(FakeModule())
    assert facts["config_file"] == conf
    assert facts["include_dir"] == str(tmp_path / "srv/sv/programs")
    assert facts["include_dir_exists"] is False


def test_no_config_option_uses_the_search_order_from_the_cwd(proc, tmp_path):
    conf = write(tmp_path / "srv/app/etc/supervisord.conf", DEBIAN_CONF % "/x/*.ini")
    proc(10, ["/usr/bin/supervisord", "-n"], cwd=str(tmp_path / "srv/app"))
    facts = sf.detect(FakeModule())
    assert (facts["config_file"], facts["config_source"]) == (conf, "search")


def test_env_expansion_uses_the_supervisord_process_environment(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", DEBIAN_CONF % "%(ENV_APP)s/sv/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", conf], env={"APP": "/srv/app"})
    assert sf.detect(FakeModule())["include_dir"] == "/srv/app/sv"


def test_processes_in_other_mount_namespaces_are_ignored(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", DEBIAN_CONF % "/x/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", conf], ns="mnt:[4026532999]")
    facts = sf.detect(FakeModule())
    assert facts["running"] is False and facts["processes"] == []


def test_forked_child_with_the_same_config_is_not_a_second_server(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", DEBIAN_CONF % "/x/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", conf])
    proc(11, ["/usr/bin/supervisord", "-c", conf], ppid=10)
    facts = sf.detect(FakeModule())
    assert facts["pid"] == 10 and "only supervisord" in facts["chosen_because"]


def test_two_servers_with_one_config_choose_the_lowest_pid_and_say_so(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", DEBIAN_CONF % "/x/*.conf")
    proc(30, ["/usr/bin/supervisord", "-c", conf])
    proc(20, ["/usr/bin/supervisord", "-c", conf])
    facts = sf.detect(FakeModule())
    assert facts["pid"] == 20 and "2 supervisord processes share" in facts["chosen_because"]


def test_two_servers_with_different_configs_fail_with_the_list(proc, tmp_path):
    one = write(tmp_path / "etc/one.conf", DEBIAN_CONF % "/x/*.conf")
    two = write(tmp_path / "etc/two.conf", DEBIAN_CONF % "/y/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", one])
    proc(20, ["/usr/bin/supervisord", "-c", two])
    with pytest.raises(RuntimeError) as failure:
        sf.detect(FakeModule())
    assert "pid 10" in str(failure.value) and "pid 20" in str(failure.value)
    assert "supervisor_config_file" in str(failure.value)


def test_config_file_option_selects_among_several(proc, tmp_path):
    one = write(tmp_path / "etc/one.conf", DEBIAN_CONF % "/x/*.conf")
    two = write(tmp_path / "etc/two.conf", DEBIAN_CONF % "/y/*.conf")
    proc(10, ["/usr/bin/supervisord", "-c", one])
    proc(20, ["/usr/bin/supervisord", "-c", two])
    facts = sf.detect(FakeModule({"config_file": two}))
    assert (facts["pid"], facts["include_dir"], facts["config_source"]) == (20, "/y", "option")


def test_not_running_finds_the_config_by_search_from_the_installed_binary(proc, tmp_path, monkeypatch):
    venv = tmp_path / "opt/venv"
    supervisord = executable(venv / "bin/supervisord")
    conf = write(venv / "etc/supervisord.conf", DEBIAN_CONF % "conf.d/*.ini")
    monkeypatch.setattr(sf, "KNOWN_SUPERVISORD", ())
    facts = sf.detect(FakeModule(bins={"supervisord": supervisord}))
    assert facts["running"] is False
    assert (facts["config_file"], facts["config_source"]) == (conf, "search")
    assert facts["include_dir"] == str(venv / "etc/conf.d")


def test_missing_include_is_a_problem_naming_the_variables(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", "[supervisord]\n[supervisorctl]\n")
    proc(10, ["/usr/bin/supervisord", "-c", conf])
    facts = sf.detect(FakeModule())
    assert facts["include_dir"] is None
    assert any("no [include] section" in p and "supervisor_include_dir" in p for p in facts["problems"])


def test_missing_supervisorctl_section_is_reported(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", "[unix_http_server]\nfile=/run/s.sock\n[supervisord]\n[include]\nfiles=/x/*.conf\n")
    proc(10, ["/usr/bin/supervisord", "-c", conf])
    facts = sf.detect(FakeModule())
    assert any("no [supervisorctl] section" in p and "serverurl=unix:///run/s.sock" in p for p in facts["problems"])


def test_relative_config_with_unreadable_cwd_is_reported(proc, tmp_path):
    proc(10, ["/usr/bin/supervisord", "-c", "s.conf"])
    os.unlink(os.path.join(sf.PROC, "10", "cwd"))
    facts = sf.detect(FakeModule())
    assert any("relative config" in p for p in facts["problems"])


def test_version_falls_back_to_supervisord_when_the_server_does_not_answer(proc, tmp_path):
    conf = write(tmp_path / "etc/s.conf", DEBIAN_CONF % "/x/*.conf")
    supervisord = executable(tmp_path / "bin/supervisord")
    ctl = executable(tmp_path / "bin/supervisorctl")
    proc(10, ["/usr/bin/python3", supervisord, "-c", conf])
    module = FakeModule(outputs={
        (ctl, "-c", conf, "version"): (7, "", "refused"),
        ("/usr/bin/python3", supervisord, "--version"): (0, "4.2.5\n", "warning on stderr"),
    })
    assert sf.detect(module)["version"] == "4.2.5"
    assert module.commands == [[ctl, "-c", conf, "version"], ["/usr/bin/python3", supervisord, "--version"]]


@pytest.mark.parametrize("output, expected", [("enabled\n", True), ("disabled\n", False), ("static\n", True), ("", None)])
def test_service_enablement_comes_from_systemctl(output, expected):
    module = FakeModule(bins={"systemctl": "/bin/systemctl"},
                        outputs={("/bin/systemctl", "is-enabled", "supervisor"): (0, output, "")})
    assert sf.service_enabled(module, "supervisor") is expected
    assert sf.service_enabled(FakeModule(), "supervisor") is None
