"""The diagnosis's judgement: observations of a host in, findings with their fix out."""

import copy

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import diagnosis as dg

SUP = {"running": True, "pid": 42, "config_file": "/etc/supervisor/supervisord.conf", "config_source": "argv",
       "supervisord_path": "/usr/bin/supervisord", "supervisorctl_path": "/usr/bin/supervisorctl",
       "include_globs": ["/etc/supervisor/conf.d/*.conf"], "include_dir": "/etc/supervisor/conf.d",
       "include_extension": ".conf", "service_name": "supervisor", "problems": []}
CTL = "/usr/bin/supervisorctl -c /etc/supervisor/supervisord.conf"
DEFAULT_ARGV = ["/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=default", "--sleep=3", "--tries=3"]
# The video worker's file runs php behind nice and ionice, which exec it: the process shows php's argv.
VIDEO_FILE_ARGV = ["/usr/bin/nice", "-n", "10", "/usr/bin/ionice", "-c", "2", "-n", "7", "/usr/bin/php",
                   "/var/www/html/artisan", "queue:work", "--queue=video-encoding", "--sleep=10"]
VIDEO_ARGV = VIDEO_FILE_ARGV[8:]
NOW = "2026-03-01 12:01:00"


def proc(group, name, pid, state="RUNNING", description=None, spawnerr=""):
    """One entry of supervisor.getAllProcessInfo()."""
    return {"group": group, "name": name, "statename": state, "pid": pid, "spawnerr": spawnerr, "exitstatus": 0,
            "description": description if description is not None else "pid %s, uptime 0:01:00" % pid}


PROCESSES = [proc("elms-default-worker", "elms-default-worker_00", 10),
             proc("elms-default-worker", "elms-default-worker_01", 11),
             proc("elms-video-worker", "elms-video-worker_00", 12)]
FATAL_VIDEO = {"rpc__processes__2__statename": "FATAL", "rpc__processes__2__pid": 0,
               "rpc__processes__2__description": "Exited too quickly (process log may have details)"}
HEALTHY = {
    "supervisor": SUP,
    "programs": [{"name": n, "file": "/etc/supervisor/conf.d/%s.conf" % n, "file_exists": True, "file_owned": True,
                  "defined_in": [], "state": "started", "commands": [argv]}
                 for n, argv in (("elms-default-worker", DEFAULT_ARGV), ("elms-video-worker", VIDEO_FILE_ARGV))],
    "rpc": {"processes": PROCESSES, "reread": {"added": [], "changed": [], "removed": []}},
    "cmdlines": {10: DEFAULT_ARGV, 11: DEFAULT_ARGV, 12: VIDEO_ARGV},
    "orphans": [],
    "log": {"now": NOW, "lines": [
        "2026-03-01 11:50:00,001 INFO exited: elms-video-worker_00 (exit status 255; not expected)",
        "2026-03-01 11:50:03,001 INFO gave up: elms-video-worker_00 entered FATAL state, too many start retries too "
        "quickly",
        "2026-03-01 12:00:40,000 INFO exited: elms-default-worker_00 (exit status 0; expected)",
        "2026-03-01 12:00:41,000 INFO success: elms-default-worker_00 entered RUNNING state, process has stayed up "
        "for > than 5 seconds (startsecs)"]},
    "app": {"dir": "/var/www/html", "user": "www-data", "artisan_exists": True, "user_exists": True,
            "unwritable": [], "writable_checked": True, "queue_work": {"rc": 0, "output": ""},
            "dotenv": {"QUEUE_CONNECTION": "database"}, "config_cached": False},
    "probe": {"default": "database", "sizes": {"default": 0, "video-encoding": 1}, "failed": 0},
    "ffmpeg": {"path": "/usr/bin/ffmpeg", "rc": 0, "encoders": "libx264 + aac"},
}


def _key(target, key):
    """A list index or an int dict key (a pid) when the path part is a number."""
    if key.isdigit() and (isinstance(target, list) or int(key) in target):
        return int(key)
    return key


