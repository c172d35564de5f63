"""The alert listener (roles/queue_workers/files/alert_listener.py), a supervisor event listener.

The script is no module of the collection (it is copied to the hosts and run by their
python3), so it is loaded from its path. Its logic runs on a fake clock with fake
senders and a fake XML-RPC proxy; the protocol on real pipes; the webhook against a real
HTTP server; and the whole listener inside a real supervisord, which makes a program
FATAL and must see it started again and given up on.
"""

import email
import email.policy
import http.server
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client

import pytest

SCRIPT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "queue_workers", "files",
                                      "alert_listener.py"))
_spec = importlib.util.spec_from_file_location("alert_listener", SCRIPT)
al = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(al)

SECRET_PATH = "/services/T000/B000/s3cretPath"
ALERT_KEYS = {"host", "app", "program", "process", "event", "from_state", "to_state", "time", "pid", "attempt",
              "suppressed", "log_tail", "text"}


def make_config(tmp_path, **overrides):
    raw = {
        "host": "web1",
        "programs": {"elms-video-worker": {"app": "elms", "log": str(tmp_path / "video.log")},
                     "elms-default-worker": {"app": "elms"}},
        "state_file": str(tmp_path / "state" / "state.json"),
        "supervisor_config": str(tmp_path / "supervisord.conf"),
    }
    raw.update(overrides)
    return al.normalize(raw)


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeRPC:
    """supervisord's "supervisor" namespace: records calls, fails as told."""

    def __init__(self, errors=()):
        self.calls = []
        self.errors = list(errors)

    processes = ()  # getAllProcessInfo's answer; an exception instance: raised

    def getAllProcessInfo(self):  # the XML-RPC method's name
        if isinstance(self.processes, Exception):
            raise self.processes
        return list(self.processes)

    def startProcess(self, name, wait):  # the XML-RPC method's name
        self.calls.append((name, wait))
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        return True


def new_listener(tmp_path, clock=None, rpc=None, **overrides):
    alerts = []
    clock = clock or Clock()
    listener = al.Listener(make_config(tmp_path, **overrides), clock=clock, rpc=rpc or FakeRPC(), send=alerts.append)
    return listener, alerts, clock


def state_event(listener, to_state, process="elms-video-worker:elms-video-worker_00", **extra):
    group, name = process.split(":")
    payload = {"processname": name, "groupname": group, "from_state": extra.pop("from_state", "STARTING")}
    payload.update(dict((k, str(v)) for k, v in extra.items()))
    listener.handle({"ver": "3.0", "eventname": "PROCESS_STATE_" + to_state, "len": "0"}, payload)


def tick(listener, clock, at):
    clock.now = at
    listener.handle({"ver": "3.0", "eventname": "TICK_5", "len": "15"}, {"when": str(int(at))})


def events(alerts):
    return [(a["event"], a["process"]) for a in alerts]


# --- parsing --------------------------------------------------------------------------

def test_parse_header():
    line = "ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 eventname:PROCESS_STATE_FATAL len:54\n"
    assert al.parse_header(line) == {"ver": "3.0", "server": "supervisor", "serial": "21", "pool": "listener",
                                     "poolserial": "10", "eventname": "PROCESS_STATE_FATAL", "len": "54"}


@pytest.mark.parametrize("line", ["garbage here\n", "ver:3.0 eventname:TICK_5\n", "ver:3.0 len:x\n", "\n"])
def test_parse_header_rejects(line):
    with pytest.raises(ValueError):
        al.parse_header(line)


def test_parse_payload():
    assert al.parse_payload("processname:cat groupname:cat from_state:RUNNING expected:0 pid:2766") == {
        "processname": "cat", "groupname": "cat", "from_state": "RUNNING", "expected": "0", "pid": "2766"}
    # events with data after the token line (PROCESS_LOG, PROCESS_COMMUNICATION): only the tokens count
    assert al.parse_payload("processname:a groupname:b channel:stdout\nkey:value in the data") == {
        "processname": "a", "groupname": "b", "channel": "stdout"}


# --- the protocol loop ----------------------------------------------------------------

def envelope(eventname, payload, serial=1):
    return "ver:3.0 server:supervisor serial:%d pool:alerts poolserial:%d eventname:%s len:%d\n%s" % (
        serial, serial, eventname, len(payload), payload)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def quiet_config(tmp_path, programs=None):
    return write_json(tmp_path / "alerts.json", {
        "host": "web1", "programs": programs or {"crasher": {"app": "elms"}},
        "state_file": str(tmp_path / "state.json"), "fatal_retry": {"delays": []}})


def test_main_answers_every_event_and_exits_on_eof(tmp_path, capsys):
    config = quiet_config(tmp_path)
    stdin = io.StringIO(envelope("PROCESS_STATE_FATAL", "processname:crasher groupname:crasher from_state:BACKOFF")
                        + envelope("TICK_5", "when:1700000000", 2))
    stdout = io.StringIO()
    assert al.main(["--config", config, "--revision", "abc"], stdin=stdin, stdout=stdout) == 0
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"
    err = capsys.readouterr().err
    assert "crasher:crasher BACKOFF -> FATAL" in err
    assert "alert FATAL crasher:crasher: sent to no channel" in err
    assert all(line[:4].isdigit() and line[19] == "Z" for line in err.splitlines())  # UTC timestamps
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["last_sent"]["event"] == "FATAL" and state["pid"] == os.getpid()


def test_main_answers_ok_when_handling_fails(tmp_path, capsys, monkeypatch):
    def broken(self, headers, payload):
        raise KeyError("boom")
    monkeypatch.setattr(al.Listener, "handle", broken)
    stdin = io.StringIO(envelope("TICK_5", "when:1") + envelope("TICK_5", "when:2", 2))
    stdout = io.StringIO()
    assert al.main(["--config", quiet_config(tmp_path)], stdin=stdin, stdout=stdout) == 0
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"
    assert capsys.readouterr().err.count("error handling TICK_5: KeyError") == 2


