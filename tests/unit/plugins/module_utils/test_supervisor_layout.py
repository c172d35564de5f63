"""supervisor_layout resolves configs and includes exactly as supervisord 4.x does.

Config texts under tests/unit/data/configs: debian12.conf is Debian's packaged file,
pip-sample.conf is supervisor's own echo_supervisord_conf output; the others are that
sample or Debian's file with the edits each platform's packaging makes (socket, include).
"""

import os

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "data", "configs")


def config_text(name):
    with open(os.path.join(CONFIGS, name)) as handle:
        return handle.read()


# --- recognising supervisord command lines ------------------------------------------

@pytest.mark.parametrize("argv, script, interpreter, args", [
    pytest.param(["/usr/bin/python3", "/usr/bin/supervisord", "-n", "-c", "/etc/supervisor/supervisord.conf"],
                 "/usr/bin/supervisord", "/usr/bin/python3", ["-n", "-c", "/etc/supervisor/supervisord.conf"], id="debian-systemd"),
    pytest.param(["/usr/bin/supervisord", "-c", "/etc/supervisord.conf"],
                 "/usr/bin/supervisord", None, ["-c", "/etc/supervisord.conf"], id="direct-binary"),
    pytest.param(["/www/server/panel/pyenv/bin/python3", "/www/server/panel/pyenv/bin/supervisord", "-c",
                  "/etc/supervisor/supervisord.conf"],
                 "/www/server/panel/pyenv/bin/supervisord", "/www/server/panel/pyenv/bin/python3",
                 ["-c", "/etc/supervisor/supervisord.conf"], id="aapanel-pyenv"),
    pytest.param(["/usr/bin/python3", "-u", "-W", "ignore", "/usr/local/bin/supervisord", "-n"],
                 "/usr/local/bin/supervisord", "/usr/bin/python3", ["-n"], id="interpreter-options"),
    pytest.param(["python3.11", "-m", "supervisor.supervisord", "-c", "x.conf"],
                 None, "python3.11", ["-c", "x.conf"], id="python-m"),
    pytest.param(["supervisord"], "supervisord", None, [], id="bare-name-no-args"),
])
def test_supervisord_invocation_recognised(argv, script, interpreter, args):
    assert layout.supervisord_invocation(argv) == {"script": script, "interpreter": interpreter, "args": args}


@pytest.mark.parametrize("argv", [
    pytest.param([], id="empty"),
    pytest.param(["/usr/bin/supervisorctl", "status"], id="supervisorctl"),
    pytest.param(["/usr/bin/python3", "/usr/bin/supervisorctl", "-c", "/etc/supervisord.conf"], id="python-supervisorctl"),
    pytest.param(["/usr/bin/python3", "-c", "import supervisor.supervisord"], id="python-c"),
    pytest.param(["/usr/bin/python3", "-m", "supervisor.supervisorctl"], id="python-m-ctl"),
    pytest.param(["vim", "/usr/bin/supervisord"], id="editor-on-the-file"),
    pytest.param(["/usr/bin/python3", "/opt/app/worker.py", "supervisord"], id="argument-named-supervisord"),
])
def test_other_processes_are_not_supervisord(argv):
    assert layout.supervisord_invocation(argv) is None


def test_split_cmdline_drops_trailing_nul():
    assert layout.split_cmdline(b"/usr/bin/python3\0/usr/bin/supervisord\0-n\0") == [
        "/usr/bin/python3", "/usr/bin/supervisord", "-n"]


def test_parse_environ_keeps_values_with_equals():
    assert layout.parse_environ(b"A=1\0B=x=y\0NOEQUALS\0") == {"A": "1", "B": "x=y"}


# --- the config option, in every form getopt accepts ---------------------------------