def broken(**changes):
    obs = copy.deepcopy(HEALTHY)
    for path, value in changes.items():
        target = obs
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[_key(target, key)]
        target[_key(target, keys[-1])] = value
    return obs


def failing(obs):
    return [f for f in dg.evaluate(obs) if f["status"] in (dg.FAIL, dg.WARN)]


def test_a_healthy_host_has_no_finding_to_act_on():
    findings = dg.evaluate(HEALTHY)
    assert failing(HEALTHY) == []
    assert dg.summary(findings) == "healthy: nothing to do"
    assert [f["check"] for f in findings][:2] == ["supervisord", "config"]


ORPHANS = [{"pid": 501, "ppid": 1, "group": "elms-default-worker", "process": "elms-default-worker_00",
            "cmdline": DEFAULT_ARGV},
           {"pid": 502, "ppid": 1, "group": "elms-video-worker", "process": "elms-video-worker_00",
            "cmdline": VIDEO_ARGV}]
CANT_REREAD = {"code": 92, "message": "CANT_REREAD: File contains parsing errors: /etc/supervisor/conf.d/x.conf\n"
               "\t[line  3]: 'oops\\n'"}
OLDER_DEFAULT_ARGV = DEFAULT_ARGV[:4] + ["--sleep=1"] + DEFAULT_ARGV[5:]


def reread(added=(), changed=(), removed=()):
    return {"added": list(added), "changed": list(changed), "removed": list(removed)}


def recent(*messages):
    """supervisord log lines within the last minute before NOW."""
    return {"now": NOW, "lines": ["2026-03-01 12:00:%02d,500 INFO %s" % (30 + i, m) for i, m in enumerate(messages)]}