def test_main_survives_a_missing_config_and_a_bad_header(tmp_path, capsys):
    stdin = io.StringIO("this is no header\n" + envelope("TICK_5", "when:1"))
    stdout = io.StringIO()
    assert al.main(["--config", str(tmp_path / "none.json")], stdin=stdin, stdout=stdout) == 0
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"
    err = capsys.readouterr().err
    assert "none.json" in err and "watching nothing" in err and "not an event header" in err


def test_main_stops_on_a_truncated_payload(tmp_path):
    stdin = io.StringIO("ver:3.0 eventname:TICK_5 len:50\nwhen:1")
    stdout = io.StringIO()
    assert al.main(["--config", quiet_config(tmp_path)], stdin=stdin, stdout=stdout) == 0
    assert stdout.getvalue() == "READY\n"


def read_exactly(stream, size):
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_protocol_on_pipes_and_config_reload(tmp_path):
    """The script as supervisor runs it; a program added to the config is watched from the next event."""
    config = quiet_config(tmp_path)
    process = subprocess.Popen([sys.executable, SCRIPT, "--config", config], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        fatal = envelope("PROCESS_STATE_FATAL", "processname:late groupname:late from_state:BACKOFF").encode()
        assert read_exactly(process.stdout, 6) == b"READY\n"
        process.stdin.write(fatal)
        process.stdin.flush()
        assert read_exactly(process.stdout, 17) == b"RESULT 2\nOKREADY\n"
        before = os.stat(config).st_mtime_ns
        quiet_config(tmp_path, {"crasher": {}, "late": {"app": "other"}})
        os.utime(config, ns=(before + 10 ** 9, before + 10 ** 9))  # a different mtime, also on coarse clocks
        process.stdin.write(fatal)
        process.stdin.flush()
        assert read_exactly(process.stdout, 17) == b"RESULT 2\nOKREADY\n"
        process.stdin.close()
        assert process.wait(timeout=20) == 0
        err = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout.read() == b""  # nothing but the protocol on stdout
    assert err.count("late:late BACKOFF -> FATAL") == 1
    assert "read again: watching crasher, late" in err
    assert "alert FATAL late:late" in err


# --- the config -----------------------------------------------------------------------

def test_defaults():
    config = al.normalize({"programs": {"w": None}})
    assert config["host"] == socket.gethostname()
    assert config["programs"] == {"w": {"app": "", "log": ""}}
    assert config["channels"] == {"webhook": None, "syslog": None, "mail": None}
    assert config["backoff_alert_after"] == 30 and config["log_lines"] == 10
    assert config["rate_limit"] == {"alerts": 3, "seconds": 600}
    assert config["fatal_retry"] == {"delays": [60, 180, 360]}
    assert config["backlog"] is None and config["scaling"] == {}
    assert config["state_file"] == "/var/lib/elms-queue-workers/alerts/state.json"
    assert config["supervisor_config"] == "/etc/supervisor/supervisord.conf"
    given = al.normalize({"host": "h", "programs": {}, "channels": {
        "webhook": {"url": "https://x/y"}, "syslog": {}, "mail": {"to": "ops@example.org"}}})["channels"]
    assert given["webhook"] == {"url": "https://x/y", "timeout": 5}
    assert given["syslog"] == {"facility": "daemon", "tag": "elms-queue-workers"}
    assert given["mail"] == {"to": ["ops@example.org"], "from": "root@h", "sendmail": "/usr/sbin/sendmail"}


@pytest.mark.parametrize("raw, words", [
    ({}, "programs"),
    ({"programs": {}, "channels": {"webhook": {"url": "ftp://x"}}}, "webhook.url"),
    ({"programs": {}, "rate_limit": {"alerts": 0}}, "rate_limit.alerts"),
    ({"programs": {}, "fatal_retry": {"delays": 60}}, "fatal_retry.delays"),
    ({"programs": {}, "backlog": {"apps": {"elms": {"queues": {"q": 5}}}}}, "backlog.apps.elms.dir"),
])
def test_bad_config(raw, words):
    with pytest.raises(al.ConfigError, match=words):
        al.normalize(raw)


def test_config_file_is_read_again_when_its_mtime_changes(tmp_path):
    path = write_json(tmp_path / "alerts.json", {"programs": {"a": {}}})
    watched = al.ConfigFile(path)
    assert sorted(watched.poll()["programs"]) == ["a"]
    assert watched.poll() is None
    mtime = os.stat(path).st_mtime_ns
    write_json(tmp_path / "alerts.json", {"programs": {"a": {}, "b": {}}})
    os.utime(path, ns=(mtime + 10 ** 9, mtime + 10 ** 9))
    assert sorted(watched.poll()["programs"]) == ["a", "b"]
    assert watched.poll() is None
    (tmp_path / "alerts.json").write_text('{"programs": [')
    os.utime(path, ns=(mtime + 2 * 10 ** 9, mtime + 2 * 10 ** 9))
    with pytest.raises(al.ConfigError, match="alerts.json"):
        watched.poll()
    assert watched.poll() is None  # reported once
    write_json(tmp_path / "alerts.json", {"programs": {"a": "not a mapping"}})
    os.utime(path, ns=(mtime + 3 * 10 ** 9, mtime + 3 * 10 ** 9))
    with pytest.raises(al.ConfigError):
        watched.poll()


def test_listener_follows_a_reloaded_config(tmp_path):
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "FATAL", "extra:extra_00", from_state="BACKOFF")
    assert alerts == []
    listener.configure(make_config(tmp_path, programs={"extra": {"app": "x"}}, rate_limit={"alerts": 1}))
    state_event(listener, "FATAL", "extra:extra_00", from_state="BACKOFF")
    state_event(listener, "FATAL", "extra:extra_01", from_state="BACKOFF")
    assert events(alerts) == [("FATAL", "extra:extra_00")]  # and the new rate limit holds


# --- what is alerted ------------------------------------------------------------------

