"""The alert listener as the scaler of a worker's spare processes (roles/queue_workers/files/alert_listener.py).

A worker with numprocs: {min, max} runs as two supervisor programs: NAME (min processes, always running) and
NAME-spare (max - min processes, autostart=false), whose processes the listener starts and stops from the backlog
the probe measures and the job runtimes its log tells. The log parsing and the decision are pure and tested
directly; the listener on a fake clock against a fake supervisord that keeps process states; and the whole of it
against a real supervisord, whose spares must be started up to max and stopped (SIGTERM, the job allowed to
finish) down to min.
"""

import importlib.util
import json
import os
import re
import sys
import time
import xmlrpc.client

import pytest

SCRIPT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "queue_workers", "files",
                                      "alert_listener.py"))
_spec = importlib.util.spec_from_file_location("alert_listener_scaler", SCRIPT)
al = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(al)

SPEC = {"app": "elms", "spare": "video-spare", "min": 1, "max": 4, "queues": ["video"], "clear_seconds": 120,
        "step": 1, "cooldown": 60, "log": ""}


def raw_config(tmp_path, **scaling):
    """The config the deploy writes for one scaled worker, video (min 1, max 4), of app elms."""
    here = str(tmp_path)
    log = os.path.join(here, "video.log")
    return {
        "host": "web1",
        "programs": {"video": {"app": "elms", "log": log}, "video-spare": {"app": "elms", "log": log}},
        "backlog": {"interval": 30, "apps": {"elms": {"dir": "/srv/app", "queues": {"video": None, "default": 100}}}},
        "scaling": {"video": dict({"app": "elms", "spare": "video-spare", "min": 1, "max": 4, "queues": ["video"],
                                   "clear_seconds": 120, "step": 1, "cooldown": 60, "log": log}, **scaling)},
        "fatal_retry": {"delays": []},
        "state_file": os.path.join(here, "state.json"),
        "supervisor_config": os.path.join(here, "supervisord.conf"),
    }


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class Backlog:
    """The probe: the queue sizes it is told (an exception instance: raised)."""

    def __init__(self, **sizes):
        self.sizes = dict({"video": 0, "default": 3}, **sizes)
        self.asked = 0

    def __call__(self, app):
        self.asked += 1
        if isinstance(self.sizes, Exception):
            raise self.sizes
        return dict(self.sizes), {}


class FakeSupervisor:
    """supervisord's "supervisor" namespace over a table of process states: a start without waiting leaves the
    process STARTING, a stop STOPPING (settle() ends both); faults as supervisord raises them; calls recorded."""

    def __init__(self, base=1, spares=3, min_=1):
        self.states = dict(("video:video_%02d" % n, "RUNNING") for n in range(base))
        self.states.update(("video-spare:video_%02d" % n, "STOPPED") for n in range(min_, min_ + spares))
        self.states["other:other"] = "STOPPED"
        self.calls = []
        self.faults = {}    # (method, process) -> an exception, raised once
        self.down = None    # an exception raised by every call
        self.stopped_at = {}

    def getAllProcessInfo(self):  # the XML-RPC method's name
        if self.down is not None:
            raise self.down
        found = []
        for process, state in sorted(self.states.items()):
            group, name = process.split(":")
            found.append({"group": group, "name": name, "statename": state, "start": 0,
                          "stop": self.stopped_at.get(process, 0), "now": 10000, "pid": 0, "exitstatus": 0})
        return found

    def _call(self, method, process):
        self.calls.append((method, process))
        if self.down is not None:
            raise self.down
        if (method, process) in self.faults:
            raise self.faults.pop((method, process))
        if process not in self.states:
            raise xmlrpc.client.Fault(10, "BAD_NAME: %s" % process)

    def startProcess(self, process, wait):  # the XML-RPC method's name
        assert wait is False
        self._call("start", process)
        if self.states[process] in al.UP_STATES:
            raise xmlrpc.client.Fault(60, "ALREADY_STARTED: %s" % process)
        self.states[process] = "STARTING"
        return True

    def stopProcess(self, process, wait):  # the XML-RPC method's name
        assert wait is False
        self._call("stop", process)
        if self.states[process] not in al.UP_STATES:
            raise xmlrpc.client.Fault(70, "NOT_RUNNING: %s" % process)
        self.states[process] = "STOPPING"
        return True

    def settle(self):
        for process, state in self.states.items():
            self.states[process] = {"STARTING": "RUNNING", "STOPPING": "STOPPED"}.get(state, state)

    def up(self):
        return sorted(p for p, s in self.states.items() if s in al.UP_STATES)


def new_listener(tmp_path, supervisor=None, backlog=None, metrics=False, **scaling):
    raw = raw_config(tmp_path, **scaling)
    if metrics:
        raw["metrics_dir"] = str(tmp_path / "metrics")
    clock = Clock()
    supervisor = supervisor or FakeSupervisor()
    backlog = backlog or Backlog()
    alerts = []
    listener = al.Listener(al.normalize(raw), clock=clock, rpc=supervisor, send=alerts.append, probe=backlog)
    return listener, supervisor, backlog, clock