@pytest.mark.parametrize("changes, status, words", [
    pytest.param({"supervisor__running": False}, dg.FAIL,
                 ["but not running, so no worker runs", "systemctl enable --now supervisor"],
                 id="stopped"),
    pytest.param({"supervisor__running": False, "supervisor__supervisord_path": None}, dg.FAIL,
                 ["not installed", "site playbook"], id="not-installed"),
    pytest.param({"supervisor__problems": ["no [include] section in /etc/supervisord.conf"]}, dg.FAIL,
                 ["no [include] section", "queue_workers_supervisor_config_file"], id="detection-problem"),
    pytest.param({"programs__1__file_exists": False,
                  "programs__1__defined_in": ["/etc/supervisor/conf.d/elms-video-worker.ini"],
                  "rpc__processes": PROCESSES[:2]},
                 dg.FAIL, ["elms-video-worker.ini, which supervisord does not load", "move it to"],
                 id="wrong-extension"),
    pytest.param({"programs__1__file_exists": False, "programs__1__defined_in": ["/etc/supervisor/conf.d/video.conf"]},
                 dg.WARN, ["defined in /etc/supervisor/conf.d/video.conf", "queue_workers_take_over"], id="hand-made-copy"),
    pytest.param({"programs__1__file_exists": False}, dg.FAIL, ["no program file", "does not exist"], id="no-file"),
    pytest.param({"rpc__reread": reread(added=["elms-default-worker"]), "rpc__processes": PROCESSES[2:]}, dg.FAIL,
                 ["elms-default-worker is read but not added", "%s update elms-default-worker" % CTL], id="not-added"),
    pytest.param({"rpc__reread": reread(changed=["elms-default-worker"])}, dg.FAIL,
                 ["/etc/supervisor/conf.d/elms-default-worker.conf differs from what supervisord runs",
                  "written but not applied", "run the site playbook, which applies it (or %s update "
                  "elms-default-worker)" % CTL], id="not-applied"),
    pytest.param({"rpc__reread": reread(changed=["elms-default-worker"]), "cmdlines__10": OLDER_DEFAULT_ARGV}, dg.FAIL,
                 ["not applied", "pid 10 (elms-default-worker:elms-default-worker_00) still runs the older command "
                  "line"], id="not-applied-and-running-old-code"),
    pytest.param({"rpc__processes": PROCESSES[:2]}, dg.FAIL, ["has not read", "reread"], id="not-read"),
    pytest.param({"rpc__reread": None, "rpc__reread_error": CANT_REREAD}, dg.FAIL,
                 ["supervisord cannot read its config: File contains parsing errors: /etc/supervisor/conf.d/x.conf [line  3]",
                  "fix or remove the file"],
                 id="cant-reread"),
    pytest.param({"rpc__reread": None, "rpc__reread_error": {"code": 6, "message": "SHUTDOWN_STATE"}}, dg.WARN,
                 ["did not say which program files changed", "SHUTDOWN_STATE"], id="reread-refused"),
    pytest.param({"rpc": {"error": "cannot reach supervisord: socket /run/supervisor.sock does not exist"}}, dg.FAIL,
                 ["cannot talk to supervisord", "socket /run/supervisor.sock", "serverurl"], id="socket"),
    pytest.param(FATAL_VIDEO, dg.FAIL,
                 ["1 of 1 process(es) not RUNNING", "elms-video-worker:elms-video-worker_00 FATAL Exited too quickly",
                  "start 'elms-video-worker:*'"], id="fatal"),
    pytest.param(dict(FATAL_VIDEO, rpc__processes__2__spawnerr="can't find command '/usr/bin/php'"), dg.FAIL,
                 ["FATAL", "(spawnerr: can't find command '/usr/bin/php')"], id="fatal-spawnerr"),
    pytest.param(dict(FATAL_VIDEO, log=recent(
        "spawnerr: can't find command '/usr/bin/nice'",
        "gave up: elms-video-worker_00 entered FATAL state, too many start retries too quickly")), dg.FAIL,
        ["FATAL", "supervisord log in the last minute: 2026-03-01 12:00:30,500 INFO spawnerr: can't find command "
         "'/usr/bin/nice' | 2026-03-01 12:00:31,500 INFO gave up: elms-video-worker_00 entered FATAL state"],
        id="fatal-log-lines"),
    pytest.param({"rpc__processes__1__statename": "BACKOFF", "rpc__processes__1__description": "Exited too quickly",
                  "log": recent("exited: elms-default-worker_01 (exit status 255; not expected)")}, dg.FAIL,
                 ["1 of 2 process(es) not RUNNING", "BACKOFF", "exited: elms-default-worker_01 (exit status 255; "
                  "not expected)"], id="backoff"),
    pytest.param({"log": recent("exited: elms-default-worker_01 (exit status 255; not expected)")}, dg.WARN,
                 ["could not start in the last minute, runs now",
                  "2026-03-01 12:00:30,500 INFO exited: elms-default-worker_01 (exit status 255; not expected)",
                  "elms-default-worker's log"], id="recent-start-failure"),
    pytest.param({"cmdlines__11": OLDER_DEFAULT_ARGV}, dg.FAIL,
                 ["pid 11 (elms-default-worker:elms-default-worker_01) runs an older command line than its file",
                  "--sleep=1", "the file says: /usr/bin/php /var/www/html/artisan queue:work --queue=default --sleep=3",
                  "supervisord has the file's command but these processes were started with another",
                  "restart 'elms-default-worker:*'"], id="older-command-line"),
    pytest.param({"cmdlines__10": OLDER_DEFAULT_ARGV, "cmdlines__11": OLDER_DEFAULT_ARGV, "rpc__reread": None,
                  "rpc__reread_error": CANT_REREAD}, dg.FAIL,
                 ["cannot read its config", "pid 10 (elms-default-worker:elms-default-worker_00), pid 11 "
                  "(elms-default-worker:elms-default-worker_01) run an older command line than its file",
                  "fix that first, then run the site playbook, which applies the file"],
                 id="older-command-line-behind-a-broken-config"),
    pytest.param({"cmdlines__12": ["/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=video-encoding"]},
                 dg.FAIL, ["pid 12 (elms-video-worker:elms-video-worker_00) runs an older command line"],
                 id="older-command-line-behind-nice"),
    pytest.param({"orphans": ORPHANS}, dg.FAIL,
                 ["2 worker process(es) left running by a supervisord that is gone",
                  "pid 501 (elms-default-worker:elms-default-worker_00), pid 502 (elms-video-worker:elms-video-worker_00)",
                  "they run old code unmanaged beside the managed ones",
                  "the site playbook stops them gracefully (SIGTERM, the job finishes), or kill -TERM 501 502"],
                 id="orphans"),
    pytest.param({"supervisor__running": False, "orphans": ORPHANS[:1]}, dg.FAIL,
                 ["but not running, so no worker is managed", "pid 501 (elms-default-worker:elms-default-worker_00)",
                  "kill -TERM 501"],
                 id="orphans-of-a-killed-supervisord"),
    pytest.param({"app__artisan_exists": False}, dg.FAIL, ["artisan does not exist", "queue_workers_app_dir"], id="no-app"),
    pytest.param({"app__user_exists": False}, dg.FAIL, ["www-data does not exist"], id="no-user"),
    pytest.param({"app__unwritable": ["storage/logs/"]}, dg.FAIL, ["cannot write storage/logs/", "chown -R www-data"],
                 id="storage"),
    pytest.param({"app__queue_work": {"rc": 1, "output": "PDOException: could not find driver"}}, dg.FAIL,
                 ["exits 1", "could not find driver"], id="queue-work"),
    pytest.param({"probe__default": "sync"}, dg.FAIL, ["QUEUE_CONNECTION is sync", "QUEUE_CONNECTION=database"], id="sync"),
    pytest.param({"app__dotenv": None}, dg.WARN, [".env does not exist"], id="no-dotenv"),
    pytest.param({"app__config_cached": True, "app__dotenv": {"QUEUE_CONNECTION": "redis"}}, dg.WARN,
                 ["cached config says database", "config:cache"], id="cached-config"),
    pytest.param({"probe__failed": 3}, dg.WARN, ["3 failed job(s)", "queue:retry all"], id="failed-jobs"),
    pytest.param({"probe": {"error": "PHP Fatal error: boom"}}, dg.WARN, ["could not be asked", "boom"], id="probe-error"),
    pytest.param({"ffmpeg": {}}, dg.FAIL, ["ffmpeg is not on PATH"], id="no-ffmpeg"),
    pytest.param({"ffmpeg": {"path": "/usr/bin/ffmpeg", "rc": 1, "output": "Unknown encoder 'libx264'"}}, dg.FAIL,
                 ["cannot encode HLS", "Unknown encoder"], id="ffmpeg-broken"),
])
def test_each_fault_is_named_with_its_fix(changes, status, words):
    found = failing(broken(**changes))
    assert found, "no finding for %s" % changes
    assert found[0]["status"] == status
    text = " ".join("%s %s" % (f["summary"], f["fix"]) for f in found)
    assert [w for w in words if w not in text] == []