def test_fatal_alert(tmp_path):
    (tmp_path / "video.log").write_text("".join("line %d\n" % i for i in range(15)))
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "FATAL", from_state="BACKOFF")
    assert len(alerts) == 1
    alert = alerts[0]
    assert set(alert) == ALERT_KEYS
    assert alert["host"] == "web1" and alert["app"] == "elms"
    assert alert["program"] == "elms-video-worker" and alert["process"] == "elms-video-worker:elms-video-worker_00"
    assert (alert["event"], alert["from_state"], alert["to_state"]) == ("FATAL", "BACKOFF", "FATAL")
    assert alert["time"] == "1970-01-01T00:16:40Z" and alert["suppressed"] == 0 and alert["attempt"] is None
    assert alert["log_tail"] == ["line %d" % i for i in range(5, 15)]
    assert alert["text"] == (":rotating_light: web1 elms-video-worker:elms-video-worker_00 is FATAL (was BACKOFF)"
                             " - app elms")
    json.dumps(alert)


def test_unreadable_log_gives_an_empty_tail(tmp_path):
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "FATAL", "elms-default-worker:elms-default-worker_00", from_state="BACKOFF")
    state_event(listener, "FATAL", from_state="BACKOFF")  # its log file does not exist
    assert [a["log_tail"] for a in alerts] == [[], []]


def test_backoff_is_alerted_once_when_it_lasts(tmp_path):
    listener, alerts, clock = new_listener(tmp_path, backoff_alert_after=30)
    state_event(listener, "BACKOFF", tries=1)
    clock.now += 3
    state_event(listener, "STARTING", from_state="BACKOFF", tries=1)  # a crash loop: still the same BACKOFF
    state_event(listener, "BACKOFF", tries=2)
    tick(listener, clock, 1029)
    assert alerts == []
    tick(listener, clock, 1030)
    assert events(alerts) == [("BACKOFF", "elms-video-worker:elms-video-worker_00")]
    assert "BACKOFF) for 30 s" in alerts[0]["text"]
    tick(listener, clock, 1100)
    assert len(alerts) == 1
    state_event(listener, "RUNNING", pid=42)
    assert [a["event"] for a in alerts] == ["BACKOFF", "RUNNING"]


def test_short_backoff_is_not_alerted(tmp_path):
    listener, alerts, clock = new_listener(tmp_path)
    state_event(listener, "BACKOFF", tries=1)
    clock.now += 5
    state_event(listener, "STARTING", from_state="BACKOFF", tries=1)
    clock.now += 5
    state_event(listener, "RUNNING", pid=7)
    tick(listener, clock, 5000)
    assert alerts == []


def test_unexpected_exit_is_alerted_an_expected_one_is_not(tmp_path):
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "EXITED", from_state="RUNNING", expected=1, pid=100)  # a worker recycling, exit 0
    assert alerts == []
    state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=101)
    assert events(alerts) == [("EXITED", "elms-video-worker:elms-video-worker_00")]
    assert alerts[0]["pid"] == 101 and "EXITED unexpectedly (pid 101)" in alerts[0]["text"]


def test_recovery_only_after_a_problem(tmp_path):
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "RUNNING", pid=5)
    assert alerts == []
    state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=5)
    state_event(listener, "STARTING", from_state="EXITED")
    state_event(listener, "RUNNING", pid=6)
    assert [a["event"] for a in alerts] == ["EXITED", "RUNNING"]
    assert alerts[1]["text"].startswith(":white_check_mark: web1 elms-video-worker:elms-video-worker_00 is RUNNING "
                                        "again (pid 6)")
    state_event(listener, "RUNNING", pid=7)
    assert len(alerts) == 2


def test_unwatched_programs_and_the_listener_itself_are_ignored(tmp_path):
    alerts = []
    config = make_config(tmp_path, programs={"elms-video-worker": {}, "queue-workers-alerts": {}})
    listener = al.Listener(config, clock=Clock(), rpc=FakeRPC(), send=alerts.append, own_group="queue-workers-alerts")
    state_event(listener, "FATAL", "someone-else:someone-else", from_state="BACKOFF")
    state_event(listener, "EXITED", "someone-else:someone-else", expected=0)
    state_event(listener, "FATAL", "queue-workers-alerts:queue-workers-alerts", from_state="BACKOFF")
    assert alerts == []
    state_event(listener, "FATAL", from_state="BACKOFF")
    assert len(alerts) == 1


# --- the rate limit -------------------------------------------------------------------

def test_rate_limit_counts_what_it_holds_back(tmp_path):
    listener, alerts, clock = new_listener(tmp_path, rate_limit={"alerts": 3, "seconds": 600})
    for second in range(20):
        clock.now = 1000 + second
        state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=second)
    assert len(alerts) == 3 and all(a["suppressed"] == 0 for a in alerts)
    # another program has its own budget
    state_event(listener, "EXITED", "elms-default-worker:elms-default-worker_00", from_state="RUNNING", expected=0)
    assert len(alerts) == 4
    clock.now = 1000 + 599
    state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=99)
    assert len(alerts) == 4
    clock.now = 1000 + 700
    state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=100)
    assert len(alerts) == 5
    assert alerts[-1]["suppressed"] == 18 and alerts[-1]["text"].endswith("; 18 alerts suppressed")
    assert listener.state.data["suppressed"] == 18
    clock.now += 1
    state_event(listener, "EXITED", from_state="RUNNING", expected=0, pid=101)
    assert alerts[-1]["suppressed"] == 0


def test_a_held_back_recovery_is_counted(tmp_path):
    listener, alerts, clock = new_listener(tmp_path, rate_limit={"alerts": 1, "seconds": 600})
    state_event(listener, "EXITED", from_state="RUNNING", expected=0)
    state_event(listener, "RUNNING", pid=3)
    assert [a["event"] for a in alerts] == ["EXITED"]
    clock.now += 600
    state_event(listener, "EXITED", from_state="RUNNING", expected=0)
    assert alerts[-1]["suppressed"] == 1 and alerts[-1]["text"].endswith("; 1 alert suppressed")


