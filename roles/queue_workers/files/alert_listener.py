# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts from supervisor's own events for the queue workers, and bounded self-healing.

supervisor runs this script as an event listener:

    [eventlistener:queue-workers-alerts]
    command=/usr/bin/python3 alert_listener.py --config /etc/elms-queue-workers/alerts.json
    events=PROCESS_STATE,TICK_5

(--revision X may follow: it is ignored, and only there so that a new script or config
changes the command line, which makes supervisor restart the listener.)

The protocol (supervisor's "Event Listener Notification Protocol"): the listener writes
READY; supervisor writes one header line ending in len:N, then N characters of payload;
the listener answers RESULT 2\\nOK and writes READY again. stdout is that channel and
nothing else; this script logs to stderr, one line per state change it watches, which
supervisor keeps in the listener's log. It never answers FAIL: supervisor would send the
event again, an alert storm.

What it does with the events of the programs named in its config (a program's group has
the program's name; the listener's own group and every other program are ignored):

- FATAL, a BACKOFF that lasts backoff_alert_after seconds (a crash loop: from the first
  BACKOFF until a state other than STARTING or BACKOFF), and an unexpected EXITED are
  alerted; a RUNNING after any of those is alerted as the recovery.
- A FATAL process is started again over supervisord's XML-RPC API after each of
  fatal_retry.delays in turn; each attempt and the final give-up are alerted.
- Optionally, every backlog.interval seconds each app is asked for the size of its
  queues (the app's own PHP, as the app's user, in a thread) and a queue over its
  threshold is alerted.
- Optionally (metrics_dir), every 10 s the processes' states, their restarts, each program's
  FATALs and alerts, and the probed queues' sizes and oldest pending job are written to
  METRICS_DIR/elms_queue_workers.prom in node_exporter's textfile format (through a
  temporary file and a rename).
- Alerts are rate-limited per program; the next alert that goes out says how many were
  held back. Each alert goes to every channel (webhook, syslog, mail) from a sender
  thread fed by a bounded queue, so supervisor never waits on the network.
- Optionally (scaling), it scales workers with their backlog; see below.

Scaling. supervisor cannot change a program's numprocs while it runs, so a worker with
numprocs {min, max} is deployed as two programs: NAME, its min processes (autostart: they
run whatever happens to this listener), and NAME-spare, max - min more numbered on from
min (NAME-spare:NAME_01, ... for min 1), autostart=false: this listener starts and stops
those, over supervisord's XML-RPC API, never waiting (a stop is supervisor's SIGTERM and
stopwaitsecs: the running job finishes). The config names them:

    "scaling": {"NAME": {"app": "elms", "spare": "NAME-spare", "min": 1, "max": 4,
                         "queues": ["video"], "clear_seconds": 300, "step": 1,
                         "cooldown": 60, "log": "/srv/app/storage/logs/NAME.log"}}

(app: a key of backlog.apps, which probes each of queues; spare defaults to NAME-spare,
clear_seconds to 300, step to 1, cooldown to 60 s, log to the program's log; NAME and
its spare program are in programs too, watched like any other.)

- Job runtimes: the worker's stdout log is read as it grows (from its end when the
  listener starts; from the start of a rotated or truncated one; at most LOG_READ_MAX
  bytes a look, every LOG_READ_EVERY s). queue:work writes "[time][id] Processing:" and
  "[time][id] Processed:" or "Failed:" (Laravel 6-8: paired by job id, the runtime the
  difference of the times) or "  time Class .... 2,873.47ms DONE" (or 3s, 1m 5s; FAIL;
  Laravel 9+: the runtime printed). Their average is the mean of the last RUNTIMES_KEPT.
