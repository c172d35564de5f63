"""Several apps on one host, and the daemon kinds: what each app's converge and restart get."""

import configparser
import shlex

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import daemon_kinds as dk
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as ps
from ansible_collections.elms.queue_workers.plugins.module_utils import queue_apps as qa

SETTINGS = {"app_dir": "/var/www/html", "php": "/usr/bin/php", "user": "www-data", "connection": "",
            "stopwait_margin": 30, "owner": "elms.queue_workers", "log_dir": "storage/logs"}
ELMS = {"name": "elms", "programs": [{"name": "elms-default-worker", "queue": "default"}]}
SHOP = {"name": "shop", "dir": "/srv/shop/current", "user": "shop", "php": "/opt/plesk/php/8.2/bin/php",
        "connection": "redis", "log_dir": "/var/log/shop",
        "programs": [{"name": "shop-worker", "queue": "orders"},
                     {"name": "shop-scheduler", "kind": "schedule"},
                     {"name": "shop-reverb", "kind": "command", "command": ["reverb:start", "--port=8080"],
                      "restart_command": ["reverb:restart"]},
                     {"name": "shop-horizon", "kind": "horizon", "timeout": 900},
                     {"name": "shop-pulse", "kind": "command", "command": ["pulse:work"]}]}


def argv_of(program):
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(program["content"])
    section = dict(parser.items("program:%s" % program["name"]))
    return shlex.split(section["command"].replace("%%", "%")), section


def by_name(plan):
    return dict((p["name"], p) for p in plan["programs"])


def test_each_app_owns_its_programs_and_uses_its_own_settings():
    plan = qa.plan([ELMS, SHOP], SETTINGS)
    assert plan["errors"] == []
    assert plan["owners"] == ["elms.queue_workers/elms", "elms.queue_workers/shop"]
    programs = by_name(plan)
    assert programs["elms-default-worker"]["owner"] == "elms.queue_workers/elms"
    assert ps.owner_of(programs["shop-worker"]["content"]) == "elms.queue_workers/shop"
    argv, section = argv_of(programs["shop-worker"])
    # The symlink is written as it is: a worker started after 'current' moves runs the new release.
    assert argv == ["/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan", "queue:work", "redis", "--queue=orders"]
    assert section["directory"] == "/srv/shop/current" and section["user"] == "shop"
    assert section["stdout_logfile"] == "/var/log/shop/shop-worker.log"
    _argv, section = argv_of(programs["elms-default-worker"])
    assert section["stdout_logfile"] == "/var/www/html/storage/logs/elms-default-worker.log"


@pytest.mark.parametrize("name, expected", [
    ("shop-scheduler", ["/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan", "schedule:work"]),
    ("shop-horizon", ["/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan", "horizon"]),
    ("shop-reverb", ["/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan", "reverb:start", "--port=8080"]),
])
def test_each_kind_runs_its_own_command(name, expected):
    argv, _section = argv_of(by_name(qa.plan([SHOP], SETTINGS))[name])
    assert argv == expected


def test_a_binary_daemon_runs_as_it_is_and_must_exist_on_the_host():
    app = {"name": "a", "programs": [{"name": "a-d", "kind": "command", "command": ["/usr/local/bin/d", "-x"]}]}
    plan = qa.plan([app], SETTINGS)
    assert argv_of(plan["programs"][0])[0] == ["/usr/local/bin/d", "-x"]
    assert {"kind": "executable", "value": "/usr/local/bin/d"} in [
        {"kind": r["kind"], "value": r["value"]} for r in plan["require"]]


def test_horizon_waits_for_its_longest_supervisor_timeout():
    assert by_name(qa.plan([SHOP], SETTINGS))["shop-horizon"]["stopwaitsecs"] == 930


def test_each_app_is_recycled_the_way_its_programs_kinds_are():
    plan = qa.plan([ELMS, SHOP], SETTINGS)
    recycle = [(r["app"], r["command"], r["chdir"], r["programs"]) for r in plan["recycle"]]
    assert recycle == [
        ("elms", ["runuser", "-u", "www-data", "--", "/usr/bin/php", "/var/www/html/artisan", "queue:restart"],
         "/var/www/html", ["elms-default-worker"]),
        ("shop", ["runuser", "-u", "shop", "--", "/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan",
                  "queue:restart"], "/srv/shop/current", ["shop-worker"]),
        ("shop", None, "/srv/shop/current", ["shop-scheduler", "shop-pulse"]),
        ("shop", ["runuser", "-u", "shop", "--", "/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan",
                  "reverb:restart"], "/srv/shop/current", ["shop-reverb"]),
        ("shop", ["runuser", "-u", "shop", "--", "/opt/plesk/php/8.2/bin/php", "/srv/shop/current/artisan",
                  "horizon:terminate"], "/srv/shop/current", ["shop-horizon"]),
    ]
    assert sorted(p["name"] for p in plan["recycle_programs"]) == sorted(by_name(plan))


def test_an_absent_app_gives_its_owner_and_nothing_else():
    plan = qa.plan([ELMS, dict(SHOP, state="absent", dir="/gone")], SETTINGS)
    assert plan["errors"] == []
    assert plan["owners"] == ["elms.queue_workers/elms", "elms.queue_workers/shop"]
    assert sorted(by_name(plan)) == ["elms-default-worker"]
    # Nothing of a removed app is required on the host (its directory may be gone already).
    assert not any("/gone" in r["value"] for r in plan["require"])
    assert [r["app"] for r in plan["recycle"]] == ["elms"]