@pytest.mark.parametrize("args, expected", [
    pytest.param(["-c", "/etc/a.conf"], "/etc/a.conf", id="short-separate"),
    pytest.param(["-c/etc/a.conf"], "/etc/a.conf", id="short-glued"),
    pytest.param(["-nc", "/etc/a.conf"], "/etc/a.conf", id="short-clustered"),
    pytest.param(["-nc/etc/a.conf"], "/etc/a.conf", id="short-clustered-glued"),
    pytest.param(["--configuration=/etc/a.conf"], "/etc/a.conf", id="long-equals"),
    pytest.param(["--configuration", "/etc/a.conf"], "/etc/a.conf", id="long-separate"),
    pytest.param(["--conf", "/etc/a.conf"], "/etc/a.conf", id="long-unambiguous-prefix"),
    pytest.param(["-c", "/etc/a.conf", "-c", "/etc/b.conf"], "/etc/b.conf", id="last-one-wins"),
    pytest.param(["-n", "-u", "root", "-c", "/etc/a.conf"], "/etc/a.conf", id="after-options-with-values"),
    pytest.param(["-u", "-c", "-n"], None, id="dash-c-as-value-of-u"),
    pytest.param(["-n"], None, id="absent"),
])
def test_config_option_forms(args, expected):
    assert layout.parse_supervisord_args(args).get("configuration") == expected


@pytest.mark.parametrize("args", [
    pytest.param(["--c", "/etc/a.conf"], id="ambiguous-prefix"),
    pytest.param(["-c"], id="missing-value"),
    pytest.param(["--bogus"], id="unknown-option"),
])
def test_command_lines_supervisord_rejects(args):
    with pytest.raises(layout.LayoutError, match="reject"):
        layout.parse_supervisord_args(args)


@pytest.mark.parametrize("path, cwd, expected", [
    pytest.param("/etc/a.conf", "/root", "/etc/a.conf", id="absolute"),
    pytest.param("a.conf", "/srv/app", "/srv/app/a.conf", id="relative-to-cwd"),
    pytest.param("../etc/a.conf", "/srv/app", "/srv/etc/a.conf", id="dot-dot"),
    pytest.param("a.conf", None, None, id="relative-cwd-unknown"),
])
def test_absolute(path, cwd, expected):
    assert layout.absolute(path, cwd) == expected


# --- supervisord's search order ----------------------------------------------------------

def test_search_order_matches_supervisord():
    assert layout.search_paths("/opt/venv/bin/supervisord", "/srv") == [
        "/opt/venv/etc/supervisord.conf", "/opt/venv/supervisord.conf",
        "/srv/supervisord.conf", "/srv/etc/supervisord.conf",
        "/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"]


def test_search_order_for_usr_bin_dedupes_nothing_but_keeps_order():
    paths = layout.search_paths("/usr/bin/supervisord", "/")
    assert paths[:2] == ["/usr/etc/supervisord.conf", "/usr/supervisord.conf"]
    assert paths[-2:] == ["/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"]
    assert len(paths) == len(set(paths))


def test_search_order_without_script_or_cwd():
    assert layout.search_paths(None, None) == ["/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"]


def test_search_relative_script_resolved_against_cwd():
    assert layout.search_paths("bin/supervisord", "/opt/sv")[0] == "/opt/sv/etc/supervisord.conf"


def test_first_existing_takes_the_first_in_order():
    present = {"/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"}
    assert layout.first_existing(layout.search_paths(None, None), present.__contains__) == "/etc/supervisord.conf"


# --- [include] files, on each platform's real config -------------------------------------

@pytest.mark.parametrize("name, config_path, globs", [
    pytest.param("debian12.conf", "/etc/supervisor/supervisord.conf", ["/etc/supervisor/conf.d/*.conf"], id="debian"),
    pytest.param("rhel.conf", "/etc/supervisord.conf", ["/etc/supervisord.d/*.ini"], id="rhel-relative"),
    pytest.param("alpine.conf", "/etc/supervisord.conf", ["/etc/supervisor.d/*.ini"], id="alpine"),
    pytest.param("aapanel.conf", "/etc/supervisor/supervisord.conf",
                 ["/www/server/panel/plugin/supervisor/profile/*.ini"], id="aapanel"),
    pytest.param("plesk.conf", "/etc/supervisor/supervisord.conf", ["/etc/supervisord/conf.d/*.conf"], id="plesk"),
    pytest.param("pip-sample.conf", "/opt/sv/etc/supervisord.conf", [], id="pip-commented-include"),
])
def test_include_globs_of_platform_configs(name, config_path, globs):
    parser = layout.parse_config(config_text(name), config_path)
    assert layout.include_globs(parser, config_path) == globs