- Right after each probe of its app (in the probe's thread), and never sooner than cooldown after
  its last change: wanted = ceil(backlog x average runtime / clear_seconds), 0 for no
  backlog, within [min, max]; a job counts clear_seconds while no runtime is known (so
  as many processes as jobs). The processes counted are those of both programs RUNNING,
  STARTING or in BACKOFF, as supervisord says at that moment (never what was remembered:
  anyone may have started or stopped some). At most step processes are started (the
  lowest-numbered spares STOPPED, EXITED or FATAL, but not one FATAL for less than
  cooldown) or stopped (the highest-numbered running spares). The base program is never
  touched; while it is stopped (by hand or a deploy) no spare is started or stopped.
- Each change is logged with its reason (a decision to stay only when what it is about
  changes); the state file (written whenever current, wanted or backlog change) has scaling: {NAME: {min, max, current, wanted, backlog,
  avg_job_seconds, jobs_measured, last_decision: {at, from, to, reason}}}, and the
  metrics file the scaled processes, min, max, wanted, the average job runtime and the
  decisions up and down.

Times come from TICK_5 (every 5 s) and every other event: that is when lasting BACKOFFs,
due retries, the backlog probe, scaling decisions, the metrics and the state file (a JSON
summary for a diagnosis) are looked at. The config, a root-only file (it holds the webhook URL, a secret), is read
again when its mtime changes. Standard library only, Python 3.6 and later.
"""

# A listener that dies or stops answering leaves every worker unwatched, so errors of
# any kind in handling, sending, probing and scaling are caught, logged and survived.
# pylint: disable=broad-exception-caught

import argparse
import base64
import collections
import configparser
import datetime
import email.message
import email.utils
import http.client
import io
import json
import math
import os
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import syslog
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xmlrpc.client

DEFAULT_CONFIG = "/etc/elms-queue-workers/alerts.json"
QUEUE_SIZE = 100            # alerts waiting for the sender thread; more are dropped (counted)
STATE_EVERY = 60            # seconds between state file writes when nothing is sent
RPC_TIMEOUT = 10
PROBE_TIMEOUT = 60
MAIL_TIMEOUT = 30
TAIL_BYTES = 65536          # enough for log_lines lines of any sane log
TAIL_LINE_MAX = 1000        # a chat message with one megabyte-long log line helps no one
# supervisor's fault codes (supervisor/xmlrpc.py) after which its own state events follow.
ALREADY_STARTED, SPAWN_ERROR, NOT_RUNNING = 60, 50, 70
ICONS = {"FATAL": ":rotating_light:", "GAVE_UP": ":rotating_light:", "BACKOFF": ":warning:",
         "EXITED": ":warning:", "RETRY": ":arrows_counterclockwise:", "RUNNING": ":white_check_mark:",
         "BACKLOG": ":hourglass:"}
BACKLOG_MARK = "ELMS-BACKLOG "
OLDEST_MARK = "ELMS-OLDEST "
METRICS_FILE = "elms_queue_workers.prom"   # in the config's metrics.dir, for node_exporter's textfile collector
METRICS_EVERY = 10                          # seconds between two writes of the metrics file
# Things fall due on supervisor's events, TICK_5 at the least: one that arrives this much early still counts, or
# a 5 s probe interval would wait for the tick after next (10 s) whenever a tick comes a hair early.
TICK_SLACK = 0.5
SUPERVISOR_STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
# Scaling: a process in one of UP_STATES counts (STOPPING ones are leaving); one in DOWN_STATES may be started.
UP_STATES = ("RUNNING", "STARTING", "BACKOFF")
DOWN_STATES = ("STOPPED", "EXITED", "FATAL")
RUNTIMES_KEPT = 50          # the average job runtime of a scaled worker is the mean of its last 50 jobs
LOG_READ_MAX = 1 << 20      # bytes of a worker's log read at most per look; more unread: only the newest
LOG_READ_EVERY = 5          # seconds between two looks at a worker's log
LOG_LINE_MAX = 4096         # longer lines are no queue:work status line
PENDING_KEPT = 1000         # started jobs (Laravel 6-8 log) remembered until their end line
LOG_MARK = 64               # bytes before the read offset compared to tell a truncated log
# Boots the app the way artisan does and prints its queues' sizes on one marked line (the
# app's bootstrap may print warnings of its own). The argument is {"connection", "queues"}.
PROBE = r"""
$arg = json_decode(end($argv), true);
if (is_file(getcwd().'/vendor/autoload.php')) { require getcwd().'/vendor/autoload.php'; }
$app = require getcwd().'/bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
$connection = $app['queue']->connection($arg['connection'] === '' ? null : $arg['connection']);
$sizes = array();
foreach ($arg['queues'] as $queue) { $sizes[$queue] = $connection->size($queue); }
echo "\n" . 'ELMS-BACKLOG ' . json_encode((object) $sizes) . "\n";
$name = $arg['connection'] === '' ? config('queue.default') : $arg['connection'];
$settings = config("queue.connections.$name") ?: array();
$ages = array();
if (($settings['driver'] ?? '') === 'database') {
    $db = $app['db']->connection($settings['connection'] ?? null);
    foreach ($arg['queues'] as $queue) {
        $oldest = $db->table($settings['table'] ?? 'jobs')->where('queue', $queue)->whereNull('reserved_at')
            ->where('available_at', '<=', time())->min('available_at');
        $ages[$queue] = $oldest === null ? null : max(0, time() - (int) $oldest);
    }
}
echo 'ELMS-OLDEST ' . json_encode((object) $ages) . "\n";
"""

_LOG_LOCK = threading.Lock()


def utc_iso(when):
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message):
    """One line on stderr (supervisor's log of the listener), never on stdout."""
    line = "%s %s\n" % (utc_iso(time.time()), str(message).replace("\n", "\\n"))
    with _LOG_LOCK:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def redact(url):
    """scheme://host[:port] of a URL: its path and query are often the secret."""
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.hostname or "") + (":%s" % parts.port if parts.port else "")


# --- protocol -------------------------------------------------------------------------

def parse_header(line):
    """The header line's tokens as a dict of strings; ValueError when it is none."""
    headers = {}
    for token in line.split():
        key, sep, value = token.partition(":")
        if not sep:
            raise ValueError("not an event header: %r" % line[:200])
        headers[key] = value
    if not headers.get("len", "").isdigit():
        raise ValueError("event header without len: %r" % line[:200])
    return headers


def parse_payload(text):
    """The key:value tokens of the payload's first line (the rest is data, e.g. of a log event)."""
    first = text.split("\n", 1)[0]
    return dict(token.split(":", 1) for token in first.split() if ":" in token)


# --- config ---------------------------------------------------------------------------

class ConfigError(Exception):
    pass


def _section(raw, key, defaults):
    """raw[key] merged over defaults, None when it is null or missing (a channel that is off)."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("%s must be a mapping or null" % key)
    return dict(defaults, **value)


def _number(value, name, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ConfigError("%s = %r must be a number >= %s" % (name, value, low))
    return value


def _whole(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError("%s = %r must be a whole number >= %s" % (name, value, low))
    return value


SCALING_DEFAULTS = {"clear_seconds": 300, "step": 1, "cooldown": 60, "log": None}


def _scaling(value, programs, backlog):
    """scaling: {base program: {app, spare, min, max, queues, clear_seconds, step, cooldown, log}}, checked
    against the programs watched and the apps probed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("scaling must be a mapping of {program: {app, min, max, queues, ...}} or null")
    apps = (backlog or {}).get("apps") or {}
    found = {}
    for name, spec in value.items():
        where = "scaling.%s" % name
        if not isinstance(spec, dict):
            raise ConfigError("%s must be a mapping {app, min, max, queues, ...}" % where)
        spec = dict(dict(SCALING_DEFAULTS, spare="%s-spare" % name), **spec)
        if spec.get("app") not in apps:
            raise ConfigError("%s.app = %r must be an app of backlog.apps (where its queues are measured)"
                              % (where, spec.get("app")))
        low = _whole(spec.get("min"), where + ".min", 1)
        high = spec.get("max")
        if isinstance(high, bool) or not isinstance(high, int) or high <= low:
            raise ConfigError("%s.max = %r must be a whole number above min (%d)" % (where, high, low))
        queues = [spec["queues"]] if isinstance(spec.get("queues"), str) else spec.get("queues")
        if not isinstance(queues, list) or not queues or not all(isinstance(q, str) and q for q in queues):
            raise ConfigError("%s.queues must be a list of the worker's queue names" % where)
        for queue_name in queues:
            if queue_name not in apps[spec["app"]]["queues"]:
                raise ConfigError("%s.queues: %s is not measured: it must be in backlog.apps.%s.queues too "
                                  "(threshold null when not alerted)" % (where, queue_name, spec["app"]))
        spare = spec.get("spare")
        if not isinstance(spare, str) or not spare or spare == name:
            raise ConfigError("%s.spare = %r must be the name of the spare processes' program" % (where, spare))
        for program in (name, spare):
            if program not in programs:
                raise ConfigError("%s: program %s must be in programs too (it is watched like any worker)"
                                  % (where, program))
        log_path = spec.get("log") or programs[name].get("log") or ""
        if not isinstance(log_path, str):
            raise ConfigError("%s.log = %r must be the worker's stdout log file" % (where, log_path))
        found[name] = {"app": spec["app"], "spare": spare, "min": low, "max": high, "queues": queues,
                       "clear_seconds": _number(spec["clear_seconds"], where + ".clear_seconds", 1),
                       "step": _whole(spec["step"], where + ".step", 1),
                       "cooldown": _number(spec["cooldown"], where + ".cooldown"), "log": log_path}
    return found


def _metrics_dir(value):
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError("metrics_dir = %r must be an absolute directory (or null for no metrics)" % (value,))
    return value


def normalize(raw):
    """The config with every default filled in; ConfigError names the first bad value."""
    if not isinstance(raw, dict) or not isinstance(raw.get("programs"), dict):
        raise ConfigError("the config must be a mapping with programs: {name: {app, log}}")
    host = raw.get("host") or socket.gethostname()
    channels = raw.get("channels") or {}
    if not isinstance(channels, dict):
        raise ConfigError("channels must be a mapping")
    webhook = _section(channels, "webhook", {"timeout": 5})
    if webhook is not None and not str(webhook.get("url", "")).startswith(("http://", "https://")):
        raise ConfigError("channels.webhook.url must be an http:// or https:// URL")
    mail = _section(channels, "mail", {"to": [], "from": "root@%s" % host, "sendmail": "/usr/sbin/sendmail"})
    if mail is not None and isinstance(mail["to"], str):
        mail["to"] = [mail["to"]]
    backlog = _section(raw, "backlog", {"interval": 300, "apps": {}})
    if backlog is not None:
        _number(backlog["interval"], "backlog.interval", 1)
        backlog["apps"] = dict((name, dict({"user": "www-data", "php": "/usr/bin/php", "connection": "", "queues": {}},
                                           **app)) for name, app in (backlog["apps"] or {}).items())
        for name, app in backlog["apps"].items():
            if not app.get("dir"):
                raise ConfigError("backlog.apps.%s.dir (the app's directory) is missing" % name)
            for queue_name, threshold in app["queues"].items():
                if threshold is not None:  # null: probed for the metrics only, never alerted
                    _number(threshold, "backlog.apps.%s.queues.%s" % (name, queue_name))
    limit = dict({"alerts": 3, "seconds": 600}, **(raw.get("rate_limit") or {}))
    delays = (raw.get("fatal_retry") or {}).get("delays", [60, 180, 360])
    if not isinstance(delays, list):
        raise ConfigError("fatal_retry.delays must be a list of seconds")
    programs = dict((name, {"app": (spec or {}).get("app") or "", "log": (spec or {}).get("log") or ""})
                    for name, spec in raw["programs"].items())
    return {
        "host": host,
        "programs": programs,
        "channels": {"webhook": webhook, "mail": mail,
                     "syslog": _section(channels, "syslog", {"facility": "daemon", "tag": "elms-queue-workers"})},
        "backoff_alert_after": _number(raw.get("backoff_alert_after", 30), "backoff_alert_after"),
        "rate_limit": {"alerts": int(_number(limit["alerts"], "rate_limit.alerts", 1)),
                       "seconds": _number(limit["seconds"], "rate_limit.seconds")},
        "fatal_retry": {"delays": [_number(d, "fatal_retry.delays[]") for d in delays]},
        "backlog": backlog,
        "scaling": _scaling(raw.get("scaling"), programs, backlog),
        "log_lines": int(_number(raw.get("log_lines", 10), "log_lines")),
        "state_file": raw.get("state_file") or "/var/lib/elms-queue-workers/alerts/state.json",
        "metrics_dir": _metrics_dir(raw.get("metrics_dir")),
        "supervisor_config": raw.get("supervisor_config") or "/etc/supervisor/supervisord.conf",
    }


class ConfigFile:
    """The config file, read again when its mtime changes."""

    def __init__(self, path):
        self.path = path
        self.mtime = None

    def poll(self):
        """The new config when the file changed since the last call, else None; ConfigError."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            raise ConfigError("cannot read %s: %s" % (self.path, exc.strerror)) from None
        if mtime == self.mtime:
            return None
        # Remembered before reading: a broken file is reported once, not on every event.
        self.mtime = mtime
        try:
            with open(self.path, encoding="utf-8") as handle:
                return normalize(json.load(handle))
        except ConfigError as exc:
            raise ConfigError("%s: %s" % (self.path, exc)) from None
        except Exception as exc:  # a value of the wrong type deep inside, too
            raise ConfigError("cannot read %s: %s: %s" % (self.path, type(exc).__name__, exc)) from None


# --- supervisord's XML-RPC API ----------------------------------------------------------

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class SupervisorTransport(xmlrpc.client.Transport):
    """HTTP to supervisord on a unix:// socket or http:// port, with Basic auth when given."""

    def __init__(self, url, username=None, password=None, timeout=RPC_TIMEOUT):
        super().__init__()
        self.url = url
        self.timeout = timeout
        self.auth = None
        if username and password:
            pair = ("%s:%s" % (username, password)).encode("utf-8")
            self.auth = "Basic " + base64.b64encode(pair).decode("ascii")

    def make_connection(self, host):
        if self.url.startswith("unix://"):
            conn = _UnixHTTPConnection(self.url[len("unix://"):], self.timeout)
        else:
            parts = urllib.parse.urlsplit(self.url)
            conn = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 80, timeout=self.timeout)
        self._connection = host, conn
        return conn

    def send_headers(self, connection, headers):
        # Transport(headers=...) is Python 3.8+; this hook is older.
        if self.auth:
            headers = list(headers) + [("Authorization", self.auth)]
        super().send_headers(connection, headers)