def tick(listener, clock, at):
    clock.now = at
    listener.handle({"ver": "3.0", "eventname": "TICK_5", "len": "15"}, {"when": str(int(at))})


def probe_and_decide(listener, clock, at):
    """A tick that starts the probe, the probe (which decides on its answer), and a tick after it."""
    tick(listener, clock, at)
    listener.backlog_thread.join(10)
    tick(listener, clock, at)


def spare(n):
    return "video-spare:video_%02d" % n


def modern(seconds_text, status="DONE", job="App\\Jobs\\EncodeVideo"):
    return "  2026-12-06 14:00:03 %s ........................................ %s %s\n" % (job, seconds_text, status)


def legacy(second, job_id, status, job="App\\Jobs\\EncodeVideo"):
    return "[2026-12-06 14:%02d:%02d][%s] %s %s\n" % (second // 60, second % 60, job_id, ("%s:" % status).ljust(11),
                                                      job)


# --- the runtimes in the log ------------------------------------------------------------

@pytest.mark.parametrize("line, found", [
    (modern("2,873.47ms"), ("took", 2.87347)),
    (modern("512ms", "FAIL"), ("took", 0.512)),
    (modern("3s"), ("took", 3.0)),
    (modern("1m 5s"), ("took", 65.0)),
    (modern("2h 3m 4s"), ("took", 7384.0)),
    (modern("1s 250ms"), ("took", 1.25)),
    (modern("12,345.60ms"), ("took", 12.3456)),
    ("  2026-12-06 14:00:03 App\\Jobs\\EncodeVideo 8f3a-1c2e ...... 4s DONE\n", ("took", 4.0)),  # queue:work -v
    ("\x1b[90m  2026-12-06 14:00:03\x1b[39m App\\Jobs\\X \x1b[90m....\x1b[39m \x1b[90m7s\x1b[39m "
     "\x1b[32;1mDONE\x1b[39;22m\n", ("took", 7.0)),  # --ansi: colours
    ("  2026-12-06 14:00:00 App\\Jobs\\EncodeVideo ........................................ RUNNING\n", None),
    ("  2026-12-06 14:00:03 App\\Jobs\\EncodeVideo ........ DONE\n", None),  # no runtime printed
    ("  2026-12-06 14:00:03 App\\Jobs\\Encode5s DONE\n", None),  # the class is no runtime
    ("[2026-12-06 14:00:00][42] Processing: App\\Jobs\\EncodeVideo\n",
     ("start", "42", al.datetime.datetime(2026, 12, 6, 14, 0, 0))),
    ("[2026-12-06 14:00:03][42] Processed:  App\\Jobs\\EncodeVideo\n",
     ("end", "42", al.datetime.datetime(2026, 12, 6, 14, 0, 3))),
    ("[2026-12-06 14:00:03][a1b2-c3] Failed:     App\\Jobs\\EncodeVideo\n",
     ("end", "a1b2-c3", al.datetime.datetime(2026, 12, 6, 14, 0, 3))),
    ("PHP Warning:  Undefined index: x in /srv/app/app/Jobs/EncodeVideo.php on line 3\n", None),
    ("DONE\n", None),
    ("", None),
    ("[2026-12-06 14:00:03] production.ERROR: Processed: no\n", None),
    ("  2026-12-06 14:00:03 App\\Jobs\\X " + "." * 5000 + " 3s DONE\n", None),  # too long to be a status line
])
def test_parse_job_line(line, found):
    got = al.parse_job_line(line)
    if found and found[0] == "took":
        assert got[0] == "took" and got[1] == pytest.approx(found[1])
    else:
        assert got == found


def append(path, text):
    with open(str(path), "a", encoding="utf-8") as handle:
        handle.write(text)


def test_runtimes_from_the_end_of_the_log_paired_by_job_id(tmp_path):
    log = tmp_path / "video.log"
    log.write_text(legacy(0, 1, "Processing") + legacy(10, 1, "Processed") + modern("9s") + legacy(20, 2, "Processing"))
    runtimes = al.JobRuntimes(str(log))
    assert runtimes.read() == 0  # the first look: only what is written from now on
    assert runtimes.average() is None
    # Job 2 started before the listener looked: its end says nothing. Jobs 3 and 4 run at once (two processes).
    append(log, legacy(30, 2, "Processed") + legacy(31, 3, "Processing") + legacy(32, 4, "Processing")
           + "some output of job 4\n" + legacy(35, 4, "Failed") + legacy(39, 3, "Processed"))
    assert runtimes.read() == 2
    assert sorted(runtimes.runtimes) == [3.0, 8.0] and runtimes.average() == 5.5
    append(log, modern("2,500.00ms") + modern("500ms", "FAIL"))
    assert runtimes.read() == 2
    assert runtimes.average() == pytest.approx((3 + 8 + 2.5 + 0.5) / 4)
    assert runtimes.read() == 0