@pytest.mark.parametrize("files, env, node, expected", [
    pytest.param("conf.d/*.conf", {}, "", ["/etc/sv/conf.d/*.conf"], id="relative"),
    pytest.param("%(here)s/progs/*.ini", {}, "", ["/etc/sv/progs/*.ini"], id="here"),
    pytest.param("/etc/%(host_node_name)s/*.conf", {}, "web1", ["/etc/web1/*.conf"], id="host-node-name"),
    pytest.param("%(ENV_APP_ROOT)s/supervisor/*.conf", {"APP_ROOT": "/srv/app"}, "",
                 ["/srv/app/supervisor/*.conf"], id="env"),
    pytest.param("a/*.conf b/*.ini", {}, "", ["/etc/sv/a/*.conf", "/etc/sv/b/*.ini"], id="two-globs"),
    pytest.param("a/*.conf\n    /abs/*.ini", {}, "", ["/etc/sv/a/*.conf", "/abs/*.ini"], id="continuation-line"),
    pytest.param("/x/*.conf ; trailing comment", {}, "", ["/x/*.conf"], id="inline-semicolon-comment"),
    pytest.param("/x/*.conf # trailing comment", {}, "", ["/x/*.conf"], id="inline-hash-comment"),
    pytest.param("../shared/*.conf", {}, "", ["/etc/shared/*.conf"], id="parent-relative"),
])
def test_include_expansions(files, env, node, expected):
    text = "[supervisord]\n[include]\nfiles = %s\n" % files
    parser = layout.parse_config(text, "/etc/sv/supervisord.conf")
    assert layout.include_globs(parser, "/etc/sv/supervisord.conf", env, node) == expected


def test_semicolon_without_space_is_part_of_the_value():
    parser = layout.parse_config("[include]\nfiles = /x/a;b/*.conf\n", "/etc/s.conf")
    assert layout.include_globs(parser, "/etc/s.conf") == ["/x/a;b/*.conf"]


def test_no_include_section_gives_no_globs():
    parser = layout.parse_config("[supervisord]\nlogfile=/tmp/x\n", "/etc/s.conf")
    assert layout.include_globs(parser, "/etc/s.conf") == []


def test_include_section_without_files_is_an_error():
    parser = layout.parse_config("[include]\n", "/etc/s.conf")
    with pytest.raises(layout.LayoutError, match="no 'files' setting"):
        layout.include_globs(parser, "/etc/s.conf")


def test_unknown_expansion_is_an_error_naming_it():
    parser = layout.parse_config("[include]\nfiles = %(ENV_NOPE)s/*.conf\n", "/etc/s.conf")
    with pytest.raises(layout.LayoutError, match="ENV_NOPE"):
        layout.include_globs(parser, "/etc/s.conf", {})


def test_unparseable_config_is_an_error():
    with pytest.raises(layout.LayoutError, match="cannot be parsed"):
        layout.parse_config("files = before any section\n", "/etc/s.conf")


# --- choosing the include directory and extension ----------------------------------------

@pytest.mark.parametrize("globs, expected", [
    pytest.param(["/etc/supervisor/conf.d/*.conf"], ("/etc/supervisor/conf.d", ".conf"), id="debian"),
    pytest.param(["/etc/supervisord.d/*.ini"], ("/etc/supervisord.d", ".ini"), id="rhel"),
    pytest.param(["/etc/a/prog.conf", "/etc/b/*.ini"], ("/etc/b", ".ini"), id="skip-single-file"),
    pytest.param(["/etc/*/x.conf", "/etc/c/*.conf"], ("/etc/c", ".conf"), id="skip-glob-in-dir"),
    pytest.param(["/etc/a/*", "/etc/b/*.ini"], ("/etc/b", ".ini"), id="skip-no-extension"),
    pytest.param(["/etc/a/*.c?nf", "/etc/b/*.conf"], ("/etc/b", ".conf"), id="skip-glob-in-extension"),
    pytest.param(["/etc/a/*.conf", "/etc/b/*.ini"], ("/etc/a", ".conf"), id="first-of-two"),
])
def test_choose_include(globs, expected):
    directory, extension, error = layout.choose_include(globs)
    assert (directory, extension, error) == (expected[0], expected[1], None)