def test_a_full_send_queue_counts_as_suppressed(tmp_path):
    sender = al.Sender(al.State(str(tmp_path / "s.json"), 0), {"webhook": None, "syslog": None, "mail": None}, size=1)
    clock = Clock()
    listener = al.Listener(make_config(tmp_path), clock=clock, rpc=FakeRPC(), send=sender.put, state=sender.state)
    state_event(listener, "EXITED", from_state="RUNNING", expected=0)
    state_event(listener, "EXITED", from_state="RUNNING", expected=0)  # not started: the queue stays full
    assert sender.queue.qsize() == 1 and listener.state.data["suppressed"] == 1
    sender.queue.get_nowait()
    state_event(listener, "EXITED", from_state="RUNNING", expected=0)
    assert sender.queue.get_nowait()["suppressed"] == 1


def test_rate_limiter_window():
    limiter = al.RateLimiter(2, 10)
    assert limiter.take("k", 0) == (True, 0)
    assert limiter.take("k", 1) == (True, 0)
    assert limiter.take("k", 2) == (False, None)
    assert limiter.take("other", 2) == (True, 0)
    assert limiter.take("k", 10) == (True, 1)  # the one of second 0 left the window
    assert limiter.take("k", 10.5) == (False, None)


# --- self-healing ---------------------------------------------------------------------

PROCESS = "elms-video-worker:elms-video-worker_00"


def test_retry_schedule_then_give_up(tmp_path):
    rpc = FakeRPC()
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, fatal_retry={"delays": [60, 180]},
                                           rate_limit={"alerts": 10, "seconds": 600})
    state_event(listener, "FATAL", from_state="BACKOFF")
    assert listener.state.data["retrying"] == {PROCESS: {"attempt": 0, "next_at": "1970-01-01T00:17:40Z"}}
    tick(listener, clock, 1059)
    assert rpc.calls == []
    tick(listener, clock, 1060)
    assert rpc.calls == [(PROCESS, False)]
    assert [(a["event"], a["attempt"]) for a in alerts] == [("FATAL", None), ("RETRY", "1/2")]
    assert "started again (attempt 1/2)" in alerts[-1]["text"]
    state_event(listener, "STARTING", from_state="FATAL")
    tick(listener, clock, 1200)  # the attempt is under way: no new one
    assert len(rpc.calls) == 1
    state_event(listener, "BACKOFF", tries=1)
    state_event(listener, "FATAL", from_state="BACKOFF")  # attempt 1 failed: no FATAL alert of its own
    assert len(alerts) == 2
    tick(listener, clock, 1200 + 179)
    assert len(rpc.calls) == 1
    tick(listener, clock, 1200 + 180)
    assert len(rpc.calls) == 2
    assert alerts[-1]["attempt"] == "2/2"
    state_event(listener, "FATAL", from_state="BACKOFF")
    assert [a["event"] for a in alerts] == ["FATAL", "RETRY", "RETRY", "GAVE_UP"]
    assert "gave up" in alerts[-1]["text"]
    assert listener.state.data["retrying"] == {}
    tick(listener, clock, 100000)
    assert len(rpc.calls) == 2
    state_event(listener, "FATAL", from_state="BACKOFF")  # started by hand, failed again: alerted, not retried
    tick(listener, clock, 200000)
    assert [a["event"] for a in alerts][-1] == "FATAL" and len(rpc.calls) == 2
    state_event(listener, "RUNNING", pid=77)
    assert alerts[-1]["event"] == "RUNNING"


def test_running_ends_the_retries(tmp_path):
    rpc = FakeRPC()
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, fatal_retry={"delays": [10, 10, 10]})
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 1010)
    state_event(listener, "STARTING", from_state="FATAL")
    state_event(listener, "RUNNING", pid=9)
    assert [a["event"] for a in alerts] == ["FATAL", "RETRY", "RUNNING"]
    assert listener.state.data["retrying"] == {}
    tick(listener, clock, 5000)
    assert len(rpc.calls) == 1
    # a later FATAL starts a fresh schedule
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 5010)
    assert len(rpc.calls) == 2


def test_failed_start_calls_count_as_failed_attempts(tmp_path):
    rpc = FakeRPC(errors=[xmlrpc.client.Fault(20, "NO_FILE: /usr/bin/php"), OSError("connection refused")])
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, fatal_retry={"delays": [10, 20]},
                                           rate_limit={"alerts": 10, "seconds": 600})
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 1010)
    assert "could not be started again (attempt 1/2): NO_FILE" in alerts[-1]["text"]
    tick(listener, clock, 1029)
    assert len(rpc.calls) == 1
    tick(listener, clock, 1030)
    assert [a["event"] for a in alerts] == ["FATAL", "RETRY", "RETRY", "GAVE_UP"]


def test_spawn_error_waits_for_supervisors_events(tmp_path):
    rpc = FakeRPC(errors=[xmlrpc.client.Fault(50, "SPAWN_ERROR: x")])
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, fatal_retry={"delays": [10, 10]})
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 1010)
    assert "could not be started again (attempt 1/2): SPAWN_ERROR: x" in alerts[-1]["text"]
    tick(listener, clock, 1100)
    assert len(rpc.calls) == 1  # the FATAL that follows decides
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 1110)
    assert len(rpc.calls) == 2


def test_no_delays_no_retries(tmp_path):
    rpc = FakeRPC()
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, fatal_retry={"delays": []})
    state_event(listener, "FATAL", from_state="BACKOFF")
    tick(listener, clock, 100000)
    assert rpc.calls == [] and [a["event"] for a in alerts] == ["FATAL"]


# --- channels -------------------------------------------------------------------------

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "type": self.headers["Content-Type"],
                                     "alert": json.loads(body.decode())})
        status = self.server.status
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(name="receiver")
def receiver_fixture():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def an_alert(tmp_path):
    listener, alerts, _clock = new_listener(tmp_path)
    state_event(listener, "FATAL", from_state="BACKOFF")
    return alerts[0]


def channels(**given):
    return dict({"webhook": None, "syslog": None, "mail": None}, **given)