def test_an_unfinished_line_is_read_when_it_is_finished(tmp_path):
    log = tmp_path / "video.log"
    log.write_text("half a line wri")  # the listener starts while a line is being written
    runtimes = al.JobRuntimes(str(log))
    runtimes.read()
    append(log, "tten 3s DONE\n")
    assert runtimes.read() == 0  # the rest of that line is no status line
    line = modern("4s")
    append(log, line[:30])
    assert runtimes.read() == 0
    append(log, line[30:])
    assert runtimes.read() == 1 and list(runtimes.runtimes) == [4.0]


def test_truncated_rotated_and_late_logs_are_read_from_their_start(tmp_path):
    log = tmp_path / "video.log"
    runtimes = al.JobRuntimes(str(log))
    assert runtimes.read() == 0  # no log yet: one that appears is new
    log.write_text(modern("1s"))
    assert runtimes.read() == 1
    append(log, modern("2s") * 5)
    assert runtimes.read() == 5
    log.write_text(modern("3s") + modern("4s"))  # truncated and written again, shorter, before the next read
    assert runtimes.read() == 2 and list(runtimes.runtimes)[-2:] == [3.0, 4.0]
    log.write_text(modern("3s") + modern("6s"))  # again, to the very same size: what was read is gone
    assert runtimes.read() == 2 and list(runtimes.runtimes)[-2:] == [3.0, 6.0]
    assert runtimes.read() == 0
    os.rename(str(log), str(tmp_path / "video.log.1"))
    assert runtimes.read() == 0  # rotated, the new one not there yet
    log.write_text(modern("5s") + modern("7s") + modern("7s") + modern("7s"))  # a new file, longer than the old
    assert runtimes.read() == 4 and list(runtimes.runtimes)[-4:] == [5.0, 7.0, 7.0, 7.0]


def test_the_mean_of_the_last_50(tmp_path):
    log = tmp_path / "video.log"
    log.write_text("")
    runtimes = al.JobRuntimes(str(log))
    runtimes.read()
    append(log, "".join(modern("%ds" % n) for n in range(1, 61)))
    assert runtimes.read() == 60
    assert len(runtimes.runtimes) == 50 and runtimes.average() == sum(range(11, 61)) / 50.0


def test_a_read_is_bounded_and_keeps_to_the_newest(tmp_path):
    log = tmp_path / "video.log"
    log.write_text("")
    runtimes = al.JobRuntimes(str(log))
    runtimes.read()
    old, new = modern("100s") * 100, modern("1s") * 10
    append(log, old + new)
    assert len(new) < 1000 < len(old)
    assert runtimes.read(limit=1000) == 10  # the newest 1000 bytes, from their first whole line
    assert set(runtimes.runtimes) == {1.0}
    append(log, "x" * 3000 + "\n" + modern("2s"))  # one line longer than a read: passed over
    assert runtimes.read(limit=1000) == 1 and runtimes.runtimes[-1] == 2.0


def test_jobs_that_never_end_are_forgotten(tmp_path, monkeypatch):
    monkeypatch.setattr(al, "PENDING_KEPT", 3)
    runtimes = al.JobRuntimes("")
    for job in range(5):
        runtimes.feed(legacy(job, job, "Processing"))
    assert list(runtimes.pending) == ["2", "3", "4"]
    assert not runtimes.feed(legacy(9, 0, "Processed"))
    assert runtimes.feed(legacy(9, 4, "Processed")) and list(runtimes.runtimes) == [5.0]
    assert runtimes.read() == 0  # no log configured


# --- the decision -----------------------------------------------------------------------

def test_decision_with_a_known_runtime():
    assert al.scale_decision(SPEC, {"video": 40}, 1, 3.2, 12) == (
        2, 2, "backlog 40 (video 40), average job 3.2 s over 12 jobs, 40 x 3.2 s / 120 s wants 2 "
              "(min 1, max 4, step 1)")
    # 30 x 4 s / 120 s is exactly 1: no rounding up of a float's last digit.
    assert al.scale_decision(SPEC, {"video": 30}, 1, 4.0, 1)[:2] == (1, 1)
    assert al.scale_decision(SPEC, {"video": 31}, 1, 4.0, 1)[:2] == (2, 2)


def test_idle_goes_down_to_min_one_step_at_a_time():
    wanted, to, reason = al.scale_decision(SPEC, {"video": 0}, 4, 3.2, 12)
    assert (wanted, to) == (1, 3)
    assert reason == ("backlog 0 (video 0), average job 3.2 s over 12 jobs, nothing pending wants 0, so 1 "
                      "(min 1, max 4, step 1)")
    assert al.scale_decision(SPEC, {"video": 0}, 1, None, 0)[:2] == (1, 1)
    assert al.scale_decision(dict(SPEC, step=5), {"video": 0}, 4, 3.2, 12)[:2] == (1, 1)  # never below min