@pytest.mark.parametrize("changes", [
    pytest.param({"log": recent("exited: elms-default-worker_00 (exit status 0; expected)")}, id="recycled-worker"),
    pytest.param({"log": recent("exited: other-program_00 (exit status 1; not expected)",
                                "gave up: other-program_00 entered FATAL state, too many start retries too quickly",
                                "spawnerr: can't find command '/opt/other'")}, id="another-program"),
    pytest.param({"log": {"now": NOW, "lines": [
        "2026-03-01 11:59:59,999 INFO exited: elms-default-worker_00 (exit status 255; not expected)"]}},
        id="start-failure-more-than-a-minute-ago"),
    pytest.param({"log": {"now": "not a time", "lines": recent("gave up: elms-video-worker_00 entered FATAL")["lines"]}},
                 id="unknown-time"),
    pytest.param({"log": {}}, id="no-supervisord-log"),
    pytest.param({"cmdlines__10": None}, id="cmdline-unreadable"),
    pytest.param({"programs__0__commands": []}, id="command-unknown"),
    pytest.param({"programs__0__state": "stopped", "rpc__processes__0__statename": "STOPPED",
                  "rpc__processes__1__statename": "EXITED"}, id="kept-stopped"),
    pytest.param({"rpc__reread": reread(removed=["an-old-program"])}, id="someone-else-removed"),
])
def test_what_is_not_a_fault_is_not_reported(changes):
    assert failing(broken(**changes)) == []