def supervisor_credentials(path, url):
    """[supervisorctl] username/password of supervisord's config, else the server section's pair."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    try:
        parser.read(path)
    except (configparser.Error, UnicodeDecodeError) as exc:
        log("cannot read credentials from %s: %s" % (path, exc))
        return None, None
    server = "unix_http_server" if url.startswith("unix://") else "inet_http_server"
    for section in ("supervisorctl", server):
        username = parser.get(section, "username", fallback=None)
        password = parser.get(section, "password", fallback=None)
        if username and password and not password.startswith("{SHA}"):
            return username, password
    return None, None


def supervisor_rpc(supervisor_config, env=None, timeout=RPC_TIMEOUT):
    """supervisord's "supervisor" namespace, at the URL supervisor gives its children."""
    url = (os.environ if env is None else env).get("SUPERVISOR_SERVER_URL")
    if not url:
        raise RuntimeError("SUPERVISOR_SERVER_URL is not set (not run by supervisord?)")
    username, password = supervisor_credentials(supervisor_config, url)
    transport = SupervisorTransport(url, username, password, timeout)
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport).supervisor


# --- channels ---------------------------------------------------------------------------

def send_webhook(channel, alert):
    request = urllib.request.Request(channel["url"], data=json.dumps(alert).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "elms-queue-workers-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=channel["timeout"]) as response:
            response.read()
    except Exception as exc:
        # Messages of urllib may quote the URL; the path is the secret, so only its scheme://host is named.
        reason = str(getattr(exc, "reason", exc)).replace(channel["url"], redact(channel["url"]))
        status = " %s" % exc.code if isinstance(getattr(exc, "code", None), int) else ""
        # from None: a chained traceback would print the URL.
        message = "POST to %s failed: %s%s: %s" % (redact(channel["url"]), type(exc).__name__, status, reason)
        raise RuntimeError(message) from None


def send_syslog(channel, alert):
    facility = getattr(syslog, "LOG_" + str(channel["facility"]).upper(), syslog.LOG_DAEMON)
    syslog.openlog(channel["tag"], 0, facility)
    syslog.syslog(syslog.LOG_INFO if alert["event"] == "RUNNING" else syslog.LOG_ERR, alert["text"])


def send_mail(channel, alert):
    message = email.message.EmailMessage()
    message["From"] = channel["from"]
    message["To"] = ", ".join(channel["to"])
    message["Subject"] = alert["text"]
    message["Date"] = email.utils.formatdate()
    message.set_content(json.dumps(alert, indent=2, sort_keys=True) + "\n")
    # stdout/stderr captured: a child writing on the listener's stdout would break the protocol.
    result = subprocess.run([channel["sendmail"], "-t", "-oi"], input=bytes(message), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=MAIL_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError("%s exited %s: %s" % (channel["sendmail"], result.returncode,
                                                 result.stdout.decode("utf-8", "replace").strip()[-300:]))


CHANNELS = (("webhook", send_webhook), ("syslog", send_syslog), ("mail", send_mail))


def write_atomic(path, text):
    """text into path through a temporary file in the same directory and a rename: a reader (a diagnosis,
    node_exporter's textfile collector) sees the old file or the new one, never half of one. OSError."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.rename(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


class State:
    """Counters and the last send, written as JSON for a diagnosis to read."""

    def __init__(self, path, now):
        self.path = path
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.written_at = None
        self.data = {"pid": os.getpid(), "started_at": utc_iso(now), "last_event_at": None, "last_sent": None,
                     "sent": 0, "suppressed": 0, "failed": 0, "retrying": {}}

    def update(self, **counts):
        with self.lock:
            for key, value in counts.items():
                if key in ("sent", "suppressed", "failed"):
                    self.data[key] += value
                else:
                    self.data[key] = value

    def write(self, now):
        # Both threads write: taking the snapshot and renaming under one lock keeps an
        # older snapshot from replacing a newer one.
        with self.write_lock:
            with self.lock:
                self.written_at = now
                text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
            try:
                write_atomic(self.path, text)
            except OSError as exc:
                log("cannot write the state file %s: %s" % (self.path, exc))


# --- metrics ----------------------------------------------------------------------------

def _label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name, value, **labels):
    text = ",".join('%s="%s"' % (key, _label(labels[key])) for key in sorted(labels))
    number = repr(float(value)) if isinstance(value, float) else str(int(value))
    return "%s%s %s" % (name, "{%s}" % text if text else "", number)


# name: (type, help) of every metric, in the order written. Prometheus naming: base units (seconds),
# _total for counters, _timestamp_seconds for points in time (Unix seconds).
METRICS = (
    ("elms_queue_workers_metrics_updated_timestamp_seconds", "gauge", "When this file was written."),
    ("elms_queue_workers_supervisor_up", "gauge", "Whether supervisord answered the listener's last question."),
    ("elms_queue_worker_process_state", "gauge", "1 for the supervisor state the process is in, 0 for the others."),
    ("elms_queue_worker_process_state_timestamp_seconds", "gauge", "When the process entered its current state."),
    ("elms_queue_worker_process_start_time_seconds", "gauge", "When the process was last started."),
    ("elms_queue_worker_process_exit_status", "gauge", "The exit status of the process's last exit."),
    ("elms_queue_worker_process_restarts_total", "counter",
     "Starts after an exit or a failed start (supervisor's autorestart and retries), since the listener started."),
    ("elms_queue_worker_program_fatal_total", "counter", "Times a process of the program went FATAL."),
    ("elms_queue_worker_program_alerts_sent_total", "counter", "Alerts delivered to at least one channel."),
    ("elms_queue_worker_program_alerts_held_back_total", "counter",
     "Alerts held back by the rate limit or dropped with a full send queue."),
    ("elms_queue_jobs", "gauge", "Jobs in the queue (the app's own size(): pending, delayed and reserved)."),
    ("elms_queue_oldest_pending_job_age_seconds", "gauge",
     "How long the oldest pending job has been available (database queues only)."),
    ("elms_queue_workers_scaled_processes", "gauge",
     "Processes of a scaled worker (its program and its spares) RUNNING, STARTING or in BACKOFF."),
    ("elms_queue_workers_scaled_processes_min", "gauge", "The processes a scaled worker always runs."),
    ("elms_queue_workers_scaled_processes_max", "gauge", "The processes a scaled worker runs at most."),
    ("elms_queue_workers_scaled_processes_wanted", "gauge",
     "The processes the last scaling decision wanted for the backlog, within min and max."),
    ("elms_queue_workers_job_duration_seconds_average", "gauge",
     "Mean runtime of the scaled worker's last jobs (at most %d), read from its log." % RUNTIMES_KEPT),
    ("elms_queue_workers_scale_decisions_total", "counter",
     "Scaling decisions that started (up) or stopped (down) spare processes, since the listener started."),
)


class Metrics:
    """What the events, the alerts and the backlog probe counted, written with supervisord's process list in
    node_exporter's textfile format. Every thread of the listener counts here; render() takes a snapshot."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        self.restarts = collections.Counter()   # process -> starts after an exit or a failed start
        self.fatal = collections.Counter()      # (app, program) -> FATAL entries
        self.sent = collections.Counter()       # (app, program) -> alerts delivered
        self.held = collections.Counter()       # (app, program) -> alerts held back or dropped
        self.since = {}                         # process -> (state, when it entered it)
        self.queues = {}                        # (app, queue) -> (jobs, oldest age or None)
        self.scaled = {}                        # scaled program -> {app, spare, min, max, wanted, average}
        self.decisions = collections.Counter()  # (app, program, "up" or "down") -> scaling decisions
        self.written_at = None

    def state_change(self, app, group, process, from_state, to_state, now):
        with self.lock:
            self.since[process] = (to_state, now)
            if to_state == "STARTING" and from_state in ("EXITED", "BACKOFF"):
                self.restarts[process] += 1
            if to_state == "FATAL":
                self.fatal[(app, group)] += 1

    def alert(self, app, program, sent):
        with self.lock:
            (self.sent if sent else self.held)[(app, program)] += 1

    def backlog(self, app, sizes, ages):
        with self.lock:
            for queue_name, jobs in sizes.items():
                if isinstance(jobs, int) and not isinstance(jobs, bool):
                    age = ages.get(queue_name)
                    self.queues[(app, queue_name)] = (jobs, age if isinstance(age, (int, float)) else None)

    def scaling(self, program, **fields):
        """What is known of a scaled worker (configure() sets app, spare, min, max; a decision wanted and
        average); program None: forget the workers no longer scaled (fields: keep=[their names])."""
        with self.lock:
            if program is None:
                self.scaled = dict((name, self.scaled.get(name, {})) for name in fields["keep"])
            else:
                self.scaled.setdefault(program, {}).update(fields)

    def decision(self, app, program, direction):
        with self.lock:
            self.decisions[(app, program, direction)] += 1

    def _render_scaling(self, lines, processes):
        for program, known in sorted(self.scaled.items()):
            if "min" not in known:
                continue
            labels = {"app": known["app"], "program": program}
            if processes is not None:
                current = sum(1 for i in processes if i.get("group") in (program, known["spare"]) and
                              i.get("statename") in UP_STATES)
                lines["elms_queue_workers_scaled_processes"].append(
                    _sample("elms_queue_workers_scaled_processes", current, **labels))
            for name, key in (("elms_queue_workers_scaled_processes_min", "min"),
                              ("elms_queue_workers_scaled_processes_max", "max"),
                              ("elms_queue_workers_scaled_processes_wanted", "wanted"),
                              ("elms_queue_workers_job_duration_seconds_average", "average")):
                if known.get(key) is not None:
                    lines[name].append(_sample(name, known[key], **labels))
            for direction in ("up", "down"):
                lines["elms_queue_workers_scale_decisions_total"].append(
                    _sample("elms_queue_workers_scale_decisions_total",
                            self.decisions[(known["app"], program, direction)], direction=direction, **labels))

    def render(self, processes, programs, now):
        """The file's text. processes: supervisord's getAllProcessInfo (None when it did not answer);
        programs: the config's {group: {"app"}}, the groups reported."""
        lines = dict((name, []) for name, _type, _help in METRICS)
        lines["elms_queue_workers_metrics_updated_timestamp_seconds"].append(
            _sample("elms_queue_workers_metrics_updated_timestamp_seconds", float(round(now, 3))))
        lines["elms_queue_workers_supervisor_up"].append(
            _sample("elms_queue_workers_supervisor_up", 0 if processes is None else 1))
        with self.lock:
            for info in sorted(processes or [], key=lambda i: (i.get("group", ""), i.get("name", ""))):
                group = info.get("group", "")
                if group not in programs:
                    continue
                process = "%s:%s" % (group, info.get("name", ""))
                labels = {"app": programs[group].get("app", ""), "program": group, "process": process}
                current = info.get("statename", "UNKNOWN")
                for state in SUPERVISOR_STATES:
                    lines["elms_queue_worker_process_state"].append(
                        _sample("elms_queue_worker_process_state", 1 if state == current else 0, state=state, **labels))
                seen = self.since.get(process)
                if seen and seen[0] == current:
                    entered = seen[1]
                else:  # entered before the listener saw it: supervisor's own times
                    entered = info.get("stop") if current in ("STOPPED", "EXITED", "FATAL") else info.get("start")
                if entered:
                    lines["elms_queue_worker_process_state_timestamp_seconds"].append(
                        _sample("elms_queue_worker_process_state_timestamp_seconds", entered, **labels))
                if info.get("start"):
                    lines["elms_queue_worker_process_start_time_seconds"].append(
                        _sample("elms_queue_worker_process_start_time_seconds", info["start"], **labels))
                lines["elms_queue_worker_process_exit_status"].append(
                    _sample("elms_queue_worker_process_exit_status", info.get("exitstatus") or 0, **labels))
                lines["elms_queue_worker_process_restarts_total"].append(
                    _sample("elms_queue_worker_process_restarts_total", self.restarts[process], **labels))
            for group in sorted(programs):
                key = (programs[group].get("app", ""), group)
                for name, counter in (("elms_queue_worker_program_fatal_total", self.fatal),
                                      ("elms_queue_worker_program_alerts_sent_total", self.sent),
                                      ("elms_queue_worker_program_alerts_held_back_total", self.held)):
                    lines[name].append(_sample(name, counter[key], app=key[0], program=group))
            for (app, queue_name), (jobs, age) in sorted(self.queues.items()):
                lines["elms_queue_jobs"].append(_sample("elms_queue_jobs", jobs, app=app, queue=queue_name))
                if age is not None:
                    lines["elms_queue_oldest_pending_job_age_seconds"].append(
                        _sample("elms_queue_oldest_pending_job_age_seconds", age, app=app, queue=queue_name))
            self._render_scaling(lines, processes)
        text = []
        for name, kind, description in METRICS:
            if lines[name]:
                text += ["# HELP %s %s" % (name, description), "# TYPE %s %s" % (name, kind)] + lines[name]
        return "\n".join(text) + "\n"

    def write(self, processes, programs, now):
        self.written_at = now
        path = os.path.join(self.directory, METRICS_FILE)
        try:
            write_atomic(path, self.render(processes, programs, now))
        except OSError as exc:
            log("cannot write the metrics file %s: %s" % (path, exc))


class Sender:
    """Delivers alerts to every configured channel from its own thread."""

    def __init__(self, state, channels, size=QUEUE_SIZE, metrics=None):
        self.state = state
        self.channels = channels
        self.metrics = metrics
        self.queue = queue.Queue(maxsize=size)
        self.thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def put(self, alert):
        """False when the queue is full and the alert is dropped."""
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            return False

    def close(self, timeout):
        """Delivers what is queued (for at most timeout seconds) and stops the thread."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)

    def _run(self):
        while True:
            alert = self.queue.get()
            if alert is None:
                return
            try:
                self.deliver(alert)
            except Exception as exc:
                log("sending %s of %s failed: %s" % (alert.get("event"), alert.get("process"), exc))

    def deliver(self, alert):
        channels = self.channels  # one consistent set, even if the config is reloaded meanwhile
        done, failed = [], []
        for name, send in CHANNELS:
            channel = channels.get(name)
            if channel is None:
                continue
            if name == "mail" and not (channel["to"] and os.access(channel["sendmail"], os.X_OK)):
                continue  # mail is used only where the host has a sendmail
            try:
                send(channel, alert)
                done.append(name)
            except Exception as exc:
                failed.append(name)
                log("%s: %s" % (name, exc))
        log("alert %s %s: sent to %s%s" % (alert["event"], alert["process"], ", ".join(done) or "no channel",
                                           "; failed: " + ", ".join(failed) if failed else ""))
        last = {"time": alert["time"], "event": alert["event"], "process": alert["process"],
                "channels_ok": done, "channels_failed": failed}
        self.state.update(last_sent=last, sent=1 if done else 0, failed=1 if failed else 0)
        if done and self.metrics is not None:
            self.metrics.alert(alert.get("app", ""), alert.get("program", ""), sent=True)
        self.state.write(time.time())


# --- alert logic ------------------------------------------------------------------------

class RateLimiter:
    """At most `alerts` per key in any `seconds`; what is held back is counted per key."""

    def __init__(self, alerts, seconds):
        self.alerts, self.seconds = alerts, seconds
        self.sent = {}
        self.held = collections.Counter()

    def take(self, key, now):
        """(True, number held back since the last one sent) or (False, None), counted."""
        recent = [t for t in self.sent.get(key, []) if now - t < self.seconds]
        if len(recent) >= self.alerts:
            self.sent[key] = recent
            self.held[key] += 1
            return False, None
        self.sent[key] = recent + [now]
        return True, self.held.pop(key, 0)

    def hold(self, key, count=1):
        self.held[key] += count


class _Process:
    def __init__(self, group, name):
        self.group, self.name = group, name
        self.state = None
        self.pid = 0
        self.backoff_since = None   # first BACKOFF of the current start attempts
        self.backoff_alerted = False
        self.problem = False        # a problem was alerted: the next RUNNING is a recovery
        self.attempt = 0            # start attempts made by the retry schedule
        self.next_at = None         # when the next attempt is due; None while one is under way
        self.retrying = False
        self.gave_up = False


def tail(path, lines):
    """The last `lines` lines of a log file, [] when there is none or it cannot be read."""
    if not path or lines <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    found = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES:
        found = found[1:]  # cut in the middle
    return [line[:TAIL_LINE_MAX] for line in found[-lines:]]


def probe_command(app, which=shutil.which):
    """The command that prints the app's queue sizes, run as the app's user."""
    php = [app["php"], "-r", PROBE, json.dumps({"connection": app["connection"] or "",
                                                "queues": sorted(app["queues"])})]
    if which("runuser"):
        return ["runuser", "-u", app["user"], "--"] + php
    # Alpine (busybox) has no runuser; its su runs a command through a shell.
    return ["su", "-s", "/bin/sh", app["user"], "-c", " ".join(shlex.quote(arg) for arg in php)]


def probe_queues(app, run=subprocess.run, which=shutil.which):
    """({queue: jobs}, {queue: seconds the oldest pending job has waited, None when none}) of one app, the
    ages only for the database driver (the only one whose jobs say when they became available); RuntimeError
    with the reason when it cannot tell the sizes."""
    result = run(probe_command(app, which), cwd=app["dir"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, timeout=PROBE_TIMEOUT, universal_newlines=True, check=False)
    sizes, ages = None, {}
    for line in result.stdout.splitlines():
        if line.startswith(BACKLOG_MARK):
            sizes = json.loads(line[len(BACKLOG_MARK):])
        elif line.startswith(OLDEST_MARK):
            ages = json.loads(line[len(OLDEST_MARK):])
    if sizes is not None:
        return sizes, ages
    why = (result.stderr.strip() or result.stdout.strip()).splitlines()
    raise RuntimeError("exit %s: %s" % (result.returncode, why[-1][:300] if why else "no output"))


# --- scaling --------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Laravel 6-8: "[2026-12-06 14:00:00][42] Processing: App\Jobs\X", then "Processed:" or "Failed:" with the same id.
_LEGACY_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]\[([^\]]*)\] (Processing|Processed|Failed):\s")
# Laravel 9+: "  2026-12-06 14:00:03 App\Jobs\X .... 2,873.47ms DONE" (or 3s, 1m 5s; FAIL): the runtime is printed.
_MODERN_START = re.compile(r"^\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S")
_DURATION = re.compile("^([0-9][0-9,]*(?:\\.[0-9]+)?)(ms|us|\u00b5s|\u03bcs|s|m|h|d|w)$")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001,
                 "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6}


def parse_job_line(line):
    """What a line of `artisan queue:work`'s output says of a job's runtime: ("start", job id, time) and
    ("end", job id, time) of Laravel 6-8 (paired by the caller), ("took", seconds) of Laravel 9+, else None."""
    line = _ANSI.sub("", line.rstrip("\r\n"))
    if len(line) > LOG_LINE_MAX:
        return None
    match = _LEGACY_LINE.match(line)
    if match:
        when = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        return ("start" if match.group(3) == "Processing" else "end", match.group(2), when)
    words = line.split()
    if len(words) < 5 or words[-1] not in ("DONE", "FAIL") or not _MODERN_START.match(line):
        return None
    seconds, index = 0.0, len(words) - 2
    while index > 2:  # words[2] is the job's class
        match = _DURATION.match(words[index])
        if not match:
            break
        seconds += float(match.group(1).replace(",", "")) * _UNIT_SECONDS[match.group(2)]
        index -= 1
    return ("took", seconds) if index < len(words) - 2 else None


class JobRuntimes:
    """The runtimes of a worker's last jobs, from its stdout log as queue:work writes it, read a bounded piece
    at a time from where the last read ended: from the file's end when first looked at (the listener starts),
    from the start of a new file (rotated, truncated, created)."""

    def __init__(self, path, kept=RUNTIMES_KEPT):
        self.path = path
        self.runtimes = collections.deque(maxlen=kept)
        self.pending = collections.OrderedDict()   # job id -> its start (Laravel 6-8)
        self.inode = None
        self.offset = None      # None: not looked at yet
        self.skip = False       # the bytes at offset are the rest of a line already passed over
        self.mark = b""         # the last bytes before offset, to tell a log written over since

    def average(self):
        return sum(self.runtimes) / len(self.runtimes) if self.runtimes else None

    def feed(self, line):
        """True when the line ended a job whose runtime is now known."""
        found = parse_job_line(line)
        if found is None:
            return False
        if found[0] == "took":
            self.runtimes.append(found[1])
            return True
        kind, job, when = found
        if kind == "start":
            self.pending.pop(job, None)
            self.pending[job] = when
            while len(self.pending) > PENDING_KEPT:
                self.pending.popitem(last=False)  # a job that never ended (its worker was killed)
            return False
        started = self.pending.pop(job, None)  # None: it started before the listener looked
        if started is None or when < started:
            return False
        self.runtimes.append((when - started).total_seconds())
        return True

    def read(self, limit=None):
        """Feeds what was written since the last read (at most limit bytes: LOG_READ_MAX; when more is unread,
        only the newest); the number of runtimes learnt. A missing log is no error (not written yet, rotated),
        OSError when it cannot be read."""
        limit = limit or LOG_READ_MAX
        if not self.path:
            return 0
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            if self.offset is None:
                self.offset = 0  # a log that appears later is read from its start
            return 0
        with handle:
            status = os.fstat(handle.fileno())
            if self.offset is None:
                self.inode, self.offset = status.st_ino, status.st_size
                handle.seek(max(0, status.st_size - LOG_MARK))
                self.mark = handle.read(LOG_MARK)
                self.skip = self.mark[-1:] not in (b"", b"\n")
                return 0
            if status.st_ino != self.inode or status.st_size < self.offset or not self._marked(handle):
                # Rotated or truncated (also when written past the old end again since): a new log.
                self.inode, self.offset, self.mark, self.skip = status.st_ino, 0, b"", False
            if status.st_size - self.offset > limit:
                self.offset, self.mark, self.skip = status.st_size - limit, b"", True
            handle.seek(self.offset)
            data = handle.read(limit)
        start = end = 0
        if self.skip:
            start = end = data.find(b"\n") + 1
            if not start:
                end = len(data)  # all of it the rest of that line
            else:
                self.skip = False
        if not self.skip:
            end = max(end, data.rfind(b"\n") + 1)  # an unfinished last line is read again when it is finished
            if end == 0 and len(data) >= limit:  # one line longer than limit: passed over
                end, self.skip = len(data), True
        self.offset += end
        self.mark = (self.mark + data[:end])[-LOG_MARK:]
        learnt = 0
        for line in data[start:end].decode("utf-8", "replace").split("\n"):
            learnt += self.feed(line)
        return learnt

    def _marked(self, handle):
        """Whether the bytes before offset are still those read last."""
        if not self.mark:
            return True
        handle.seek(self.offset - len(self.mark))
        return handle.read(len(self.mark)) == self.mark


def _seconds_text(value):
    """3.2, 120, 0.045: seconds for a log line."""
    return ("%.1f" % value if value >= 1 else "%.3f" % value).rstrip("0").rstrip(".") or "0"


def scale_decision(spec, sizes, current, average=None, measured=0, since_change=None):
    """(wanted, to, reason) for one scaled worker (spec: its normalized scaling entry), a pure function.

    wanted: the processes its backlog asks for, ceil(backlog x average job runtime / clear_seconds), 0 for
    no backlog, within [min, max]; a job takes clear_seconds while no runtime is known (measured 0), so the
    backlog is the number wanted. None when one of its queues is missing from sizes (the probe's answer).
    to: the count to move to from current, at most step away from it; current itself while the last change
    (since_change seconds ago, None for none) is less than cooldown ago. reason: all of it in words."""
    bounds = "(min %d, max %d, step %d)" % (spec["min"], spec["max"], spec["step"])
    missing = [q for q in spec["queues"] if isinstance(sizes.get(q), bool) or not isinstance(sizes.get(q), int)]
    if missing:
        return None, current, "the size of queue %s is not known %s" % (", ".join(missing), bounds)
    backlog = sum(sizes[q] for q in spec["queues"])
    reason = "backlog %d (%s)" % (backlog, ", ".join("%s %d" % (q, sizes[q]) for q in spec["queues"]))
    clear = spec["clear_seconds"]
    if average is None or not measured:
        per_job = clear
        reason += ", no job measured yet (each taken as %s s)" % _seconds_text(per_job)
    else:
        per_job = average
        reason += ", average job %s s over %d job%s" % (_seconds_text(average), measured, "" if measured == 1 else "s")
    if backlog <= 0:
        asked = 0
        reason += ", nothing pending wants 0"
    else:
        # The epsilon keeps a float product of 2.0000000001 from asking for 3.
        asked = int(math.ceil(backlog * per_job / float(clear) - 1e-9))
        reason += ", %d x %s s / %s s wants %d" % (backlog, _seconds_text(per_job), _seconds_text(clear), asked)
    wanted = max(spec["min"], min(spec["max"], asked))
    if wanted != asked:
        reason += ", so %d" % wanted
    reason += " " + bounds
    if since_change is not None and since_change < spec["cooldown"]:
        return wanted, current, "%s; cooldown: the last change was %d s ago (cooldown %s s)" % (
            reason, since_change, _seconds_text(spec["cooldown"]))
    return wanted, current + max(-spec["step"], min(spec["step"], wanted - current)), reason


def _process_number(info):
    digits = re.search(r"(\d+)$", info.get("name", ""))
    return (int(digits.group(1)) if digits else 1 << 30, info.get("name", ""))


class _Scaled:
    """What the listener keeps of one scaled worker between its decisions."""

    def __init__(self, name, spec):
        self.name, self.spec = name, spec
        self.runtimes = JobRuntimes(spec["log"])
        self.sizes = None           # the probe's last {queue: jobs} of the worker's app
        self.fresh = False          # sizes not decided on yet
        self.read_at = None
        self.read_error = None      # the last error reading the log, logged once
        self.trouble = None         # the last reason nothing could be decided, logged once
        self.current = self.wanted = None
        self.changed_at = None      # when a decision last changed something
        self.last_decision = None
        self.stay = None            # what the last logged decision to stay was about
        self.fatal_at = {}          # spare process -> when the listener saw it go FATAL
        self.written = None         # (current, wanted, backlog) as the state file last got them

    def backlog(self):
        sizes = self.sizes or {}
        counts = [sizes.get(q) for q in self.spec["queues"]]
        if not counts or any(isinstance(c, bool) or not isinstance(c, int) for c in counts):
            return None
        return sum(counts)


class Listener:
    """Turns event headers and payloads into alerts; the protocol is main()'s."""

    def __init__(self, config, clock=time.time, rpc=None, send=None, state=None, probe=probe_queues,
                 own_group=None, metrics=None):
        self.clock = clock
        self.rpc = rpc                  # None: supervisord's API from the environment, per call
        self.send = send or (lambda alert: log("alert (no sender): %s" % alert["text"]))
        self.probe = probe
        self.own_group = own_group
        self.lock = threading.RLock()   # the backlog thread alerts too
        self.state = state or State(config["state_file"], clock())
        self.metrics = metrics or Metrics(None)
        self.supervisor_up = None
        self.procs = {}
        self.backlog_at = None
        self.backlog_thread = None
        self.scaled = {}                # base program -> _Scaled
        self.config = self.limiter = None
        self.configure(config)

    def configure(self, config):
        with self.lock:
            self.config = config
            limit = config["rate_limit"]
            if self.limiter is None:
                self.limiter = RateLimiter(limit["alerts"], limit["seconds"])
            self.limiter.alerts, self.limiter.seconds = limit["alerts"], limit["seconds"]
            self.state.path = config["state_file"]
            self.metrics.directory = config.get("metrics_dir")
            for process in [p for p, proc in self.procs.items() if proc.group not in config["programs"]]:
                del self.procs[process]
            self._save_retrying()
            self._configure_scaling(config.get("scaling") or {})

    def _configure_scaling(self, scaling):
        old, self.scaled = self.scaled, {}
        for name, spec in sorted(scaling.items()):
            scaled = old.get(name)
            if scaled is None or scaled.spec["log"] != spec["log"]:
                scaled = _Scaled(name, spec)
                self._read_runtimes(scaled, self.clock())  # the first look: the log's end
            elif (scaled.spec["app"], scaled.spec["queues"]) != (spec["app"], spec["queues"]):
                scaled.sizes, scaled.fresh = None, False
            scaled.spec = spec
            self.scaled[name] = scaled
            self.metrics.scaling(name, app=spec["app"], spare=spec["spare"], min=spec["min"], max=spec["max"])
        self.metrics.scaling(None, keep=list(self.scaled))
        self._save_scaling()

    def handle(self, headers, payload):
        """One event: PROCESS_STATE_* of a watched program changes what is known; any event is a tick."""
        with self.lock:
            now = self.clock()
            self.state.update(last_event_at=utc_iso(now))
            name = headers.get("eventname", "")
            if name.startswith("PROCESS_STATE_"):
                self._state_change(name[len("PROCESS_STATE_"):], payload, now)
            self.tick(now)

    def tick(self, now):
        """What is due: BACKOFF alerts, start attempts, the backlog probe, the state file."""
        with self.lock:
            for proc in list(self.procs.values()):
                if proc.backoff_since is not None and not proc.backoff_alerted and \
                        now - proc.backoff_since >= self.config["backoff_alert_after"]:
                    proc.backoff_alerted = proc.problem = True
                    self._alert(proc, "BACKOFF", "STARTING", "BACKOFF", now,
                                "has been failing to start (BACKOFF) for %d s" % (now - proc.backoff_since))
                if proc.retrying and proc.next_at is not None and now >= proc.next_at and proc.state == "FATAL":
                    self._start_again(proc, now)
            for scaled in self.scaled.values():
                self._scale(scaled, now)
            backlog = self.config["backlog"]
            if backlog and backlog["apps"] and (self.backlog_at is None or now >= self.backlog_at - TICK_SLACK) and \
                    not (self.backlog_thread and self.backlog_thread.is_alive()):
                self.backlog_at = now + backlog["interval"]
                self.backlog_thread = threading.Thread(target=self._check_backlog, args=(dict(backlog["apps"]),),
                                                       name="backlog", daemon=True)
                self.backlog_thread.start()
            if self.state.written_at is None or now - self.state.written_at >= STATE_EVERY:
                self.state.write(now)
            if self.metrics.directory and (self.metrics.written_at is None or
                                           now - self.metrics.written_at >= METRICS_EVERY):
                self._write_metrics(now)

    def _write_metrics(self, now):
        try:
            rpc = self.rpc if self.rpc is not None else supervisor_rpc(self.config["supervisor_config"])
            processes = rpc.getAllProcessInfo()
        except Exception as exc:
            processes = None
            if self.supervisor_up is not False:
                log("metrics: supervisord did not answer (%s); written without its processes" % exc)
        self.supervisor_up = processes is not None
        self.metrics.write(processes, self.config["programs"], now)

    def _state_change(self, to_state, payload, now):
        group = payload.get("groupname") or payload.get("processname", "")
        if group not in self.config["programs"] or group == self.own_group:
            return
        process = "%s:%s" % (group, payload.get("processname", group))
        proc = self.procs.setdefault(process, _Process(group, process))
        from_state = payload.get("from_state", "")
        pid = payload.get("pid", "")
        proc.pid = int(pid) if pid.isdigit() else 0
        proc.state = to_state
        log("%s %s -> %s%s" % (process, from_state, to_state, " (pid %s)" % pid if pid.isdigit() else ""))
        self.metrics.state_change(self.config["programs"][group].get("app", ""), group, process, from_state, to_state,
                                  now)
        # A crash loop goes BACKOFF, STARTING, BACKOFF, ...: it lasts from its first BACKOFF
        # until any other state, so STARTING does not reset it.
        if to_state == "BACKOFF" and proc.backoff_since is None:
            proc.backoff_since = now
        elif to_state not in ("BACKOFF", "STARTING"):
            proc.backoff_since, proc.backoff_alerted = None, False
        if to_state == "FATAL":
            for scaled in self.scaled.values():
                if scaled.spec["spare"] == group:
                    scaled.fatal_at[process] = now
            self._fatal(proc, from_state, now)
        elif to_state == "EXITED" and payload.get("expected") == "0":
            proc.problem = True
            self._alert(proc, "EXITED", from_state, to_state, now, "EXITED unexpectedly (pid %s)" % pid)
        elif to_state == "RUNNING":
            if proc.problem or proc.retrying or proc.gave_up:
                self._alert(proc, "RUNNING", from_state, to_state, now, "is RUNNING again (pid %s)" % pid)
            proc.problem = proc.retrying = proc.gave_up = False
            proc.attempt, proc.next_at = 0, None
            self._save_retrying()
        elif to_state in ("STOPPING", "STOPPED") and proc.retrying:
            proc.retrying, proc.next_at = False, None  # stopped by hand: that person decides now
            self._save_retrying()

    def _fatal(self, proc, from_state, now):
        delays = self.config["fatal_retry"]["delays"]
        if proc.retrying and proc.next_at is None:
            self._attempt_failed(proc, from_state, now)
            return
        if proc.retrying:
            return  # FATAL again before our next attempt (a start by hand): the schedule stands
        proc.problem = True
        self._alert(proc, "FATAL", from_state, "FATAL", now, "is FATAL (was %s)" % from_state)
        if delays and not proc.gave_up:
            proc.retrying, proc.attempt, proc.next_at = True, 0, now + delays[0]
            self._save_retrying()

    def _attempt_failed(self, proc, from_state, now):
        delays = self.config["fatal_retry"]["delays"]
        if proc.attempt < len(delays):
            proc.next_at = now + delays[proc.attempt]
        else:
            proc.retrying, proc.gave_up, proc.next_at = False, True, None
            self._alert(proc, "GAVE_UP", from_state, "FATAL", now,
                        "is still FATAL after %d start attempts: gave up, start it by hand once fixed" % proc.attempt)
        self._save_retrying()

    def _start_again(self, proc, now):
        total = len(self.config["fatal_retry"]["delays"])
        proc.attempt += 1
        proc.next_at = None
        attempt = "%d/%d" % (proc.attempt, total)
        try:
            rpc = self.rpc if self.rpc is not None else supervisor_rpc(self.config["supervisor_config"])
            rpc.startProcess(proc.name, False)
            outcome = "started again (attempt %s)" % attempt
        except xmlrpc.client.Fault as exc:
            outcome = "could not be started again (attempt %s): %s" % (attempt, exc.faultString)
            if exc.faultCode not in (ALREADY_STARTED, SPAWN_ERROR):
                proc.next_at = now  # no state event will follow: this attempt failed now
        except Exception as exc:
            outcome = "could not be started again (attempt %s): %s" % (attempt, exc)
            proc.next_at = now
        log("%s %s" % (proc.name, outcome))
        self._alert(proc, "RETRY", "FATAL", "STARTING", now, outcome, attempt=attempt)
        if proc.next_at is not None:
            self._attempt_failed(proc, "FATAL", now)
        self._save_retrying()

    def _check_backlog(self, apps):
        for name, app in sorted(apps.items()):
            try:
                found = self.probe(app)
                sizes, ages = found if isinstance(found, tuple) else (found, {})
                log("backlog of app %s: %s" % (name, json.dumps(sizes, sort_keys=True)))
                self.metrics.backlog(name, sizes, ages)
                with self.lock:
                    for scaled in self.scaled.values():
                        if scaled.spec["app"] == name:  # decided on now, not at the next event (up to 5 s on)
                            scaled.sizes, scaled.fresh = dict(sizes), True
                            self._scale(scaled, self.clock())
                for queue_name, threshold in sorted(app["queues"].items()):
                    size = sizes.get(queue_name)
                    if isinstance(size, int) and threshold is not None and size > threshold:
                        with self.lock:
                            self._emit("%s:%s" % (name, queue_name), self.clock(), {
                                "app": name, "program": queue_name, "process": "%s:%s" % (name, queue_name),
                                "event": "BACKLOG", "from_state": None, "to_state": None, "pid": 0, "attempt": None,
                                "log_tail": [], "text": "%s %s queue %s of app %s has %d pending jobs (over %s)" % (
                                    ICONS["BACKLOG"], self.config["host"], queue_name, name, size, threshold)})
            except Exception as exc:
                log("backlog of app %s: %s" % (name, exc))

    # --- scaling: spare processes started and stopped with the backlog ------------------

    def _read_runtimes(self, scaled, now):
        scaled.read_at = now
        try:
            learnt = scaled.runtimes.read()
            scaled.read_error = None
        except Exception as exc:
            learnt = 0
            if scaled.read_error != str(exc):
                log("scale %s: cannot read its log %s (no job runtimes from it): %s" % (
                    scaled.name, scaled.spec["log"], exc))
            scaled.read_error = str(exc)
        if learnt:
            self.metrics.scaling(scaled.name, average=round(scaled.runtimes.average(), 3))
            self._save_scaling()

    def _scale(self, scaled, now):
        """Reads the worker's log when due; after a new probe result, decides and starts or stops spares."""
        if scaled.fresh or scaled.read_at is None or now - scaled.read_at >= LOG_READ_EVERY:
            self._read_runtimes(scaled, now)
        if not scaled.fresh:
            return
        scaled.fresh = False
        try:
            self._decide(scaled, now)
        except Exception as exc:
            log("scale %s: %s: %s" % (scaled.name, type(exc).__name__, exc))
        self._save_scaling()
        seen = (scaled.current, scaled.wanted, scaled.backlog())
        if seen != scaled.written:
            # What a diagnosis shows is what the file says: written when it changes, not a minute later.
            scaled.written = seen
            self.state.write(now)

    def _trouble(self, scaled, why):
        """Nothing can be decided: said once, until it changes or a decision is made."""
        if scaled.trouble != why:
            log("scale %s: %s" % (scaled.name, why))
        scaled.trouble = why

    def _decide(self, scaled, now):
        spec, name = scaled.spec, scaled.name
        try:
            rpc = self.rpc if self.rpc is not None else supervisor_rpc(self.config["supervisor_config"])
            processes = rpc.getAllProcessInfo()
        except Exception as exc:
            self._trouble(scaled, "supervisord did not answer (%s): nothing started or stopped" % exc)
            return
        base = [i for i in processes if i.get("group") == name]
        spares = sorted((i for i in processes if i.get("group") == spec["spare"]), key=_process_number)
        if not base or all(i.get("statename") in ("STOPPED", "STOPPING") for i in base):
            # Stopped by hand or by a deploy (or not there yet): spares started now would fight that.
            self._trouble(scaled, "program %s is %s: no spare started or stopped until it runs" % (
                name, "stopped" if base else "not in supervisord"))
            return
        current = sum(1 for i in base + spares if i.get("statename") in UP_STATES)
        average = scaled.runtimes.average()
        since = None if scaled.changed_at is None else now - scaled.changed_at
        wanted, to, reason = scale_decision(spec, scaled.sizes or {}, current, average, len(scaled.runtimes.runtimes),
                                            since)
        scaled.current, scaled.wanted, scaled.trouble = current, wanted, None
        self.metrics.scaling(name, wanted=wanted, average=None if average is None else round(average, 3))
        if to == current:
            stay = (current, wanted, since is not None and since < spec["cooldown"])
            if scaled.stay != stay:
                log("scale %s stays at %d: %s" % (name, current, reason))
            scaled.stay = stay
            return
        done, notes = self._move_spares(rpc, scaled, spares, to - current, now)
        reached = current + (len(done) if to > current else -len(done))
        if done:
            log("scale %s %d -> %d: %s; %s" % (name, current, reached, reason, "; ".join(notes)))
        else:  # no cooldown: the next probe's decision tries again
            log("scale %s stays at %d, not %d: %s; %s" % (name, current, to, reason, "; ".join(notes)))
        scaled.stay = None
        if done:
            scaled.current, scaled.changed_at = reached, now
            scaled.last_decision = {"at": utc_iso(now), "from": current, "to": reached, "reason": reason}
            self.metrics.decision(spec["app"], name, "up" if to > current else "down")
            self._save_scaling()
            self.state.write(now)  # a change is what a diagnosis looks for: not a minute later

    def _move_spares(self, rpc, scaled, spares, change, now):
        """Starts the lowest-numbered stopped spares (change > 0) or stops the highest-numbered running ones,
        never waiting for them; (the processes done, notes for the log)."""
        notes, chosen = [], []
        if change > 0:
            for info in spares:
                if len(chosen) == change or info.get("statename") not in DOWN_STATES:
                    continue
                process = "%s:%s" % (scaled.spec["spare"], info.get("name", ""))
                failed_ago = self._fatal_age(scaled, process, info, now)
                if failed_ago is not None and failed_ago < scaled.spec["cooldown"]:
                    notes.append("skipped %s (FATAL %d s ago)" % (process, failed_ago))
                    continue
                chosen.append(process)
            method, verb, benign = rpc.startProcess, ("start", "started"), ALREADY_STARTED
        else:
            running = [i for i in spares if i.get("statename") in UP_STATES]
            chosen = ["%s:%s" % (scaled.spec["spare"], i.get("name", "")) for i in reversed(running)][:-change]
            method, verb, benign = rpc.stopProcess, ("stop", "stopped"), NOT_RUNNING
        done = []
        for process in chosen:
            try:
                method(process, False)  # a stop lets the job finish (stopwaitsecs): never waited for here
                done.append(process)
                notes.append("%s %s" % (verb[1], process))
            except xmlrpc.client.Fault as exc:
                if exc.faultCode == benign:  # someone else did it meanwhile: as good
                    done.append(process)
                notes.append("could not %s %s: %s" % (verb[0], process, exc.faultString))
            except Exception as exc:
                notes.append("could not %s %s: %s" % (verb[0], process, exc))
        if not chosen:
            notes.append("no spare of %s to %s" % (scaled.spec["spare"], verb[0]))
        return done, notes

    def _fatal_age(self, scaled, process, info, now):
        """Seconds since the spare went FATAL (seen by the listener, else supervisord's own times), None when
        it is not FATAL or the time is not known."""
        if info.get("statename") != "FATAL":
            return None
        if process in scaled.fatal_at:
            return now - scaled.fatal_at[process]
        if info.get("stop") and info.get("now"):
            return info["now"] - info["stop"]
        return None

    def _save_scaling(self):
        self.state.update(scaling=dict((name, {
            "min": s.spec["min"], "max": s.spec["max"], "current": s.current, "wanted": s.wanted,
            "backlog": s.backlog(),
            "avg_job_seconds": None if s.runtimes.average() is None else round(s.runtimes.average(), 3),
            "jobs_measured": len(s.runtimes.runtimes), "last_decision": s.last_decision})
            for name, s in self.scaled.items()))

    def _alert(self, proc, event, from_state, to_state, now, what, attempt=None):
        program = self.config["programs"].get(proc.group, {})
        text = "%s %s %s %s" % (ICONS[event], self.config["host"], proc.name, what)
        if program.get("app"):
            text += " - app %s" % program["app"]
        self._emit(proc.group, now, {
            "app": program.get("app", ""), "program": proc.group, "process": proc.name, "event": event,
            "from_state": from_state, "to_state": to_state, "pid": proc.pid, "attempt": attempt,
            "log_tail": None, "log": program.get("log"), "text": text})

    def _emit(self, key, now, fields):
        allowed, held = self.limiter.take(key, now)
        if not allowed:
            self.state.update(suppressed=1)
            self.metrics.alert(fields["app"], fields["program"], sent=False)
            log("alert %s %s held back by the rate limit" % (fields["event"], fields["process"]))
            return
        log_path = fields.pop("log", None)
        alert = dict(fields, host=self.config["host"], time=utc_iso(now), suppressed=held)
        if alert["log_tail"] is None:  # read only for alerts that go out
            alert["log_tail"] = tail(log_path, self.config["log_lines"])
        if held:
            alert["text"] += "; %d alert%s suppressed" % (held, "" if held == 1 else "s")
        if self.send(alert) is False:
            self.limiter.hold(key, held + 1)  # reported by the next alert of this key instead
            self.state.update(suppressed=1)
            self.metrics.alert(fields["app"], fields["program"], sent=False)
            log("alert %s %s dropped: the send queue is full" % (alert["event"], alert["process"]))

    def _save_retrying(self):
        self.state.update(retrying=dict(
            (p.name, {"attempt": p.attempt, "next_at": utc_iso(p.next_at) if p.next_at is not None else None})
            for p in self.procs.values() if p.retrying))


# --- main -----------------------------------------------------------------------------

def main(argv=None, stdin=None, stdout=None):
    parser = argparse.ArgumentParser(description="supervisor event listener: alerts and bounded restarts "
                                                 "for the queue workers")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="JSON config (default %(default)s)")
    # Only there to change the command line, so that supervisor restarts the listener
    # when the deployed script or config changes.
    parser.add_argument("--revision", default="", help="ignored")
    args = parser.parse_args(argv)
    if stdin is None:
        # len: counts characters; newline="\n" keeps a \r in a payload from being translated away.
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    stdout = sys.stdout if stdout is None else stdout

    config_file = ConfigFile(args.config)
    try:
        config = config_file.poll()
    except ConfigError as exc:
        # Exiting would only make supervisor restart the listener in a loop; it waits
        # for a good config instead, watching nothing.
        log("%s; watching nothing until it is fixed" % exc)
        config = normalize({"programs": {}})
    state = State(config["state_file"], time.time())
    metrics = Metrics(config["metrics_dir"])
    sender = Sender(state, config["channels"], metrics=metrics).start()
    listener = Listener(config, send=sender.put, state=state, own_group=os.environ.get("SUPERVISOR_GROUP_NAME"),
                        metrics=metrics)
    log("started (pid %s): watching %s; channels: %s; metrics: %s; scaling: %s" % (
        os.getpid(), ", ".join(sorted(config["programs"])) or "nothing",
        ", ".join(name for name, send in CHANNELS if config["channels"][name]) or "none",
        os.path.join(config["metrics_dir"], METRICS_FILE) if config["metrics_dir"] else "off",
        ", ".join("%s %d-%d" % (name, spec["min"], spec["max"]) for name, spec in sorted(config["scaling"].items()))
        or "off"))
    try:
        while True:
            stdout.write("READY\n")
            stdout.flush()
            line = stdin.readline()
            if not line:
                break
            try:
                headers = parse_header(line)
            except ValueError as exc:
                log(exc)
                headers = None
            payload = stdin.read(int(headers["len"])) if headers else ""
            if headers and len(payload) < int(headers["len"]):
                break
            if headers:
                try:
                    new = config_file.poll()
                    if new is not None:
                        listener.configure(new)
                        sender.channels = new["channels"]
                        log("config %s read again: watching %s" % (args.config, ", ".join(sorted(new["programs"]))))
                except ConfigError as exc:
                    log("%s; keeping the config read before" % exc)
                try:
                    listener.handle(headers, parse_payload(payload))
                except Exception as exc:
                    log("error handling %s: %s: %s" % (headers.get("eventname"), type(exc).__name__, exc))
            stdout.write("RESULT 2\nOK")
            stdout.flush()
    except BrokenPipeError:
        pass  # supervisord went away
    log("supervisord closed the event stream: exiting")
    sender.close(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