def test_a_burst_is_capped_at_max_and_taken_step_by_step():
    assert al.scale_decision(SPEC, {"video": 5000}, 1, 60.0, 50)[:2] == (4, 2)
    assert al.scale_decision(dict(SPEC, step=2), {"video": 5000}, 1, 60.0, 50)[:2] == (4, 3)
    assert al.scale_decision(dict(SPEC, step=10), {"video": 5000}, 1, 60.0, 50)[:2] == (4, 4)
    assert "5000 x 60 s / 120 s wants 2500, so 4 (min 1, max 4, step 1)" in \
        al.scale_decision(SPEC, {"video": 5000}, 1, 60.0, 50)[2]
    # More running than max (started by hand): down, a step at a time.
    assert al.scale_decision(SPEC, {"video": 5000}, 6, 60.0, 50)[:2] == (4, 5)


def test_an_unknown_runtime_counts_each_job_as_clear_seconds():
    wanted, to, reason = al.scale_decision(SPEC, {"video": 3}, 1)
    assert (wanted, to) == (3, 2)
    assert reason == ("backlog 3 (video 3), no job measured yet (each taken as 120 s), 3 x 120 s / 120 s wants 3 "
                      "(min 1, max 4, step 1)")


def test_the_backlog_is_the_sum_of_the_workers_queues():
    spec = dict(SPEC, queues=["video", "video-high"], clear_seconds=60)
    wanted, _to, reason = al.scale_decision(spec, {"video": 10, "video-high": 5, "default": 900}, 2, 10.0, 3)
    assert wanted == 3 and reason.startswith("backlog 15 (video 10, video-high 5), average job 10 s over 3 jobs, "
                                             "15 x 10 s / 60 s wants 3")
    assert al.scale_decision(spec, {"video": 10}, 2, 10.0, 3) == (
        None, 2, "the size of queue video-high is not known (min 1, max 4, step 1)")
    assert al.scale_decision(spec, {"video": 10, "video-high": None}, 2)[:2] == (None, 2)


def test_cooldown_holds_every_change():
    assert al.scale_decision(SPEC, {"video": 100}, 2, None, 0, since_change=59) == (
        4, 2, "backlog 100 (video 100), no job measured yet (each taken as 120 s), 100 x 120 s / 120 s wants 100, "
              "so 4 (min 1, max 4, step 1); cooldown: the last change was 59 s ago (cooldown 60 s)")
    assert al.scale_decision(SPEC, {"video": 100}, 2, None, 0, since_change=60)[:2] == (4, 3)
    assert al.scale_decision(SPEC, {"video": 0}, 2, None, 0, since_change=10)[:2] == (1, 2)
    assert al.scale_decision(dict(SPEC, cooldown=0), {"video": 100}, 2, None, 0, since_change=0)[:2] == (4, 3)


# --- the config -------------------------------------------------------------------------

def test_scaling_config_and_its_defaults(tmp_path):
    raw = raw_config(tmp_path)
    raw["scaling"]["video"] = {"app": "elms", "min": 2, "max": 3, "queues": "video"}
    config = al.normalize(raw)
    assert config["scaling"] == {"video": {
        "app": "elms", "spare": "video-spare", "min": 2, "max": 3, "queues": ["video"], "clear_seconds": 300,
        "step": 1, "cooldown": 60, "log": str(tmp_path / "video.log")}}  # the program's log when not given
    raw["scaling"] = None
    assert al.normalize(raw)["scaling"] == {}


@pytest.mark.parametrize("change, words", [
    ({"min": 3, "max": 2}, r"scaling\.video\.max = 2 must be a whole number above min \(3\)"),
    ({"min": 2, "max": 2}, r"scaling\.video\.max"),
    ({"min": 0}, r"scaling\.video\.min = 0 must be a whole number >= 1"),
    ({"min": 1.5}, r"scaling\.video\.min"),
    ({"min": None}, r"scaling\.video\.min"),
    ({"max": True}, r"scaling\.video\.max"),
    ({"app": "shop"}, r"scaling\.video\.app = 'shop' must be an app of backlog\.apps"),
    ({"queues": []}, r"scaling\.video\.queues must be a list"),
    ({"queues": ["emails"]}, r"scaling\.video\.queues: emails is not measured: it must be in backlog\.apps\.elms"),
    ({"step": 0}, r"scaling\.video\.step = 0 must be a whole number >= 1"),
    ({"clear_seconds": 0}, r"scaling\.video\.clear_seconds"),
    ({"cooldown": -1}, r"scaling\.video\.cooldown"),
    ({"spare": "video"}, r"scaling\.video\.spare"),
    ({"spare": "video-extra"}, r"scaling\.video: program video-extra must be in programs too"),
    ({"log": 3}, r"scaling\.video\.log"),
])
def test_bad_scaling_config(tmp_path, change, words):
    raw = raw_config(tmp_path, **change)
    with pytest.raises(al.ConfigError, match=words):
        al.normalize(raw)