def test_webhook_posts_the_alert(tmp_path, receiver, capsys):
    url = "http://127.0.0.1:%d%s" % (receiver.server_address[1], SECRET_PATH)
    state = al.State(str(tmp_path / "state" / "state.json"), 0)
    sender = al.Sender(state, channels(webhook={"url": url, "timeout": 5})).start()
    assert sender.put(an_alert(tmp_path))
    sender.close(timeout=10)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["path"] == SECRET_PATH and got["type"] == "application/json"
    assert set(got["alert"]) == ALERT_KEYS
    assert got["alert"]["text"].startswith(":rotating_light: web1 elms-video-worker:elms-video-worker_00 is FATAL")
    written = json.loads((tmp_path / "state" / "state.json").read_text())
    assert written["sent"] == 1 and written["failed"] == 0
    assert written["last_sent"]["channels_ok"] == ["webhook"] and written["last_sent"]["event"] == "FATAL"
    assert oct(os.stat(str(tmp_path / "state")).st_mode & 0o777) == "0o755"
    assert SECRET_PATH not in capsys.readouterr().err


@pytest.mark.parametrize("dead", ["closed-port", "http-500"])
def test_webhook_failure_is_counted_and_the_url_path_never_logged(tmp_path, receiver, capsys, dead):
    port = closed_port() if dead == "closed-port" else receiver.server_address[1]
    receiver.status = 500
    url = "http://127.0.0.1:%d%s" % (port, SECRET_PATH)
    state = al.State(str(tmp_path / "state.json"), 0)
    sender = al.Sender(state, channels(webhook={"url": url, "timeout": 2}))
    sender.deliver(an_alert(tmp_path))
    assert state.data["failed"] == 1 and state.data["sent"] == 0
    assert state.data["last_sent"]["channels_failed"] == ["webhook"]
    err = capsys.readouterr().err
    assert "webhook: POST to http://127.0.0.1:%d failed" % port in err
    assert ("Connection refused" if dead == "closed-port" else "HTTPError 500") in err
    assert "s3cretPath" not in err and "/services" not in err


def test_syslog_channel(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(al.syslog, "openlog", lambda *args: calls.append(("openlog",) + args))
    monkeypatch.setattr(al.syslog, "syslog", lambda *args: calls.append(("syslog",) + args))
    sender = al.Sender(al.State(str(tmp_path / "s.json"), 0), channels(syslog={"facility": "local3", "tag": "t"}))
    alert = an_alert(tmp_path)
    sender.deliver(alert)
    sender.deliver(dict(alert, event="RUNNING", text="ok again"))
    assert calls == [("openlog", "t", 0, al.syslog.LOG_LOCAL3), ("syslog", al.syslog.LOG_ERR, alert["text"]),
                     ("openlog", "t", 0, al.syslog.LOG_LOCAL3), ("syslog", al.syslog.LOG_INFO, "ok again")]
    assert sender.state.data["last_sent"]["channels_ok"] == ["syslog"]


def test_mail_channel_pipes_a_message_to_sendmail(tmp_path):
    sendmail = tmp_path / "sendmail"
    sendmail.write_text('#!/bin/sh\necho "$@" > "%s/args"\ncat > "%s/message"\n' % (tmp_path, tmp_path))
    sendmail.chmod(0o755)
    mail = {"to": ["ops@example.org", "dev@example.org"], "from": "root@web1", "sendmail": str(sendmail)}
    sender = al.Sender(al.State(str(tmp_path / "s.json"), 0), channels(mail=mail))
    alert = an_alert(tmp_path)
    sender.deliver(alert)
    assert (tmp_path / "args").read_text() == "-t -oi\n"
    message = email.message_from_string((tmp_path / "message").read_text(), policy=email.policy.default)
    assert message["Subject"] == alert["text"] and message["To"] == "ops@example.org, dev@example.org"
    assert message["From"] == "root@web1"
    assert json.loads(message.get_payload(decode=True).decode("utf-8")) == alert
    assert sender.state.data["last_sent"]["channels_ok"] == ["mail"]


def test_mail_is_skipped_without_sendmail_and_a_failing_one_is_counted(tmp_path):
    state = al.State(str(tmp_path / "s.json"), 0)
    missing = {"to": ["ops@example.org"], "from": "root@web1", "sendmail": str(tmp_path / "nope")}
    al.Sender(state, channels(mail=missing)).deliver(an_alert(tmp_path))
    assert state.data["last_sent"]["channels_ok"] == [] and state.data["failed"] == 0
    failing = tmp_path / "sendmail"
    failing.write_text("#!/bin/sh\necho 'no route' ; exit 75\n")
    failing.chmod(0o755)
    al.Sender(state, channels(mail=dict(missing, sendmail=str(failing)))).deliver(an_alert(tmp_path))
    assert state.data["last_sent"]["channels_failed"] == ["mail"] and state.data["failed"] == 1


# --- state file -----------------------------------------------------------------------

def test_state_file_is_written_at_most_every_minute(tmp_path):
    listener, _alerts, clock = new_listener(tmp_path)
    path = tmp_path / "state" / "state.json"
    tick(listener, clock, 1000)
    first = json.loads(path.read_text())
    assert first["last_event_at"] == "1970-01-01T00:16:40Z" and first["sent"] == 0
    assert set(first) == {"pid", "started_at", "last_event_at", "last_sent", "sent", "suppressed", "failed",
                          "retrying", "scaling"}
    assert first["scaling"] == {}  # nothing scaled (tests/unit/test_listener_scaler.py)
    tick(listener, clock, 1059)
    assert json.loads(path.read_text())["last_event_at"] == "1970-01-01T00:16:40Z"
    tick(listener, clock, 1060)
    assert json.loads(path.read_text())["last_event_at"] == "1970-01-01T00:17:40Z"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["state.json"]  # no temp file left


# --- backlog --------------------------------------------------------------------------

APP = {"dir": "/var/www/html", "user": "www-data", "php": "/usr/bin/php", "connection": "",
       "queues": {"video-encoding": 50, "default": 1000}}


def test_probe_command_runuser_and_su():
    command = al.probe_command(APP, which=lambda name: "/usr/sbin/runuser")
    assert command[:5] == ["runuser", "-u", "www-data", "--", "/usr/bin/php"]
    assert command[5] == "-r" and "bootstrap/app.php" in command[6] and "->size($queue)" in command[6]
    assert json.loads(command[7]) == {"connection": "", "queues": ["default", "video-encoding"]}
    fallback = al.probe_command(dict(APP, connection="redis"), which=lambda name: None)
    assert fallback[:5] == ["su", "-s", "/bin/sh", "www-data", "-c"]
    assert shlex.split(fallback[5]) == ["/usr/bin/php", "-r", command[6],
                                        json.dumps({"connection": "redis", "queues": ["default", "video-encoding"]})]


def test_probe_queues_reads_the_marked_line():
    seen = {}

    def run(command, **kwargs):
        seen.update(kwargs, command=command)
        return subprocess.CompletedProcess(command, 0, "PHP Warning: something\n\nELMS-BACKLOG {\"default\": 3}\n", "")
    # No ELMS-OLDEST line (a driver whose jobs do not say when they became available): no ages.
    assert al.probe_queues(APP, run=run, which=lambda name: "/usr/sbin/runuser") == ({"default": 3}, {})
    assert seen["cwd"] == "/var/www/html" and seen["timeout"] == 60 and seen["stdin"] == subprocess.DEVNULL

    def fails(command, **_kwargs):
        return subprocess.CompletedProcess(command, 255, "", "PHP Fatal error: no bootstrap\n")
    with pytest.raises(RuntimeError, match="exit 255: PHP Fatal error: no bootstrap"):
        al.probe_queues(APP, run=fails, which=lambda name: None)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="runuser needs root")