@pytest.mark.parametrize("changes", [
    pytest.param({"rpc__reread": reread(changed=["elms-default-worker"]), "cmdlines__10": OLDER_DEFAULT_ARGV},
                 id="changed-and-running-old-code"),
    pytest.param({"rpc__reread": reread(added=["elms-default-worker"]), "rpc__processes": PROCESSES[2:]},
                 id="read-but-not-added"),
])
def test_one_cause_is_one_problem(changes):
    assert [(f["check"], f["status"]) for f in failing(broken(**changes))] == [("loaded elms-default-worker", dg.FAIL)]


def test_a_stopped_supervisord_skips_the_process_checks_but_not_the_orphans():
    findings = dg.evaluate(broken(supervisor__running=False))
    assert {"check": "processes", "status": dg.SKIP, "fix": None,
            "summary": "not asked: supervisord is not running"} in findings
    assert {"check": "orphans", "status": dg.OK, "fix": None,
            "summary": "no worker left running by a supervisord that is gone"} in findings


def test_a_file_in_the_main_config_counts_as_loaded():
    obs = broken(programs__0__file_exists=False, programs__0__defined_in=[SUP["config_file"]])
    found = failing(obs)
    assert [f["status"] for f in found] == [dg.WARN]


@pytest.mark.parametrize("text, expected", [
    pytest.param("[program:w]\ncommand=/usr/bin/php artisan queue:work --queue=default\n",
                 [["/usr/bin/php", "artisan", "queue:work", "--queue=default"]], id="plain"),
    pytest.param("[program:w]\ncommand=php artisan queue:work --name=100%%\n",
                 [["php", "artisan", "queue:work", "--name=100%"]], id="percent-escaped"),
    pytest.param("[program:w]\ncommand=php 'my app/artisan' \"a b\" c\\ d\n",
                 [["php", "my app/artisan", "a b", "c d"]], id="shlex-quoting"),
    pytest.param("[program:w]\ncommand=%(ENV_PHP)s %(here)s/artisan --name=%(program_name)s-%(group_name)s@"
                 "%(host_node_name)s\n", [["/opt/php", "/etc/sv/artisan", "--name=w-w@web1"]], id="expansions"),
    pytest.param("[program:w]\nnumprocs=2\nnumprocs_start=1\ncommand=php artisan --n=%(process_num)02d/%(numprocs)d\n",
                 [["php", "artisan", "--n=01/2"], ["php", "artisan", "--n=02/2"]], id="per-process"),
    pytest.param("[program:w]\nnumprocs=3\ncommand=php artisan queue:work ; a comment\n",
                 [["php", "artisan", "queue:work"]], id="same-for-every-process"),
    pytest.param("[program:other]\ncommand=php\n", [], id="no-such-section"),
    pytest.param("[program:w]\ndirectory=/tmp\n", [], id="no-command"),
    pytest.param(None, [], id="no-file"),
])
def test_file_commands_expand_and_split_like_supervisord(text, expected):
    assert dg.file_commands(text, "w", "/etc/sv", {"PHP": "/opt/php"}, "web1") == (expected, None)