def test_scaling_needs_the_backlog_probe_and_a_mapping(tmp_path):
    raw = raw_config(tmp_path)
    del raw["backlog"]
    with pytest.raises(al.ConfigError, match="must be an app of backlog.apps"):
        al.normalize(raw)
    with pytest.raises(al.ConfigError, match="scaling must be a mapping"):
        al.normalize(dict(raw_config(tmp_path), scaling=["video"]))
    with pytest.raises(al.ConfigError, match=r"scaling\.video must be a mapping"):
        al.normalize(dict(raw_config(tmp_path), scaling={"video": 4}))


# --- the listener as the scaler -----------------------------------------------------------

def scale_lines(err):
    return [line.split(" ", 1)[1] for line in err.splitlines() if " scale " in line]


def test_scales_up_to_max_then_down_to_min_touching_only_spares(tmp_path, capsys):
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    backlog.sizes["video"] = 10  # no runtime known yet: each job taken as clear_seconds, 10 processes wanted
    probe_and_decide(listener, clock, 1000)
    assert supervisor.calls == [("start", spare(1))]
    assert scale_lines(capsys.readouterr().err) == [
        "scale video 1 -> 2: backlog 10 (video 10), no job measured yet (each taken as 120 s), 10 x 120 s / 120 s "
        "wants 10, so 4 (min 1, max 4, step 1); started video-spare:video_01"]
    probe_and_decide(listener, clock, 1030)  # within the cooldown: nothing, said once
    probe_and_decide(listener, clock, 1045)
    assert len(supervisor.calls) == 1 and backlog.asked == 2  # the probe's interval is 30 s
    assert [line.split(";")[-1] for line in scale_lines(capsys.readouterr().err)] == [
        " cooldown: the last change was 30 s ago (cooldown 60 s)"]
    supervisor.settle()
    for at in (1060, 1120, 1180, 1240):
        probe_and_decide(listener, clock, at)
    assert supervisor.calls == [("start", spare(1)), ("start", spare(2)), ("start", spare(3))]
    assert supervisor.up() == ["video-spare:video_01", "video-spare:video_02", "video-spare:video_03",
                               "video:video_00"]
    assert scale_lines(capsys.readouterr().err)[-1].startswith("scale video stays at 4: backlog 10")
    backlog.sizes["video"] = 0
    probe_and_decide(listener, clock, 1300)
    # The highest first; STOPPING is on its way out (its job finishing): not counted.
    assert supervisor.calls[-1] == ("stop", spare(3)) and supervisor.states[spare(3)] == "STOPPING"
    probe_and_decide(listener, clock, 1360)
    probe_and_decide(listener, clock, 1420)
    probe_and_decide(listener, clock, 1480)
    assert supervisor.calls[3:] == [("stop", spare(3)), ("stop", spare(2)), ("stop", spare(1))]
    assert supervisor.up() == ["video:video_00"]
    lines = scale_lines(capsys.readouterr().err)
    assert lines[0] == ("scale video 4 -> 3: backlog 0 (video 0), no job measured yet (each taken as 120 s), "
                        "nothing pending wants 0, so 1 (min 1, max 4, step 1); stopped video-spare:video_03")
    assert [line.split(":")[0] for line in lines] == ["scale video 4 -> 3", "scale video 3 -> 2", "scale video 2 -> 1",
                                                      "scale video stays at 1"]
    assert not [call for call in supervisor.calls if not call[1].startswith("video-spare:")]


def test_the_decision_follows_the_probe_without_waiting_for_another_event(tmp_path):
    # supervisor's next event may be a TICK_5 five seconds on: a burst is met as soon as it is measured.
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    backlog.sizes["video"] = 10
    tick(listener, clock, 1000)
    listener.backlog_thread.join(10)
    assert supervisor.calls == [("start", spare(1))]


def test_a_tick_a_hair_early_still_probes(tmp_path):
    # TICK_5 comes every 5 s: a probe due at 1030 must not wait for the tick after 1029.9 (5 s more).
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    for at in (1000, 1029.9):
        tick(listener, clock, at)
        listener.backlog_thread.join(10)
    assert backlog.asked == 2
    tick(listener, clock, 1059)  # not due before 1059.4
    assert backlog.asked == 2


def test_the_state_file_follows_the_backlog_at_once(tmp_path):
    # A diagnosis reads the file: a backlog that went to 0 is there after the probe, not a minute later.
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    state = os.path.join(str(tmp_path), "state.json")
    backlog.sizes["video"] = 1
    probe_and_decide(listener, clock, 1000)
    backlog.sizes["video"] = 0
    probe_and_decide(listener, clock, 1030)
    with open(state) as handle:
        scaled = json.load(handle)["scaling"]["video"]
    assert scaled["backlog"] == 0 and scaled["current"] == 1 and scaled["wanted"] == 1