def test_probe_queues_runs_as_the_user(tmp_path):
    php = tmp_path / "php"
    php.write_text('#!/bin/sh\necho "ELMS-BACKLOG {\\"who\\": \\"$(id -un)\\", \\"cwd\\": \\"$(pwd)\\"}"\n')
    php.chmod(0o755)
    app = dict(APP, dir=str(tmp_path), php=str(php), user="root")
    assert al.probe_queues(app)[0] == {"who": "root", "cwd": str(tmp_path)}


def test_backlog_over_threshold_is_alerted_from_a_thread(tmp_path, capsys):
    asked = []

    def probe(app):
        asked.append(app["dir"])
        if app["dir"] == "/srv/broken":
            raise RuntimeError("exit 255: cannot boot")
        return {"video-encoding": 51, "default": 1000}
    backlog = {"interval": 300, "apps": {"elms": APP, "other": dict(APP, dir="/srv/broken")}}
    alerts = []
    clock = Clock()
    listener = al.Listener(make_config(tmp_path, backlog=backlog), clock=clock, rpc=FakeRPC(), send=alerts.append,
                           probe=probe)
    tick(listener, clock, 1000)
    listener.backlog_thread.join(10)
    assert asked == ["/var/www/html", "/srv/broken"]
    assert events(alerts) == [("BACKLOG", "elms:video-encoding")]
    alert = alerts[0]
    assert set(alert) == ALERT_KEYS and alert["app"] == "elms" and alert["program"] == "video-encoding"
    assert alert["text"] == ":hourglass: web1 queue video-encoding of app elms has 51 pending jobs (over 50)"
    assert "backlog of app other: exit 255: cannot boot" in capsys.readouterr().err
    tick(listener, clock, 1299)
    listener.backlog_thread.join(10)
    assert len(asked) == 2
    tick(listener, clock, 1300)
    listener.backlog_thread.join(10)
    assert len(asked) == 4 and len(alerts) == 2


# --- metrics ----------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+)$')


def samples(text):
    """{(name, frozenset(labels)): value} of a textfile, each line checked against the exposition format:
    a HELP and a TYPE line before the samples of each name, nothing else."""
    found, described = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            described.add((line.split()[2], line.split()[1]))
            continue
        match = SAMPLE.match(line)
        assert match, "not a sample line: %r" % line
        name = match.group(1)
        assert (name, "HELP") in described and (name, "TYPE") in described, name
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        found[(name, labels)] = float(match.group(3))
    return found