@pytest.mark.parametrize("text, error", [
    pytest.param("[program:w]\ncommand=%(ENV_NOPE)s artisan\n", "names 'ENV_NOPE', which supervisord cannot expand",
                 id="unknown-expansion"),
    pytest.param("[program:w]\ncommand=php artisan 'unclosed\n", "cannot be expanded and split", id="bad-quoting"),
    pytest.param("[program:w]\nnumprocs=many\ncommand=php\n", "numprocs cannot be read", id="bad-numprocs"),
    pytest.param("[program:w\ncommand=php\n", "cannot be parsed", id="broken-file"),
])
def test_file_commands_say_why_they_cannot_be_worked_out(text, error):
    argvs, problem = dg.file_commands(text, "w", "/etc/sv", {}, "web1")
    assert argvs == [] and error in problem


@pytest.mark.parametrize("actual, expected, same", [
    pytest.param(DEFAULT_ARGV, DEFAULT_ARGV, True, id="same"),
    pytest.param(VIDEO_ARGV, VIDEO_FILE_ARGV, True, id="behind-nice-and-ionice"),
    pytest.param(VIDEO_FILE_ARGV[3:], VIDEO_FILE_ARGV, True, id="behind-nice"),
    pytest.param(DEFAULT_ARGV[1:], DEFAULT_ARGV, False, id="a-tail-without-a-wrapper"),
    pytest.param(DEFAULT_ARGV + ["--force"], DEFAULT_ARGV, False, id="one-more-argument"),
    pytest.param([], DEFAULT_ARGV, False, id="empty"),
])
def test_runs_command_sees_through_exec_wrappers_only(actual, expected, same):
    assert dg.runs_command(actual, expected) is same


def test_start_errors_keep_the_last_minute_of_these_processes_only():
    lines = ["2026-03-01 11:59:59,000 INFO gave up: w_00 entered FATAL state, too many start retries too quickly",
             "2026-03-01 12:00:00,000 INFO spawnerr: can't find command '/usr/bin/php'",
             "2026-03-01 12:00:10,000 INFO spawnerr: unknown error making dispatchers for 'w_01': EACCES",
             "2026-03-01 12:00:20,000 INFO exited: w_01 (exit status 0; expected)",
             "2026-03-01 12:00:30,000 INFO exited: w_01 (exit status 1; not expected)",
             "2026-03-01 12:00:31,000 INFO exited: w_010 (exit status 1; not expected)",
             "2026-03-01 12:00:40,000 INFO exited: w_01 (terminated by SIGKILL; not expected)",
             "a line without a time: gave up: w_00",
             "2026-03-01 12:00:50,000 INFO gave up: w_00 entered FATAL state, too many start retries too quickly"]
    assert dg.start_errors(lines, ["w_00", "w_01"], ["/usr/bin/php"], "2026-03-01 12:01:00") == [
        lines[1], lines[2], lines[4], lines[8]]


def test_parsers_read_dotenv_and_program_sections():
    env = dg.parse_dotenv('# c\nexport QUEUE_CONNECTION="redis"\nA=b # note\nB=\'x # y\'\nnot a line\n')
    assert env == {"QUEUE_CONNECTION": "redis", "A": "b", "B": "x # y"}
    assert dg.program_sections("[program:a]\n x=1\n[program:b c]\n[group:g]\n") == ["a", "b c"]


def test_the_report_puts_findings_and_fixes_first_then_the_logs():
    obs = broken(**{"probe__default": "sync"})
    text = dg.format_report("web1", dg.evaluate(obs), [
        {"what": "worker elms-video-worker", "path": "/x.log", "tail": ["line 1"], "missing": False},
        {"what": "supervisord", "path": "/y.log", "tail": None, "missing": True}])
    lines = text.splitlines()
    assert lines[:2] == ["eLMS queue workers: diagnosis of web1", "Result: 1 problem(s), 0 warning(s)"]
    fail = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] queue"))
    assert "fix: set QUEUE_CONNECTION=database" in lines[fail + 1]
    assert lines[-5:] == ["--- last lines of /x.log (worker elms-video-worker)", "line 1", "",
                          "--- last lines of /y.log (supervisord)", "(no such file)"]