def test_the_runtimes_in_the_log_size_the_worker(tmp_path, capsys):
    log = tmp_path / "video.log"
    log.write_text(modern("900s") * 3)  # before the listener started: not counted
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    append(log, modern("2,400.00ms") * 6 + modern("4s") * 6)  # 12 jobs, 3.2 s on average
    backlog.sizes["video"] = 40
    probe_and_decide(listener, clock, 1000)
    assert supervisor.calls == [("start", spare(1))]
    assert scale_lines(capsys.readouterr().err) == [
        "scale video 1 -> 2: backlog 40 (video 40), average job 3.2 s over 12 jobs, 40 x 3.2 s / 120 s wants 2 "
        "(min 1, max 4, step 1); started video-spare:video_01"]
    # The state file is written at once after a change (else at most every minute).
    assert json.loads((tmp_path / "state.json").read_text())["scaling"]["video"]["current"] == 2
    supervisor.settle()
    probe_and_decide(listener, clock, 1060)
    assert len(supervisor.calls) == 1
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["scaling"] == {"video": {
        "min": 1, "max": 4, "current": 2, "wanted": 2, "backlog": 40, "avg_job_seconds": 3.2, "jobs_measured": 12,
        "last_decision": {"at": "1970-01-01T00:16:40Z", "from": 1, "to": 2, "reason":
                          "backlog 40 (video 40), average job 3.2 s over 12 jobs, 40 x 3.2 s / 120 s wants 2 "
                          "(min 1, max 4, step 1)"}}}


def test_the_live_state_decides_not_memory(tmp_path):
    """Spares started or stopped by hand, or a supervisord restarted: each decision counts what runs."""
    listener, supervisor, backlog, clock = new_listener(tmp_path, step=2)
    backlog.sizes["video"] = 2
    supervisor.states[spare(1)] = "RUNNING"   # by hand
    supervisor.states[spare(3)] = "BACKOFF"   # counted: supervisor keeps trying it
    probe_and_decide(listener, clock, 1000)   # 3 running, 2 wanted: the highest goes
    assert supervisor.calls == [("stop", spare(3))]
    supervisor.settle()
    supervisor.states[spare(1)] = "STOPPED"   # by hand again
    probe_and_decide(listener, clock, 1060)
    assert supervisor.calls[-1] == ("start", spare(1))
    supervisor.states[spare(1)] = "STOPPING"
    supervisor.states[spare(2)] = "EXITED"
    probe_and_decide(listener, clock, 1120)   # STOPPING: leaving; EXITED: may be started again
    assert supervisor.calls[-1] == ("start", spare(2))


def test_a_recently_fatal_spare_is_not_started_again(tmp_path, capsys):
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    backlog.sizes["video"] = 10
    supervisor.states[spare(1)] = "FATAL"
    listener.handle({"ver": "3.0", "eventname": "PROCESS_STATE_FATAL", "len": "0"},
                    {"processname": "video_01", "groupname": "video-spare", "from_state": "BACKOFF"})
    clock.now = 1000
    probe_and_decide(listener, clock, 1030)
    assert supervisor.calls == [("start", spare(2))]
    assert "skipped video-spare:video_01 (FATAL 30 s ago); started video-spare:video_02" in capsys.readouterr().err
    supervisor.settle()
    probe_and_decide(listener, clock, 1090)  # a cooldown after it went FATAL: the lowest stopped one again
    assert supervisor.calls[-1] == ("start", spare(1))
    # Unseen by the listener (it restarted): supervisord's own times tell.
    listener, supervisor, backlog, clock = new_listener(tmp_path / "restarted")
    backlog.sizes["video"] = 10
    supervisor.states[spare(1)] = "FATAL"
    supervisor.stopped_at[spare(1)] = 10000 - 5
    probe_and_decide(listener, clock, 1000)
    assert supervisor.calls == [("start", spare(2))]