def test_the_single_app_of_the_role_variables_is_named_by_them():
    problems = qa.errors([{"name": "Bad_Name", "programs": []}], SETTINGS, single=True)
    assert any(p.startswith("queue_workers_app_name = 'Bad_Name'") for p in problems)
    problems = qa.errors([{"name": "elms", "programs": [{"name": "x"}]}], dict(SETTINGS, php="php"), single=True)
    assert any(p.startswith("queue_workers_php = 'php' must be an absolute path") for p in problems)
    assert any(p.startswith("queue_workers_programs[0] (x).queue") for p in problems)


@pytest.mark.parametrize("apps, words", [
    pytest.param("shop", "must be a list of apps", id="not-a-list"),
    pytest.param([], "must be a list of apps", id="empty"),
    pytest.param([{"name": "elms", "programs": [], "dri": "/x"}], "unknown keys dri", id="unknown-key"),
    pytest.param([{"name": "-shop", "programs": []}], "queue_workers_apps[0] (-shop).name = '-shop'", id="bad-name"),
    pytest.param([{"name": "a" * 33, "programs": []}], "1-32", id="long-name"),
    pytest.param([ELMS, dict(ELMS)], "app elms is listed twice", id="same-app-twice"),
    pytest.param([dict(ELMS, state="gone")], "queue_workers_apps[0] (elms).state = 'gone'", id="bad-state"),
    pytest.param([ELMS, {"name": "shop", "programs": [{"name": "elms-default-worker", "queue": "q"}]}],
                 "program elms-default-worker is also a program of app elms", id="name-across-apps"),
    pytest.param([dict(SHOP, php="php")], "queue_workers_apps[0] (shop).php (or queue_workers_php) = 'php'",
                 id="app-php-relative"),
    pytest.param([dict(SHOP, programs=None)], "queue_workers_apps[0] (shop).programs must be a list", id="no-programs"),
    pytest.param([{"name": "a", "programs": [{"name": "a-s", "kind": "schedule", "queue": "default"}]}],
                 "(kind schedule) sets queue", id="queue-on-schedule"),
    pytest.param([{"name": "a", "programs": [{"name": "a-s", "kind": "schedule", "numprocs": 2}]}],
                 "a second scheduler would run every scheduled task twice", id="two-schedulers"),
    pytest.param([{"name": "a", "programs": [{"name": "a-h", "kind": "horizon", "numprocs": 3}]}],
                 "Horizon sizes its own workers", id="horizon-numprocs"),
    pytest.param([{"name": "a", "programs": [{"name": "a-h", "kind": "horizon", "sleep": 3}]}],
                 "(kind horizon) sets sleep", id="queue-option-on-horizon"),
    pytest.param([{"name": "a", "programs": [{"name": "a-c", "kind": "command"}]}],
                 "(kind command) needs command", id="command-missing"),
    pytest.param([{"name": "a", "programs": [{"name": "a-c", "kind": "command", "command": ["bin/daemon"]}]}],
                 "must be an absolute path", id="command-relative-binary"),
    pytest.param([{"name": "a", "programs": [{"name": "a-c", "kind": "command", "command": ["--port=1"]}]}],
                 "starts with an option", id="command-starts-with-option"),
    pytest.param([{"name": "a", "programs": [{"name": "a-c", "kind": "command", "command": "reverb:start"}]}],
                 "must be a list of words", id="command-not-a-list"),
    pytest.param([{"name": "a", "programs": [{"name": "a-q", "queue": "q", "restart_command": ["x"]}]}],
                 "(kind queue) sets restart_command", id="restart-command-on-queue"),
    pytest.param([{"name": "a", "programs": [{"name": "a-q", "kind": "cron"}]}],
                 "kind = 'cron' must be one of command, horizon, queue, schedule", id="unknown-kind"),
])
def test_bad_apps_are_named(apps, words):
    problems = qa.errors(apps, SETTINGS)
    assert any(words in problem for problem in problems), problems
    assert qa.plan(apps, SETTINGS)["programs"] == []


def test_extra_args_may_repeat_queue_flags_only_outside_the_queue_kind():
    app = {"name": "a", "programs": [{"name": "a-c", "kind": "command", "command": ["octane:start"],
                                      "extra_args": ["--max-requests=500"]},
                                     {"name": "a-q", "queue": "q", "extra_args": ["--queue=x"]}]}
    problems = qa.errors([app], SETTINGS)
    assert len(problems) == 1 and "a-q" in problems[0] and "--queue" in problems[0]


def test_the_kinds_table_is_the_one_the_spec_offers():
    import os
    import yaml
    spec_file = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "queue_workers", "meta",
                             "argument_specs.yml")
    with open(spec_file) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert sorted(spec["queue_workers_programs"]["options"]["kind"]["choices"]) == sorted(dk.KINDS)
    assert spec["queue_workers_programs"]["options"]["kind"]["default"] == dk.DEFAULT_KIND
    assert spec["queue_workers_apps"]["options"]["programs"]["options"] == spec["queue_workers_programs"]["options"]
    assert sorted(spec["queue_workers_apps"]["options"]) == sorted(qa.APP_KEYS)