def one(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


def info(group, name, state, start=900, stop=0, exitstatus=0):
    return {"group": group, "name": name, "statename": state, "start": start, "stop": stop, "exitstatus": exitstatus,
            "pid": 4242, "now": 1000}


def test_metrics_textfile(tmp_path):
    rpc = FakeRPC()
    rpc.processes = [info("elms-video-worker", "elms-video-worker_00", "RUNNING"),
                     info("elms-default-worker", "elms-default-worker_00", "FATAL", stop=950, exitstatus=255),
                     info("someone-else", "someone-else", "RUNNING")]
    listener, alerts, clock = new_listener(tmp_path, rpc=rpc, metrics_dir=str(tmp_path / "metrics"),
                                           rate_limit={"alerts": 1, "seconds": 600})
    video = "elms-video-worker:elms-video-worker_00"
    state_event(listener, "EXITED", expected="0", from_state="RUNNING")   # alerted
    state_event(listener, "STARTING", from_state="EXITED")     # supervisor's autorestart: a restart
    clock.now = 1003
    state_event(listener, "RUNNING", from_state="STARTING")  # its recovery: held back by the rate limit
    state_event(listener, "STOPPED", from_state="STOPPING")
    state_event(listener, "STARTING", from_state="STOPPED")    # a start by hand or by a deploy: not a restart
    clock.now = 1004
    state_event(listener, "RUNNING", from_state="STARTING")
    for _attempt in range(2):
        state_event(listener, "BACKOFF", process="elms-default-worker:elms-default-worker_00")
        state_event(listener, "FATAL", process="elms-default-worker:elms-default-worker_00", from_state="BACKOFF")
    path = tmp_path / "metrics" / "elms_queue_workers.prom"
    text = path.read_text()
    assert not [p for p in os.listdir(tmp_path / "metrics") if p != "elms_queue_workers.prom"], "a temporary file left"
    found = samples(text)
    assert one(found, "elms_queue_workers_metrics_updated_timestamp_seconds") == 1000.0  # the first event wrote it
    tick(listener, clock, 1010)
    found = samples(path.read_text())
    assert one(found, "elms_queue_workers_metrics_updated_timestamp_seconds") == 1010.0
    assert one(found, "elms_queue_workers_supervisor_up") == 1
    labels = {"app": "elms", "program": "elms-video-worker", "process": video}
    assert one(found, "elms_queue_worker_process_state", state="RUNNING", **labels) == 1
    assert one(found, "elms_queue_worker_process_state", state="FATAL", **labels) == 0
    assert one(found, "elms_queue_worker_process_state_timestamp_seconds", **labels) == 1004
    assert one(found, "elms_queue_worker_process_start_time_seconds", **labels) == 900
    assert one(found, "elms_queue_worker_process_restarts_total", **labels) == 1
    default = {"app": "elms", "program": "elms-default-worker", "process": "elms-default-worker:elms-default-worker_00"}
    assert one(found, "elms_queue_worker_process_state", state="FATAL", **default) == 1
    assert one(found, "elms_queue_worker_process_exit_status", **default) == 255
    assert one(found, "elms_queue_worker_program_fatal_total", app="elms", program="elms-default-worker") == 2
    # One alert per program in the window (rate_limit): the video worker's recovery was held back. Sent is
    # counted by the sender thread (none here: send is a list).
    assert events(alerts) == [("EXITED", video), ("FATAL", "elms-default-worker:elms-default-worker_00")]
    assert one(found, "elms_queue_worker_program_alerts_held_back_total", app="elms", program="elms-video-worker") == 1
    assert one(found, "elms_queue_worker_program_alerts_held_back_total", app="elms", program="elms-default-worker") == 0
    assert one(found, "elms_queue_worker_program_alerts_sent_total", app="elms", program="elms-default-worker") == 0
    assert not [key for key in found if ("program", "someone-else") in key[1]]
    # supervisord does not answer: said, and the counters stay.
    rpc.processes = OSError("connection refused")
    tick(listener, clock, 1020)
    found = samples(path.read_text())
    assert one(found, "elms_queue_workers_supervisor_up") == 0
    assert one(found, "elms_queue_worker_program_fatal_total", app="elms", program="elms-default-worker") == 2
    assert not [key for key in found if key[0] == "elms_queue_worker_process_state"]


def test_metrics_are_written_every_ten_seconds_and_only_with_a_directory(tmp_path):
    rpc = FakeRPC()
    listener, _alerts, clock = new_listener(tmp_path, rpc=rpc, metrics_dir=str(tmp_path / "m"))
    path = tmp_path / "m" / "elms_queue_workers.prom"
    tick(listener, clock, 1000)
    first = path.stat().st_mtime_ns
    tick(listener, clock, 1009)
    assert path.stat().st_mtime_ns == first
    tick(listener, clock, 1010)
    assert "1010.0" in path.read_text()
    quiet, _alerts, clock = new_listener(tmp_path / "q", rpc=rpc)
    tick(quiet, clock, 1000)
    assert not (tmp_path / "q").exists() or not list((tmp_path / "q").rglob("*.prom"))


def test_metrics_label_values_are_escaped():
    metrics = al.Metrics(None)
    metrics.backlog('we"ird\\app\nx', {"q": 3, "not-a-count": "3"}, {"q": 12})
    found = samples(metrics.render([], {}, 1000.0))
    assert one(found, "elms_queue_jobs", app='we\\"ird\\\\app\\nx', queue="q") == 3
    assert one(found, "elms_queue_oldest_pending_job_age_seconds", app='we\\"ird\\\\app\\nx', queue="q") == 12
    assert len([k for k in found if k[0] == "elms_queue_jobs"]) == 1


def test_backlog_probe_feeds_the_metrics_and_null_thresholds_never_alert(tmp_path):
    app = dict(APP, queues={"default": None, "video-encoding": 2})
    alerts = []
    clock = Clock()
    config = make_config(tmp_path, backlog={"interval": 300, "apps": {"elms": app}}, metrics_dir=str(tmp_path / "m"))
    listener = al.Listener(config, clock=clock, rpc=FakeRPC(), send=alerts.append,
                           probe=lambda app: ({"default": 500, "video-encoding": 3}, {"default": 42, "video-encoding": None}))
    tick(listener, clock, 1000)
    listener.backlog_thread.join(10)
    assert events(alerts) == [("BACKLOG", "elms:video-encoding")]
    tick(listener, clock, 1010)
    found = samples((tmp_path / "m" / "elms_queue_workers.prom").read_text())
    assert one(found, "elms_queue_jobs", app="elms", queue="default") == 500
    assert one(found, "elms_queue_jobs", app="elms", queue="video-encoding") == 3
    assert one(found, "elms_queue_oldest_pending_job_age_seconds", app="elms", queue="default") == 42
    assert ("elms_queue_oldest_pending_job_age_seconds", frozenset({("app", "elms"), ("queue", "video-encoding")})) \
        not in found


def test_probe_queues_reads_the_oldest_line():
    def run(command, **_kwargs):
        return subprocess.CompletedProcess(command, 0, "\nELMS-BACKLOG {\"default\": 3}\nELMS-OLDEST {\"default\": 17}\n",
                                           "")
    assert al.probe_queues(APP, run=run, which=lambda name: None) == ({"default": 3}, {"default": 17})


@pytest.mark.parametrize("value", ["relative/dir", 3])
def test_a_relative_metrics_dir_is_refused(tmp_path, value):
    with pytest.raises(al.ConfigError, match="metrics_dir"):
        make_config(tmp_path, metrics_dir=value)


# --- supervisord's API ------------------------------------------------------------------

def test_credentials_from_supervisorctl_then_the_server_section(tmp_path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword=srvpw\n"
                    "[supervisorctl]\nusername=ctl ; who\npassword=ctlpw # comment\n")
    assert al.supervisor_credentials(str(conf), "unix:///run/s.sock") == ("ctl", "ctlpw")
    conf.write_text("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword=srvpw\n[supervisorctl]\n")
    assert al.supervisor_credentials(str(conf), "unix:///run/s.sock") == ("srv", "srvpw")
    assert al.supervisor_credentials(str(conf), "http://127.0.0.1:9001") == (None, None)
    conf.write_text("[unix_http_server]\nusername=srv\npassword={SHA}abc\n")
    assert al.supervisor_credentials(str(conf), "unix:///run/s.sock") == (None, None)
    assert al.supervisor_credentials(str(tmp_path / "none.conf"), "unix:///x") == (None, None)


def test_rpc_needs_the_url_supervisor_gives():
    with pytest.raises(RuntimeError, match="SUPERVISOR_SERVER_URL"):
        al.supervisor_rpc("/nonexistent", env={})


# --- inside a real supervisord ----------------------------------------------------------

# The programs of the test supervisord (tests/unit/conftest.py, with a password).
PROGRAMS = """
[program:crasher]
command=/bin/sh -c "echo crasher cannot start; exit 3"
startsecs=5
startretries=1
autorestart=true
stdout_logfile=%(here)s/crasher.log

[eventlistener:alerts]
command={python} {script} --config %(here)s/alerts.json --revision test
events=PROCESS_STATE,TICK_5
buffer_size=50
stdout_logfile=NONE
stderr_logfile=%(here)s/alerts.log
"""


def wait_for(check, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def test_real_supervisord_fatal_retries_and_give_up(receiver, real_supervisord):
    server = real_supervisord(PROGRAMS.format(python=sys.executable.replace("%", "%%"), script=SCRIPT), auth=True,
                              prefix="elms-alerts-", start=False)
    here = server.here
    webhook = "http://127.0.0.1:%d%s" % (receiver.server_address[1], SECRET_PATH)
    with open(os.path.join(here, "alerts.json"), "w", encoding="utf-8") as handle:
        json.dump({"host": "web1", "programs": {"crasher": {"app": "elms", "log": os.path.join(here, "crasher.log")}},
                   "channels": {"webhook": {"url": webhook, "timeout": 5}}, "fatal_retry": {"delays": [2, 2]},
                   "rate_limit": {"alerts": 10, "seconds": 600}, "state_file": os.path.join(here, "state.json"),
                   "supervisor_config": server.config, "metrics_dir": os.path.join(here, "metrics")}, handle)
    process = server.start().process
    try:
        def seen():
            return [(r["alert"]["event"], r["alert"]["attempt"]) for r in receiver.received
                    if r["alert"]["process"] == "crasher:crasher"]
        wait_for(lambda: ("GAVE_UP", None) in seen() or process.poll() is not None, 90)
        log = read(os.path.join(here, "alerts.log"))
        assert seen() == [("FATAL", None), ("RETRY", "1/2"), ("RETRY", "2/2"), ("GAVE_UP", None)], log
        fatal = receiver.received[0]["alert"]
        assert fatal["host"] == "web1" and fatal["app"] == "elms" and fatal["from_state"] == "BACKOFF"
        assert "crasher cannot start" in fatal["log_tail"]
        assert all(r["path"] == SECRET_PATH for r in receiver.received)
        assert "started again (attempt 1/2)" in receiver.received[1]["alert"]["text"]
        state = json.loads(read(os.path.join(here, "state.json")))
        assert state["sent"] >= 4 and state["failed"] == 0 and state["retrying"] == {}
        assert state["last_sent"]["event"] == "GAVE_UP" and state["last_sent"]["channels_ok"] == ["webhook"]
        assert "crasher:crasher BACKOFF -> FATAL" in log and "s3cretPath" not in log
        # The metrics, from supervisord's own process list and the alerts the sender delivered (written every 10 s).
        prom = os.path.join(here, "metrics", "elms_queue_workers.prom")

        def metrics():
            found = samples(read(prom)) if os.path.exists(prom) else {}
            return (found.get(("elms_queue_worker_program_fatal_total", frozenset({("app", "elms"), ("program", "crasher")}))),
                    found.get(("elms_queue_worker_program_alerts_sent_total",
                               frozenset({("app", "elms"), ("program", "crasher")}))), found)
        wait_for(lambda: metrics()[0] == 3 and metrics()[1] == 4, 30)
        fatal, sent, found = metrics()
        assert (fatal, sent) == (3, 4), read(prom) if os.path.exists(prom) else log
        assert one(found, "elms_queue_worker_process_state", app="elms", program="crasher", process="crasher:crasher",
                   state="FATAL") == 1
        assert one(found, "elms_queue_workers_supervisor_up") == 1
    finally:
        server.stop()


@pytest.fixture(name="silent")
def silent_fixture():
    """A receiver that accepts the connection and the request, and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _address = server.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            held.append(connection)
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], held
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()


def test_a_receiver_that_never_answers_times_out_and_blocks_no_event(tmp_path, silent, capsys):
    """The webhook call gives up after its timeout, counted as failed; meanwhile the listener has answered
    supervisor's events (the send runs in the sender's thread), and the next alert is sent once the first is over."""
    port, held = silent
    url = "http://127.0.0.1:%d%s" % (port, SECRET_PATH)
    state = al.State(str(tmp_path / "state.json"), 0)
    sender = al.Sender(state, channels(webhook={"url": url, "timeout": 2})).start()
    started = time.monotonic()
    assert sender.put(an_alert(tmp_path))
    # put() returns at once: the event that raised the alert is answered without waiting for the receiver.
    assert time.monotonic() - started < 0.5
    assert sender.put(an_alert(tmp_path))
    sender.close(timeout=20)
    elapsed = time.monotonic() - started
    assert held, "the receiver never got a connection: nothing was tried"
    assert state.data["failed"] == 2 and state.data["sent"] == 0, state.data
    # Each send waited for its own timeout, not for ever.
    assert 3.5 <= elapsed < 15, elapsed
    err = capsys.readouterr().err
    assert "webhook: POST to http://127.0.0.1:%d failed" % port in err and "timed out" in err, err
    assert "s3cretPath" not in err