def test_errors_are_logged_and_survived(tmp_path, capsys):
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    backlog.sizes["video"] = 10
    supervisor.down = OSError("connection refused")
    probe_and_decide(listener, clock, 1000)
    probe_and_decide(listener, clock, 1030)
    err = capsys.readouterr().err
    assert err.count("scale video: supervisord did not answer (connection refused)") == 1
    supervisor.down = None
    supervisor.faults[("start", spare(1))] = xmlrpc.client.Fault(20, "NO_FILE: /usr/bin/php")
    probe_and_decide(listener, clock, 1060)
    assert scale_lines(capsys.readouterr().err) == [
        "scale video stays at 1, not 2: backlog 10 (video 10), no job measured yet (each taken as 120 s), "
        "10 x 120 s / 120 s wants 10, so 4 (min 1, max 4, step 1); could not start video-spare:video_01: "
        "NO_FILE: /usr/bin/php"]
    # Nothing changed: no cooldown, the next probe tries again.
    probe_and_decide(listener, clock, 1090)
    assert supervisor.calls[-1] == ("start", spare(1)) and supervisor.states[spare(1)] == "STARTING"
    assert listener.state.data["scaling"]["video"]["last_decision"]["at"] == "1970-01-01T00:18:10Z"
    # Started by someone else between the look and the start: as good as done.
    supervisor.settle()
    supervisor.faults[("start", spare(2))] = xmlrpc.client.Fault(60, "ALREADY_STARTED: video_02")
    probe_and_decide(listener, clock, 1150)
    assert "scale video 2 -> 3: " in capsys.readouterr().err
    # The probe fails: nothing is decided on an old backlog.
    backlog.sizes = RuntimeError("exit 255: cannot boot")
    calls = len(supervisor.calls)
    for at in (1210, 1240, 1270):
        probe_and_decide(listener, clock, at)
    assert len(supervisor.calls) == calls


def test_a_stopped_worker_is_left_alone(tmp_path, capsys):
    listener, supervisor, backlog, clock = new_listener(tmp_path)
    backlog.sizes["video"] = 10
    supervisor.states["video:video_00"] = "STOPPED"  # by hand or by a deploy
    probe_and_decide(listener, clock, 1000)
    probe_and_decide(listener, clock, 1030)
    assert supervisor.calls == []
    assert capsys.readouterr().err.count("scale video: program video is stopped: no spare started or stopped") == 1
    supervisor.states["video:video_00"] = "FATAL"  # crashed, not stopped: its spares do the work meanwhile
    probe_and_decide(listener, clock, 1060)
    assert supervisor.calls == [("start", spare(1))]


def test_an_unreadable_log_leaves_the_runtime_unknown(tmp_path, capsys):
    (tmp_path / "logdir").mkdir()
    listener, supervisor, backlog, clock = new_listener(tmp_path, log=str(tmp_path / "logdir"))
    backlog.sizes["video"] = 2
    for at in (1000, 1005, 1010):
        probe_and_decide(listener, clock, at)
    err = capsys.readouterr().err
    assert err.count("scale video: cannot read its log %s" % (tmp_path / "logdir")) == 1
    assert "no job measured yet" in err and supervisor.calls == [("start", spare(1))]