VIDEO = {"name": "v", "nice": 10, "ionice_class": "best-effort", "ionice_level": 7}


@pytest.mark.parametrize("seen, status, words", [
    pytest.param({"nice": 10, "io": "best-effort: prio 7"}, "ok", "runs at the CPU and I/O priority", id="as-asked"),
    pytest.param({"nice": 0, "io": "best-effort: prio 7"}, "fail", "runs at nice 0, not 10", id="nice-not-applied"),
    pytest.param({"nice": 10, "io": "none: prio 4"}, "fail", "I/O class 'none: prio 4', not best-effort", id="io-class"),
    pytest.param({"nice": 10, "io": "best-effort: prio 4"}, "fail", "not level 7", id="io-level"),
])
def test_isolation_is_read_from_the_running_processes(seen, status, words):
    obs = {"programs": [VIDEO], "priorities": {42: seen},
           "rpc": {"processes": [{"group": "v", "name": "v_00", "pid": 42, "statename": "RUNNING"}]}}
    found = dg._isolation(obs)
    assert len(found) == 1 and found[0]["status"] == status and words in found[0]["summary"], found


def test_workers_without_isolation_are_not_judged():
    obs = {"programs": [{"name": "d"}], "priorities": {1: {"nice": 0, "io": "none: prio 4"}},
           "rpc": {"processes": [{"group": "d", "name": "d_00", "pid": 1, "statename": "RUNNING"}]}}
    assert dg._isolation(obs) == []


def scaled_host(spare_states, scaling=None):
    """HEALTHY with the video worker scaled: its spare program holds two processes in spare_states."""
    obs = copy.deepcopy(HEALTHY)
    obs["programs"].append({"name": "elms-video-worker-spare", "file": "/etc/supervisor/conf.d/elms-video-worker-spare.conf",
                            "file_exists": True, "file_owned": True, "defined_in": [], "state": "scaled",
                            "commands": [VIDEO_FILE_ARGV]})
    for number, state in enumerate(spare_states, 1):
        pid = 20 + number if state == "RUNNING" else 0
        obs["rpc"]["processes"].append(proc("elms-video-worker-spare", "elms-video-worker_%02d" % number, pid, state,
                                            description="" if pid == 0 else None))
        if pid:
            obs["cmdlines"][pid] = VIDEO_ARGV
    obs["alerts"] = {"installed": True, "program": "queue-workers-alerts", "states": ["RUNNING"],
                     "log": "/var/log/elms-queue-workers/alerts.log", "state": {"scaling": scaling or {}}}
    return obs


def test_stopped_spares_are_not_a_fault_and_the_last_decision_is_shown():
    decision = {"at": "2026-03-01T12:00:00Z", "from": 2, "to": 1, "reason": "backlog 0 (video-encoding 0)"}
    obs = scaled_host(["RUNNING", "STOPPED"], {"elms-video-worker": {
        "min": 1, "max": 3, "current": 2, "wanted": 1, "backlog": 0, "avg_job_seconds": 41.5, "jobs_measured": 6,
        "last_decision": decision}})
    assert failing(obs) == []
    found = dict((f["check"], f["summary"]) for f in dg.evaluate(obs))
    assert found["running elms-video-worker-spare"].startswith("1 of 2 spare process(es) RUNNING")
    assert found["scaling"] == ("elms-video-worker: 2 process(es) up, range 1-3, backlog 0, average job 41.5 s over 6; "
                                "last decision at 2026-03-01T12:00:00Z: 2 -> 1, backlog 0 (video-encoding 0)")


def test_a_spare_that_cannot_start_is_a_fault():
    obs = scaled_host(["FATAL", "STOPPED"])
    assert [f["check"] for f in failing(obs)] == ["running elms-video-worker-spare"]
    assert "1 of 2 spare process(es) cannot start" in failing(obs)[0]["summary"]