@pytest.mark.parametrize("globs, message", [
    pytest.param([], "no [include] section", id="none"),
    pytest.param(["/etc/a/prog.conf", "/etc/*/x.ini"], "found: /etc/a/prog.conf /etc/*/x.ini", id="no-usable-form"),
])
def test_choose_include_explains_failure(globs, message):
    directory, extension, error = layout.choose_include(globs)
    assert directory is None and extension is None
    assert message in error


def test_override_inside_a_glob_is_accepted():
    assert layout.choose_include(["/etc/a/*.conf", "/etc/b/*.ini"], "/etc/b", "ini") == ("/etc/b", ".ini", None)


def test_override_outside_every_glob_is_refused():
    directory, _ext, error = layout.choose_include(["/etc/a/*.conf"], "/etc/b", ".conf")
    assert directory is None and "not loaded by this supervisord" in error


def test_override_needs_both_values():
    assert "together" in layout.choose_include(["/etc/a/*.conf"], "/etc/a", None)[2]


# --- serverurl -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    pytest.param(config_text("debian12.conf"), "unix:///var/run/supervisor.sock", id="debian"),
    pytest.param(config_text("rhel.conf"), "unix:///run/supervisor/supervisor.sock", id="rhel"),
    pytest.param("[unix_http_server]\nfile=/run/s.sock\n", "unix:///run/s.sock", id="from-socket"),
    pytest.param("[unix_http_server]\nfile=%(here)s/s.sock\n", "unix:///etc/sv/s.sock", id="socket-here"),
    pytest.param("[inet_http_server]\nport=127.0.0.1:9002\n", "http://127.0.0.1:9002", id="inet"),
    pytest.param("[inet_http_server]\nport=*:9003\n", "http://localhost:9003", id="inet-any"),
    pytest.param("[supervisord]\n", "http://localhost:9001", id="default"),
])
def test_server_url(text, expected):
    parser = layout.parse_config(text, "/etc/sv/supervisord.conf")
    assert layout.server_url(parser, "/etc/sv/supervisord.conf") == expected


# --- platform names, systemd unit, version --------------------------------------------------

@pytest.mark.parametrize("binary, include_dir, expected", [
    pytest.param("/usr/bin/supervisord", "/etc/supervisor/conf.d", "debian", id="debian"),
    pytest.param("/usr/bin/supervisord", "/etc/supervisord.d", "rhel", id="rhel"),
    pytest.param("/opt/venv/bin/supervisord", "/etc/supervisord.d", "rhel", id="rhel-layout-pip-binary"),
    pytest.param("/usr/bin/supervisord", "/etc/supervisor.d", "alpine", id="alpine"),
    pytest.param("/www/server/panel/pyenv/bin/supervisord", "/www/server/panel/plugin/supervisor/profile", "aapanel",
                 id="aapanel"),
    pytest.param("/usr/bin/supervisord", "/etc/supervisord/conf.d", "plesk", id="plesk"),
    pytest.param("/opt/venv/bin/supervisord", "/srv/sv/programs", "pip", id="pip"),
    pytest.param("/usr/bin/supervisord", "/srv/sv/programs", "unknown", id="unknown"),
    pytest.param(None, None, "unknown", id="nothing"),
])
def test_guess_platform(binary, include_dir, expected):
    assert layout.guess_platform(binary, include_dir, []) == expected


@pytest.mark.parametrize("cgroup, expected", [
    pytest.param("0::/system.slice/supervisor.service\n", "supervisor", id="cgroup-v2"),
    pytest.param("12:pids:/system.slice/supervisord.service\n1:name=systemd:/system.slice/supervisord.service\n",
                 "supervisord", id="cgroup-v1"),
    pytest.param("0::/user.slice/user-0.slice/session-1.scope\n", None, id="not-a-service"),
    pytest.param("", None, id="empty"),
])
def test_systemd_unit(cgroup, expected):
    assert layout.systemd_unit(cgroup) == expected


@pytest.mark.parametrize("output, expected", [
    pytest.param("4.2.5\n", "4.2.5", id="plain"),
    pytest.param("4.3.0\n", "4.3.0", id="pip"),
    pytest.param("UserWarning: pkg_resources is deprecated\n4.2.1\n", "4.2.1", id="warning-before"),
    pytest.param("unix:///run/x.sock refused connection\n", None, id="error"),
])
def test_parse_version(output, expected):
    assert layout.parse_version(output) == expected