def test_metrics_of_the_scaled_worker(tmp_path):
    listener, supervisor, backlog, clock = new_listener(tmp_path, metrics=True)
    log = tmp_path / "video.log"
    append(log, modern("90s") * 2)
    backlog.sizes["video"] = 7
    probe_and_decide(listener, clock, 1000)
    supervisor.settle()
    probe_and_decide(listener, clock, 1060)
    backlog.sizes["video"] = 0
    supervisor.settle()
    probe_and_decide(listener, clock, 1120)
    tick(listener, clock, 1130)
    text = (tmp_path / "metrics" / "elms_queue_workers.prom").read_text()
    found = dict((line.rsplit(" ", 1)[0], float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                 if line.startswith("elms_queue_workers_scale") or line.startswith("elms_queue_workers_job"))
    labels = '{app="elms",program="video"}'
    assert found == {
        "elms_queue_workers_scaled_processes" + labels: 2,  # 3 started, one STOPPING
        "elms_queue_workers_scaled_processes_min" + labels: 1,
        "elms_queue_workers_scaled_processes_max" + labels: 4,
        "elms_queue_workers_scaled_processes_wanted" + labels: 1,
        "elms_queue_workers_job_duration_seconds_average" + labels: 90.0,
        'elms_queue_workers_scale_decisions_total{app="elms",direction="up",program="video"}': 2,
        'elms_queue_workers_scale_decisions_total{app="elms",direction="down",program="video"}': 1,
    }
    for name in ("elms_queue_workers_scaled_processes", "elms_queue_workers_scale_decisions_total"):
        assert "# HELP %s " % name in text and "# TYPE %s %s" % (
            name, "counter" if name.endswith("_total") else "gauge") in text


def test_a_reloaded_config_keeps_what_was_learnt(tmp_path):
    listener, _supervisor, _backlog, clock = new_listener(tmp_path)
    append(tmp_path / "video.log", modern("5s"))
    tick(listener, clock, 1004)
    assert listener.state.data["scaling"]["video"]["jobs_measured"] == 0  # the log is looked at every 5 s
    tick(listener, clock, 1005)
    assert listener.state.data["scaling"]["video"]["jobs_measured"] == 1
    listener.configure(al.normalize(raw_config(tmp_path, max=6, step=2)))
    assert listener.state.data["scaling"]["video"]["jobs_measured"] == 1
    assert listener.state.data["scaling"]["video"]["max"] == 6
    listener.configure(al.normalize(dict(raw_config(tmp_path), scaling=None)))
    assert listener.state.data["scaling"] == {} and listener.metrics.scaled == {}


# --- inside a real supervisord ----------------------------------------------------------

# A worker that finishes its job on SIGTERM (as queue:work does) before it exits.
JOB = r"""
import os, signal, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name = os.environ["SUPERVISOR_PROCESS_NAME"]

def finish(signum, frame):
    time.sleep(1)  # the rest of the running job
    with open(os.path.join(here, "finished-" + name), "w") as handle:
        handle.write("%d\n" % signum)
    sys.exit(0)

signal.signal(signal.SIGTERM, finish)
with open(os.path.join(here, "ready-" + name), "w") as handle:
    handle.write("%d\n" % os.getpid())
while True:
    time.sleep(1)
"""

WORKER = """
[program:video]
command={python} %(here)s/job.py
process_name=%(program_name)s_%(process_num)02d
numprocs=1
startsecs=0
stopwaitsecs=30
stdout_logfile=%(here)s/video.log

[program:video-spare]
command={python} %(here)s/job.py
process_name=video_%(process_num)02d
numprocs=3
numprocs_start=1
autostart=false
autorestart=true
startsecs=0
stopwaitsecs=30
stdout_logfile=%(here)s/video-spare.log
"""


def wait_for(check, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_real_supervisord_spares_up_to_max_and_down_to_min(real_supervisord, monkeypatch):
    server = real_supervisord(WORKER.format(python=sys.executable.replace("%", "%%")), files={"job.py": JOB},
                              auth=True, prefix="elms-scale-")
    monkeypatch.setenv("SUPERVISOR_SERVER_URL", "unix://" + server.socket)
    real_rpc, calls = al.supervisor_rpc, []

    class Recording:
        def __init__(self, proxy):
            self.proxy = proxy

        def __getattr__(self, method):
            def call(*args):
                calls.append((method,) + args)
                return getattr(self.proxy, method)(*args)
            return call
    monkeypatch.setattr(al, "supervisor_rpc", lambda config: Recording(real_rpc(config)))
    supervisor = real_rpc(server.config)

    def states():
        return dict(("%s:%s" % (i["group"], i["name"]), (i["statename"], i["pid"]))
                    for i in supervisor.getAllProcessInfo())
    assert wait_for(lambda: states()["video:video_00"][0] == "RUNNING", 10)
    base_pid = states()["video:video_00"][1]
    raw = raw_config(server.here)
    raw["supervisor_config"] = server.config
    backlog, clock = Backlog(video=10), Clock()
    listener = al.Listener(al.normalize(raw), clock=clock, rpc=None, send=lambda alert: None, probe=backlog)

    for at in range(1000, 1181, 30):  # a decision a cooldown apart: 1 -> 2 -> 3 -> 4, then at max
        probe_and_decide(listener, clock, at)
    assert wait_for(lambda: sorted(p for p, s in states().items() if s[0] == "RUNNING") == [
        "video-spare:video_01", "video-spare:video_02", "video-spare:video_03", "video:video_00"], 10), states()
    # Each at work (its SIGTERM handler in place) before the backlog is gone.
    assert wait_for(lambda: all(os.path.exists(os.path.join(server.here, "ready-video_%02d" % n)) for n in range(4)),
                    10)
    backlog.sizes["video"] = 0
    for at in range(1210, 1391, 30):
        probe_and_decide(listener, clock, at)
    # The listener never waited for a stop: the last one stopped is still finishing its job.
    assert not os.path.exists(os.path.join(server.here, "finished-video_01"))
    assert wait_for(lambda: [s[0] for p, s in sorted(states().items())] == ["STOPPED"] * 3 + ["RUNNING"], 15), states()

    changes = [call for call in calls if call[0] in ("startProcess", "stopProcess")]
    assert changes == [("startProcess", "video-spare:video_01", False), ("startProcess", "video-spare:video_02", False),
                       ("startProcess", "video-spare:video_03", False), ("stopProcess", "video-spare:video_03", False),
                       ("stopProcess", "video-spare:video_02", False), ("stopProcess", "video-spare:video_01", False)]
    assert states()["video:video_00"] == ("RUNNING", base_pid)  # the minimum never touched
    for n in (1, 2, 3):  # each got SIGTERM and finished its job: stopped, not killed
        with open(os.path.join(server.here, "finished-video_%02d" % n), encoding="utf-8") as handle:
            assert handle.read() == "15\n"
    with open(os.path.join(server.here, "supervisord.log"), encoding="utf-8") as handle:
        supervisord_log = handle.read()
    assert len(re.findall(r"stopped: video_0[123] \(exit status 0\)", supervisord_log)) == 3, supervisord_log
    assert "SIGKILL" not in supervisord_log
    decision = listener.state.data["scaling"]["video"]["last_decision"]
    assert (decision["from"], decision["to"], listener.state.data["scaling"]["video"]["current"]) == (2, 1, 1)
