"""Worker definitions become exactly the supervisor program the eLMS guide describes."""

import configparser
import importlib
import os
import pwd
import shlex

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as wp

SETTINGS = {"app_dir": "/var/www/html", "php": "/usr/bin/php", "user": "www-data", "connection": "",
            "stopwait_margin": 30, "log_maxbytes": "50MB", "log_backups": 5}
DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log"}
NICE_SETTINGS = dict(SETTINGS, nice="/usr/bin/nice", ionice="/usr/bin/ionice")


def parsed(worker, settings=None):
    """Read the rendered file back with supervisor's parser settings."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(wp.render_program(worker, settings or SETTINGS))
    return dict(parser.items("program:%s" % worker["name"]))


def command_argv(worker, settings=None):
    """What supervisor execs: its expansion of %%, then shlex.split."""
    return shlex.split(parsed(worker, settings)["command"].replace("%%", "%"))


def test_default_worker_command_is_the_guides():
    assert command_argv(DEFAULT_WORKER) == [
        "/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=default",
        "--sleep=3", "--tries=3", "--max-time=3600"]


def test_video_worker_command_is_the_guides():
    assert command_argv(VIDEO_WORKER) == [
        "/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=video-encoding",
        "--sleep=10", "--tries=1", "--max-time=7200", "--memory=512"]


@pytest.mark.parametrize("key, expected", [
    ("process_name", "%(program_name)s_%(process_num)02d"),
    ("numprocs", "2"),
    ("user", "www-data"),
    ("directory", "/var/www/html"),
    ("autorestart", "true"),
    ("stopasgroup", "false"),
    ("killasgroup", "true"),
    ("stopsignal", "TERM"),
    ("redirect_stderr", "true"),
    ("startsecs", "5"),
    ("stdout_logfile", "/var/www/html/storage/logs/worker-default.log"),
])
def test_default_worker_option(key, expected):
    assert parsed(DEFAULT_WORKER)[key] == expected


def test_file_starts_with_the_managed_marker():
    assert wp.render_program(DEFAULT_WORKER, SETTINGS).startswith(wp.MANAGED_MARKER + "\n[program:elms-default-worker]\n")


@pytest.mark.parametrize("worker, expected", [
    pytest.param(VIDEO_WORKER, 7230, id="video-max-time-plus-margin"),
    pytest.param(DEFAULT_WORKER, 3630, id="default-max-time-plus-margin"),
    pytest.param(dict(VIDEO_WORKER, timeout=5400), 5430, id="timeout-wins-over-max-time"),
    pytest.param({"name": "x", "queue": "q"}, 90, id="laravel-default-timeout"),
    pytest.param(dict(VIDEO_WORKER, stopwaitsecs=9000), 9000, id="explicit"),
])
def test_stopwaitsecs_outlasts_the_longest_job(worker, expected):
    assert parsed(worker)["stopwaitsecs"] == str(expected)


def test_connection_and_queue_list():
    worker = {"name": "x", "queue": ["high", "default"], "connection": "redis"}
    assert command_argv(worker)[3:5] == ["redis", "--queue=high,default"]


def test_role_wide_connection_is_used_when_the_worker_has_none():
    assert command_argv({"name": "x", "queue": "q"}, dict(SETTINGS, connection="database"))[3] == "database"


def test_paths_with_spaces_survive_shlex():
    settings = dict(SETTINGS, app_dir="/srv/my app", php="/opt/php 8/bin/php")
    assert command_argv(DEFAULT_WORKER, settings)[:2] == ["/opt/php 8/bin/php", "/srv/my app/artisan"]


def test_percent_is_escaped_for_supervisor_expansion():
    settings = dict(SETTINGS, app_dir="/srv/100%app")
    assert parsed(DEFAULT_WORKER, settings)["directory"] == "/srv/100%%app"
    assert command_argv(DEFAULT_WORKER, settings)[1] == "/srv/100%app/artisan"


def test_environment_values_are_quoted():
    worker = dict(DEFAULT_WORKER, environment={"APP_ENV": "production", "GREETING": 'say "hi", ok'})
    assert parsed(worker)["environment"] == 'APP_ENV="production",GREETING=\'say "hi", ok\''


def supervisor_environments(tmp_path, environment):
    """The environment supervisord itself gives each process of a rendered program.

    The program file is included from a supervisord.conf, as on a host, so it goes
    through supervisor's whole reading: RawConfigParser with inline comments, the
    %(here)s replacement of included files, the %-expansion, dict_of_key_value_pairs.
    """
    options_module = importlib.import_module("supervisor.options")
    user = pwd.getpwuid(os.getuid()).pw_name
    settings = dict(SETTINGS, app_dir=str(tmp_path), user=user)
    worker = dict(DEFAULT_WORKER, log=str(tmp_path / "worker.log"), environment=environment)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "worker.conf").write_text(wp.render_program(worker, settings), encoding="utf-8")
    (tmp_path / "supervisord.conf").write_text("[supervisord]\n[include]\nfiles = conf.d/*.conf\n")
    options = options_module.ServerOptions()
    options.configfile = str(tmp_path / "supervisord.conf")
    options.process_config(do_usage=False)
    return [process.environment for group in options.process_group_configs for process in group.process_configs]


# Values supervisor's environment= can carry, each read back exactly by supervisor.
CARRIED_VALUES = [
    pytest.param('say "hi"!', id="double-quotes"),
    pytest.param("it's", id="single-quote"),
    pytest.param("C:\\path\\to", id="backslashes"),
    pytest.param("ends with a backslash\\", id="trailing-backslash"),
    pytest.param('a\\"b', id="backslash-before-double-quote"),
    pytest.param("a\\'b", id="backslash-before-single-quote"),
    pytest.param("a,b,c", id="commas"),
    pytest.param("100% %s %% %(ENV_HOME)s %(program_name)s", id="percent"),
    pytest.param("a=b==c", id="equals"),
    pytest.param("  leading and trailing  ", id="spaces"),
    pytest.param("a#b;c#", id="hash-and-semicolon-without-space"),
    pytest.param("#start;", id="hash-first"),
    pytest.param(";start", id="semicolon-first"),
    pytest.param("Grüße, 日本語 ✓", id="non-ascii"),
    pytest.param("", id="empty"),
    pytest.param(" ", id="only-a-space"),
    pytest.param("a\tb\t", id="tabs"),
    pytest.param("redis://user:p@ss@host:6379/0?x=1&y=$HOME|`id`", id="url-and-shell-characters"),
    pytest.param("a\x0bb\x0cc\x85d\u2028e", id="other-control-and-separator-characters"),
    pytest.param(42, id="number"),
    pytest.param(True, id="boolean"),
]


@pytest.mark.parametrize("value", CARRIED_VALUES)
def test_environment_value_reaches_the_worker_exactly(tmp_path, value):
    environment = {"APP_ENV": "production", "VALUE": value, "Z_LAST": "z"}
    assert wp.worker_errors([dict(DEFAULT_WORKER, environment=environment)], default_user="www-data") == []
    expected = dict((key, str(item)) for key, item in environment.items())
    assert supervisor_environments(tmp_path, environment) == [expected, expected]


def test_all_carried_values_together_reach_the_worker(tmp_path):
    environment = dict(("KEY_%02d" % index, param.values[0]) for index, param in enumerate(CARRIED_VALUES))
    expected = dict((key, str(item)) for key, item in environment.items())
    assert supervisor_environments(tmp_path, environment) == [expected, expected]


# Values supervisor's environment= cannot carry, and the words their error must contain.
REFUSED_VALUES = [
    pytest.param("it's \"quoted\"", "contains both ' and \"", id="both-quotes"),
    pytest.param('"quoted"', "starts or ends with a quote", id="double-quoted"),
    pytest.param("'quoted'", "starts or ends with a quote", id="single-quoted"),
    pytest.param('ends with "', "starts or ends with a quote", id="ends-with-double-quote"),
    pytest.param("'starts with a single quote", "starts or ends with a quote", id="starts-with-single-quote"),
    pytest.param("a ;b", "contains whitespace followed by ';' or '#'", id="space-semicolon"),
    pytest.param("a #b", "contains whitespace followed by ';' or '#'", id="space-hash"),
    pytest.param("a\t#b", "contains whitespace followed by ';' or '#'", id="tab-hash"),
    pytest.param("a\xa0;b", "contains whitespace followed by ';' or '#'", id="nbsp-semicolon"),
    pytest.param("a\nb", "contains a line break", id="newline"),
    pytest.param("a\rb", "contains a line break", id="carriage-return"),
    pytest.param("a\0b", "contains a NUL character", id="nul"),
    pytest.param("%(here)s/cache", "contains '%(here)s'", id="here-expansion"),
]


@pytest.mark.parametrize("value, message", REFUSED_VALUES)
def test_environment_value_supervisor_cannot_carry_is_refused(value, message):
    worker = {"name": "x", "queue": "q", "environment": {"APP_ENV": "production", "API_KEY": value}}
    errors = wp.worker_errors([DEFAULT_WORKER, worker], default_user="www-data")
    assert len(errors) == 1, errors
    assert errors[0].startswith("queue_workers_programs[1] (x).environment.API_KEY " + message), errors
    assert ": " in errors[0].split(message, 1)[1], errors  # ... and says what to do
    assert wp.environment_problem(value) is not None


@pytest.mark.parametrize("value, message", [param for param in REFUSED_VALUES if param.id != "nul"])
def test_refused_values_would_not_reach_the_worker(tmp_path, value, message):
    try:
        environments = supervisor_environments(tmp_path, {"API_KEY": value})
    except ValueError:
        return  # supervisor refuses the file
    assert environments[0] != {"API_KEY": value}


def test_supervisor_options_override_and_extend():
    worker = dict(DEFAULT_WORKER, supervisor_options={"startsecs": 5, "stdout_syslog": True})
    options = parsed(worker)
    assert (options["startsecs"], options["stdout_syslog"]) == ("5", "true")


def test_absolute_log_is_kept():
    assert parsed(dict(DEFAULT_WORKER, log="/var/log/elms/default.log"))["stdout_logfile"] == "/var/log/elms/default.log"


def test_default_log_is_named_after_the_program():
    assert wp.log_path({"name": "x", "queue": "q"}, SETTINGS) == "/var/www/html/storage/logs/x.log"


def test_extra_args_and_flags():
    worker = {"name": "x", "queue": "q", "max_jobs": 500, "backoff": 10, "force": True, "extra_args": ["--rest=1"]}
    assert command_argv(worker)[4:] == ["--max-jobs=500", "--backoff=10", "--force", "--rest=1"]


def test_the_guides_workers_have_no_errors():
    assert wp.worker_errors([DEFAULT_WORKER, VIDEO_WORKER], default_user="www-data") == []
    assert wp.settings_errors(SETTINGS) == []


# Each bad input, and the words its error must contain (variable and fix).
BAD_WORKERS = [
    pytest.param("not a list", "must be a list", id="not-a-list"),
    pytest.param(["just a name"], "must be a mapping", id="item-not-mapping"),
    pytest.param([{"queue": "q"}], "name = None", id="missing-name"),
    pytest.param([{"name": "bad_name", "queue": "q"}], "(no '_'", id="underscore-in-name"),
    pytest.param([{"name": "has space", "queue": "q"}], "letters, digits or '-'", id="space-in-name"),
    pytest.param([{"name": "-lead", "queue": "q"}], "starting with a letter or digit", id="leading-dash"),
    pytest.param([{"name": "a" * 65, "queue": "q"}], "1-64", id="name-too-long"),
    pytest.param([{"name": "x", "queue": "q"}, {"name": "x", "queue": "r"}], "used twice", id="duplicate-name"),
    pytest.param([{"name": "x"}], "queue = None", id="missing-queue"),
    pytest.param([{"name": "x", "queue": "a,b"}], "must be a queue name", id="comma-in-queue"),
    pytest.param([{"name": "x", "queue": []}], "must be a queue name", id="empty-queue-list"),
    pytest.param([{"name": "x", "queue": "q", "numprocs": 0}], "numprocs = 0 must be a whole number from 1 to 64", id="numprocs-zero"),
    pytest.param([{"name": "x", "queue": "q", "numprocs": 65}], "from 1 to 64", id="numprocs-too-many"),
    pytest.param([{"name": "x", "queue": "q", "numprocs": "many"}], "or a range", id="numprocs-word"),
    pytest.param([{"name": "x", "queue": "q", "numprocs": "auto", "weight": "huge"}], "light or heavy", id="bad-weight"),
    pytest.param([{"name": "x", "queue": "q", "numprocs": "2"}], "numprocs = '2'", id="numprocs-string"),
    pytest.param([{"name": "x", "queue": "q", "sleep": -1}], "sleep = -1", id="negative-sleep"),
    pytest.param([{"name": "x", "queue": "q", "tries": 0}], "tries = 0", id="zero-tries"),
    pytest.param([{"name": "x", "queue": "q", "timeout": True}], "timeout = True", id="bool-timeout"),
    pytest.param([{"name": "x", "queue": "q", "timeout": 600, "stopwaitsecs": 60}],
                 "stopwaitsecs = 60 is shorter than the job timeout (600 s)", id="stopwait-below-timeout"),
    pytest.param([{"name": "x", "queue": "q", "stopwaitsecs": 10}], "at least 90", id="stopwait-below-laravel-default"),
    pytest.param([{"name": "x", "queue": "q", "user": "root"}], "queue_workers_allow_root", id="root-user"),
    pytest.param([{"name": "x", "queue": "q", "sleeep": 3}], "unknown keys sleeep", id="typo-key"),
    pytest.param([{"name": "x", "queue": "q", "state": "gone"}], "must be one of started, present, stopped, absent", id="bad-state"),
    pytest.param([{"name": "x", "queue": "q", "log": "a.log\nb"}], "contains a line break", id="newline-in-log"),
    pytest.param([{"name": "x", "queue": "q", "extra_args": ["--x", "a ;b"]}], "start of a comment", id="comment-in-args"),
    pytest.param([{"name": "x", "queue": "q", "environment": {"1BAD": "v"}}], "not a valid variable name", id="bad-env-key"),
    pytest.param([{"name": "x", "queue": "q", "environment": ["A=1"]}], "environment must be a mapping", id="env-not-mapping"),
    pytest.param([{"name": "x", "queue": "q", "supervisor_options": {"command": "/bin/sh"}}], "set by the role",
                 id="override-command"),
    pytest.param([{"name": "x", "queue": "q", "supervisor_options": {"stopwaitsec": 5}}], "not a supervisor [program:x] option",
                 id="unknown-supervisor-option"),
    pytest.param([{"name": "x", "queue": "q", "extra_args": "--rest=1"}], "must be a list of arguments", id="extra-args-string"),
    pytest.param([{"name": "x", "queue": "q", "supervisor_options": {"stopasgroup": True, "killasgroup": False}}],
                 "supervisor refuses", id="stopasgroup-without-killasgroup"),
]


@pytest.mark.parametrize("workers, message", BAD_WORKERS)
def test_bad_worker_definitions_are_named(workers, message):
    errors = wp.worker_errors(workers, default_user="www-data")
    assert any(message in error for error in errors), errors
    assert all(error.startswith("queue_workers_programs") for error in errors), errors


def test_root_is_allowed_when_asked():
    assert wp.worker_errors([{"name": "x", "queue": "q"}], allow_root=True, default_user="root") == []


def test_absent_workers_need_only_a_name():
    assert wp.worker_errors([{"name": "old-worker", "state": "absent"}]) == []


@pytest.mark.parametrize("settings, message", [
    pytest.param(dict(SETTINGS, php=""), "queue_workers_php is empty", id="php-missing"),
    pytest.param(dict(SETTINGS, php="php"), "queue_workers_php = 'php' must be an absolute path", id="php-relative"),
    pytest.param(dict(SETTINGS, app_dir="html"), "queue_workers_app_dir = 'html'", id="app-relative"),
    pytest.param(dict(SETTINGS, app_dir="/srv/a ;b"), "start of a comment", id="app-comment"),
    pytest.param(dict(SETTINGS, user=""), "queue_workers_user", id="no-user"),
])
def test_bad_settings_are_named(settings, message):
    assert any(message in error for error in wp.settings_errors(settings))


def test_semicolon_without_space_is_quoted_safely():
    worker = {"name": "x", "queue": "q", "extra_args": ["; rm -rf /"]}
    assert wp.worker_errors([worker]) == []
    assert command_argv(worker)[-1] == "; rm -rf /"


@pytest.mark.parametrize("which, expected", [
    ("present", ["a", "c"]),
    ("absent", ["b"]),
    ("autostarted", ["a"]),
])
def test_select(which, expected):
    workers = [{"name": "a", "queue": "q"}, {"name": "b", "state": "absent"},
               {"name": "c", "queue": "q", "state": "present", "autostart": False}]
    assert [w["name"] for w in wp.select(workers, which)] == expected


def test_video_worker_runs_at_lower_cpu_and_io_priority():
    worker = dict(VIDEO_WORKER, nice=10, ionice_class="best-effort", ionice_level=7)
    assert command_argv(worker, NICE_SETTINGS)[:8] == [
        "/usr/bin/nice", "-n", "10", "/usr/bin/ionice", "-c", "2", "-n", "7"]
    assert command_argv(worker, NICE_SETTINGS)[8:10] == ["/usr/bin/php", "/var/www/html/artisan"]


def test_idle_io_class_takes_no_level():
    worker = dict(VIDEO_WORKER, ionice_class="idle", ionice_level=7)
    assert command_argv(worker, NICE_SETTINGS)[:3] == ["/usr/bin/ionice", "-c", "3"]


@pytest.mark.parametrize("worker, message", [
    pytest.param({"name": "x", "queue": "q", "nice": 20}, "from -20 to 19", id="nice-too-high"),
    pytest.param({"name": "x", "queue": "q", "ionice_class": "low"}, "must be one of best-effort, idle, realtime",
                 id="bad-ionice-class"),
    pytest.param({"name": "x", "queue": "q", "ionice_level": 8}, "from 0 to 7", id="ionice-level-too-high"),
])
def test_bad_priorities(worker, message):
    assert any(message in e for e in wp.worker_errors([worker]))


def test_a_relative_nice_path_is_named():
    errors = wp.settings_errors(dict(SETTINGS, nice="nice"), [{"name": "v", "queue": "q", "nice": 10}])
    assert any("queue_workers_nice_path" in e and "absolute" in e for e in errors)


@pytest.mark.parametrize("worker, retry_after, bad", [
    pytest.param({"name": "x", "queue": "q", "timeout": 7200}, 7300, False, id="below"),
    pytest.param({"name": "x", "queue": "q", "timeout": 7300}, 7300, True, id="equal"),
    pytest.param({"name": "x", "queue": "q"}, 60, True, id="laravel-default-60-vs-60"),
    pytest.param({"name": "x", "queue": "q", "timeout": 9000}, 0, False, id="unknown-retry-after"),
])
def test_timeout_must_be_below_retry_after(worker, retry_after, bad):
    errors = wp.worker_errors([worker], retry_after=retry_after)
    assert any("retry_after" in e for e in errors) is bad


@pytest.mark.parametrize("cpus, memory_mb, light, heavy", [
    pytest.param(2, 2048, 1, 1, id="guide-low-2-cores-2gb"),
    pytest.param(2, 1900, 1, 1, id="2gb-reported-short"),
    pytest.param(1, 1024, 1, 1, id="tiny"),
    pytest.param(4, 4096, 2, 1, id="middle-4-cores-4gb"),
    pytest.param(6, 6144, 3, 2, id="middle-6-cores-6gb"),
    pytest.param(8, 7900, 4, 3, id="guide-high-8-cores-8gb"),
    pytest.param(32, 65536, 4, 3, id="large-capped"),
    pytest.param(16, 2048, 1, 1, id="many-cores-little-memory"),
])
def test_auto_numprocs(cpus, memory_mb, light, heavy):
    assert (wp.auto_numprocs("light", cpus, memory_mb), wp.auto_numprocs("heavy", cpus, memory_mb)) == (light, heavy)


def test_auto_numprocs_is_rendered():
    worker = dict(VIDEO_WORKER, numprocs="auto", weight="heavy")
    assert parsed(worker, dict(SETTINGS, cpus=8, memory_mb=8192))["numprocs"] == "3"


def test_standalone_config_runs_in_the_foreground_and_logs_to_the_container():
    text = wp.render_standalone([DEFAULT_WORKER, VIDEO_WORKER, dict(VIDEO_WORKER, name="gone", state="absent")],
                                dict(SETTINGS, php="php", php_on_path=True))
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    parser.read_string(text)
    assert parser.get("supervisord", "nodaemon") == "true"
    assert parser.get("supervisorctl", "serverurl") == "unix:///tmp/supervisor.sock"
    assert not parser.has_section("include")
    assert [s for s in parser.sections() if s.startswith("program:")] == ["program:elms-default-worker",
                                                                          "program:elms-video-worker"]
    video = dict(parser.items("program:elms-video-worker"))
    assert video["stdout_logfile"] == "/dev/stdout" and video["stdout_logfile_maxbytes"] == "0"
    assert video["stderr_logfile"] == "/dev/stderr" and video["redirect_stderr"] == "false"
    assert "stdout_logfile_backups" not in video
    assert shlex.split(video["command"])[:3] == ["php", "/var/www/html/artisan", "queue:work"]


@pytest.mark.parametrize("php, ok", [("php", True), ("/usr/local/bin/php", True), ("bin/php", False), ("", False)])
def test_a_bare_php_is_accepted_only_for_a_container(php, ok):
    errors = wp.settings_errors(dict(SETTINGS, php=php, php_on_path=True))
    assert (errors == []) is ok, errors
    assert wp.settings_errors(dict(SETTINGS, php="php")) != []


@pytest.mark.parametrize("worker, state", [
    pytest.param({"name": "a", "queue": "q"}, "started", id="present-is-started"),
    pytest.param({"name": "a", "queue": "q", "state": "started"}, "started", id="started"),
    pytest.param({"name": "a", "queue": "q", "autostart": False}, "stopped", id="present-without-autostart-is-stopped"),
    pytest.param({"name": "a", "queue": "q", "state": "stopped"}, "stopped", id="stopped"),
    pytest.param({"name": "a", "state": "absent"}, "absent", id="absent"),
])
def test_desired_programs_carry_the_state_and_the_rendered_file(worker, state):
    desired = wp.desired_programs([worker], SETTINGS)
    assert [(d["name"], d["state"]) for d in desired] == [("a", state)]
    if state != "absent":
        assert desired[0]["content"] == wp.render_program(worker, SETTINGS)
        assert desired[0]["stopwaitsecs"] == wp.stopwaitsecs(worker, 30)
        assert "content" not in wp.desired_programs([worker], SETTINGS, content=False)[0]


def test_the_marker_names_the_owner():
    text = wp.render_program(DEFAULT_WORKER, dict(SETTINGS, owner="acme.reports"))
    assert text.startswith("; Managed by Ansible (acme.reports). Local changes are overwritten.\n")
    assert wp.render_program(DEFAULT_WORKER, SETTINGS).startswith(wp.MANAGED_MARKER)


def test_host_requirements_name_the_variable_to_fix():
    needs = wp.host_requirements([DEFAULT_WORKER, dict(VIDEO_WORKER, user="encoder", nice=10),
                                  {"name": "gone", "state": "absent"}], NICE_SETTINGS)
    checks = dict((r["value"], (r["kind"], r["msg"])) for r in needs["require"])
    assert checks["/var/www/html/artisan"][0] == "file" and "queue_workers_app_dir" in checks["/var/www/html/artisan"][1]
    assert checks["/usr/bin/php"][0] == "executable" and "queue_workers_php" in checks["/usr/bin/php"][1]
    assert checks["www-data"][0] == "user" and checks["encoder"][0] == "user"
    assert checks["/usr/bin/nice"][0] == "executable" and "queue_workers_nice_path" in checks["/usr/bin/nice"][1]
    assert "/usr/bin/ionice" not in checks
    owners = dict((d["path"], d["owner"]) for d in needs["directories"])
    assert owners == {"/var/www/html/storage/logs": "www-data"}


@pytest.mark.parametrize("workers, settings, words", [
    pytest.param([{"name": "x", "queue": "q", "extra_args": ["--queue=other"]}], SETTINGS, "sets --queue", id="queue-in-extra-args"),
    pytest.param([{"name": "x", "queue": "q", "extra_args": ["--sleep=1"]}], SETTINGS, "sets --sleep", id="sleep-in-extra-args"),
    pytest.param([{"name": "x", "queue": "q", "extra_args": ["--timeout", "5"]}], SETTINGS, "sets --timeout",
                 id="timeout-as-two-words"),
    pytest.param([{"name": "x", "queue": "q", "nice": -5}], SETTINGS, "nice = -5 needs root", id="negative-nice"),
    pytest.param([{"name": "x", "queue": "q", "ionice_class": "realtime"}], SETTINGS, "realtime needs root",
                 id="realtime-io"),
    pytest.param([{"name": "x", "queue": "q"}], dict(SETTINGS, stopwait_margin=-10), "queue_workers_stopwait_margin = -10",
                 id="negative-margin"),
    pytest.param([{"name": "x", "queue": "q"}], dict(SETTINGS, log_maxbytes="50 MB"), "queue_workers_log_maxbytes",
                 id="log-size-with-a-space"),
    pytest.param([{"name": "x", "queue": "q"}], dict(SETTINGS, log_backups=-1), "queue_workers_log_backups = -1",
                 id="negative-log-backups"),
])
def test_inputs_that_would_silently_misbehave_are_refused(workers, settings, words):
    errors = wp.settings_errors(settings, workers) + wp.worker_errors(workers, default_user=settings["user"])
    assert any(words in e for e in errors), errors


def test_root_workers_may_raise_their_priority():
    worker = {"name": "x", "queue": "q", "user": "root", "nice": -5, "ionice_class": "realtime"}
    assert wp.worker_errors([worker], allow_root=True, default_user="www-data") == []
