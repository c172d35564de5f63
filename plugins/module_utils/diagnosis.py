# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The diagnose playbook's judgement, pure: observations of a host in, findings out.

The module (queue_workers_diagnose) only collects; everything that decides what is wrong
and what to do about it lives here, so that it is unit-tested on plain data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LABELS = {OK: " OK ", WARN: "WARN", FAIL: "FAIL", SKIP: "SKIP"}

SECTION_RE = re.compile(r"^\s*\[program:([^\]]+)\]\s*$")
AVAIL_RE = re.compile(r"^(\S+)\s+(in use|avail)\s")
STATUS_RE = re.compile(r"^(\S+)\s+([A-Z]+)\s*(.*)$")
DOTENV_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")


def program_sections(text):
    """Names of the [program:x] sections of a supervisor config file's text."""
    return [m.group(1).strip() for m in (SECTION_RE.match(line) for line in (text or "").splitlines()) if m]


def _group(namespec):
    return namespec.split(":", 1)[0]


def parse_avail(text):
    """{group: {'in use': n, 'avail': n}} from 'supervisorctl avail' lines ('g:g_00  in use  auto  999:999')."""
    groups = {}
    for line in (text or "").splitlines():
        match = AVAIL_RE.match(line)
        if match:
            counts = groups.setdefault(_group(match.group(1)), {"in use": 0, "avail": 0})
            counts[match.group(2)] += 1
    return groups


def parse_status(text):
    """{group: [(process, STATE, description)]} from 'supervisorctl status' lines."""
    groups = {}
    for line in (text or "").splitlines():
        match = STATUS_RE.match(line.strip())
        if match and match.group(2) in ("RUNNING", "STARTING", "BACKOFF", "STOPPING", "STOPPED",
                                        "EXITED", "FATAL", "UNKNOWN"):
            groups.setdefault(_group(match.group(1)), []).append(
                (match.group(1), match.group(2), match.group(3).strip()))
    return groups


def parse_dotenv(text):
    """KEY=VALUE pairs of a Laravel .env (comments, 'export', single/double quotes)."""
    values = {}
    for line in (text or "").splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = DOTENV_RE.match(line)
        if not match:
            continue
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, 1)[0].strip()
        values[match.group(1)] = value
    return values


def loaded_by(path, globs, config_file=None):
    """What makes supervisord load this file (its config file, or an include glob), or None."""
    if config_file and path == config_file:
        return config_file
    for pattern in globs or []:
        if fnmatch.fnmatchcase(path, pattern):
            return pattern
    return None


def _finding(check, status, summary, fix=None):
    return {"check": check, "status": status, "summary": summary, "fix": fix}


def _supervisord(obs):
    sup = obs.get("supervisor") or {}
    found = []
    service = sup.get("service_name") or "supervisor"
    if sup.get("running"):
        found.append(_finding("supervisord", OK, "running, pid %s, started with %s (%s)" % (
            sup.get("pid"), sup.get("config_file"), sup.get("config_source") or "?")))
    elif sup.get("supervisord_path"):
        found.append(_finding("supervisord", FAIL, "supervisord is installed (%s) but not running, so no worker runs"
                              % sup["supervisord_path"],
                              "start it and enable it at boot: systemctl enable --now %s (or run the site playbook); "
                              "if it fails to start, read the supervisord log below" % service))
    else:
        found.append(_finding("supervisord", FAIL, "supervisor is not installed",
                              "run the site playbook (elms.queue_workers.site), which installs it"))
    for problem in sup.get("problems") or []:
        found.append(_finding("config", FAIL, problem, "see the problem's own advice; override with "
                              "supervisor_config_file / supervisor_include_dir / supervisor_include_extension"))
    if sup.get("config_file") and sup.get("include_dir"):
        found.append(_finding("config", OK, "%s; [include] files = %s; program files go in %s/*%s" % (
            sup["config_file"], " ".join(sup.get("include_globs") or []), sup["include_dir"],
            sup.get("include_extension") or "")))
    return found


def _program_files(obs):
    sup = obs.get("supervisor") or {}
    globs = sup.get("include_globs") or []
    found = []
    for prog in obs.get("programs") or []:
        name = prog["name"]
        check = "file %s" % name
        if prog.get("file_exists"):
            owner = "" if prog.get("file_owned") else " (not written by this collection)"
            found.append(_finding(check, OK, "%s is where supervisord reads it%s" % (prog["file"], owner)))
            continue
        elsewhere = prog.get("defined_in") or []
        loaded = [path for path in elsewhere if loaded_by(path, globs, sup.get("config_file"))]
        stray = [path for path in elsewhere if path not in loaded]
        if loaded:
            found.append(_finding(check, WARN, "[program:%s] is defined in %s, not in %s" % (
                name, ", ".join(loaded), prog["file"]),
                "remove the hand-made copy and let the site playbook write %s (queue_workers_take_over: true "
                "replaces it)" % prog["file"]))
        elif stray:
            found.append(_finding(check, FAIL, "[program:%s] is in %s, which supervisord does not load "
                                  "(it loads %s)" % (name, ", ".join(stray), " ".join(globs) or "no [include] at all"),
                                  "move it to %s (directory AND extension matter), or run the site playbook, "
                                  "which writes it there" % prog["file"]))
        else:
            found.append(_finding(check, FAIL, "no program file for %s: %s does not exist" % (name, prog["file"]),
                                  "run the site playbook (elms.queue_workers.site)"))
    return found


def _supervisorctl(obs):
    sup = obs.get("supervisor") or {}
    programs = obs.get("programs") or []
    if not sup.get("running"):
        return [_finding("supervisorctl", SKIP, "avail/status not asked: supervisord is not running")]
    ctl = obs.get("supervisorctl") or {}
    if ctl.get("error"):
        return [_finding("supervisorctl", FAIL, "supervisorctl cannot talk to supervisord: %s" % ctl["error"],
                         "check [supervisorctl] serverurl and [unix_http_server] file in %s; "
                         "run it as root" % sup.get("config_file"))]
    ctl_cmd = "%s -c %s" % (sup.get("supervisorctl_path") or "supervisorctl", sup.get("config_file"))
    avail = parse_avail(ctl.get("avail"))
    status = parse_status(ctl.get("status"))
    found = []
    for prog in programs:
        name = prog["name"]
        counts = avail.get(name)
        loaded = prog.get("file_exists") or any(
            loaded_by(path, sup.get("include_globs"), sup.get("config_file")) for path in prog.get("defined_in") or [])
        if counts is None:
            # A file supervisord does not load at all is the file finding's business.
            if loaded:
                found.append(_finding("loaded %s" % name, FAIL, "supervisord has not read %s's program file yet"
                                      % name, "%s reread && %s update (the site playbook's handler does this)"
                                      % (ctl_cmd, ctl_cmd)))
            continue
        if counts["avail"]:
            found.append(_finding("loaded %s" % name, FAIL, "%s is read but not added (%d process(es) 'avail', "
                                  "not 'in use')" % (name, counts["avail"]),
                                  "%s update %s" % (ctl_cmd, name)))
            continue
        procs = status.get(name, [])
        bad = [p for p in procs if p[1] != "RUNNING"]
        if not procs:
            found.append(_finding("running %s" % name, FAIL, "%s has no process in supervisorctl status" % name,
                                  "%s update %s" % (ctl_cmd, name)))
        elif bad:
            found.append(_finding("running %s" % name, FAIL, "%d of %d process(es) not RUNNING: %s" % (
                len(bad), len(procs), "; ".join("%s %s %s" % p for p in bad)),
                "read %s's log below: a FATAL/BACKOFF worker dies at start (wrong app dir or php, storage/ "
                "not writable, the app does not boot); after the fix: %s start '%s:*'"
                % (name, ctl_cmd, name)))
        else:
            found.append(_finding("running %s" % name, OK, "%d process(es) RUNNING" % len(procs)))
    return found


def _app(obs):
    app = obs.get("app") or {}
    found = []
    user = app.get("user")
    if not app.get("artisan_exists"):
        return [_finding("app", FAIL, "%s/artisan does not exist" % app.get("dir"),
                         "set queue_workers_app_dir to the Laravel app's root")]
    if not app.get("user_exists"):
        return [_finding("app", FAIL, "the worker user %s does not exist" % user,
                         "create it, or set queue_workers_user")]
    unwritable = app.get("unwritable") or []
    if unwritable:
        found.append(_finding("storage", FAIL, "%s cannot write %s" % (user, ", ".join(unwritable)),
                              "chown -R %s %s/storage %s/bootstrap/cache (workers log, cache and write the HLS "
                              "output there)" % (user, app["dir"], app["dir"])))
    elif app.get("writable_checked"):
        found.append(_finding("storage", OK, "%s can write storage/ and bootstrap/cache" % user))
    once = app.get("queue_work") or {}
    if once.get("skipped"):
        found.append(_finding("queue:work", SKIP, once["skipped"]))
    elif once:
        if once.get("rc") == 0:
            found.append(_finding("queue:work", OK, "%s runs 'artisan queue:work --once' (exit 0)" % user))
        else:
            found.append(_finding("queue:work", FAIL, "'artisan queue:work --once' as %s exits %s: %s" % (
                user, once.get("rc"), _last(once.get("output"))),
                "this is what every worker hits at start: fix the error (php extensions, .env, database, "
                "permissions), then supervisorctl start the workers"))
    return found


def _last(text, lines=3):
    kept = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _queue(obs):
    app = obs.get("app") or {}
    probe = obs.get("probe") or {}
    env = app.get("dotenv")
    found = []
    connection = probe.get("default")
    source = "the app's config"
    if not connection and env is not None:
        connection = env.get("QUEUE_CONNECTION")
        source = ".env"
    if probe.get("error"):
        found.append(_finding("queue", WARN, "the app could not be asked about its queue: %s" % _last(probe["error"], 2),
                              "the same error stops the workers; see queue:work above"))
    if env is None:
        found.append(_finding("queue", WARN, "%s/.env does not exist" % app.get("dir"),
                              "create it (cp .env.example .env; php artisan key:generate) with QUEUE_CONNECTION=database "
                              "or redis"))
    if connection == "sync":
        found.append(_finding("queue", FAIL, "QUEUE_CONNECTION is sync (%s): jobs run inside the web request and "
                              "the workers never get any" % source,
                              "set QUEUE_CONNECTION=database (php artisan queue:table && php artisan migrate) or redis "
                              "in .env, then php artisan config:cache if the config is cached"))
    elif connection:
        found.append(_finding("queue", OK, "the app queues on the '%s' connection (%s)" % (connection, source)))
    if env is not None and app.get("config_cached") and probe.get("default") and \
            env.get("QUEUE_CONNECTION", probe["default"]) != probe["default"]:
        found.append(_finding("queue", WARN, ".env says QUEUE_CONNECTION=%s but the cached config says %s" % (
            env.get("QUEUE_CONNECTION"), probe["default"]),
            "php artisan config:cache (or config:clear), then php artisan queue:restart"))
    sizes = probe.get("sizes") or {}
    if sizes:
        found.append(_finding("jobs", OK, "pending: %s" % ", ".join("%s %s" % (q, n) for q, n in sorted(sizes.items()))))
    if probe.get("failed"):
        found.append(_finding("jobs", WARN, "%s failed job(s)" % probe["failed"],
                              "php artisan queue:failed shows why; php artisan queue:retry all runs them again"))
    elif "failed" in probe:
        found.append(_finding("jobs", OK, "no failed jobs"))
    return found


def _ffmpeg(obs):
    ff = obs.get("ffmpeg") or {}
    if ff.get("skipped"):
        return [_finding("ffmpeg", SKIP, ff["skipped"])]
    if not ff.get("path"):
        return [_finding("ffmpeg", FAIL, "ffmpeg is not on PATH: video-encoding jobs fail",
                         "run the site playbook (its ffmpeg role installs and verifies it)")]
    if ff.get("rc") == 0:
        return [_finding("ffmpeg", OK, "%s encodes HLS (%s)" % (ff["path"], ff.get("encoders")))]
    return [_finding("ffmpeg", FAIL, "%s cannot encode HLS: %s" % (ff["path"], _last(ff.get("output"))),
                     "install an FFmpeg with the hls muxer, an H.264 and an AAC encoder (Debian: apt install ffmpeg)")]


def evaluate(obs):
    """Every finding, in the order of the guide's checklist."""
    return _supervisord(obs) + _program_files(obs) + _supervisorctl(obs) + _app(obs) + _queue(obs) + _ffmpeg(obs)


def summary(findings):
    fails = sum(1 for f in findings if f["status"] == FAIL)
    warns = sum(1 for f in findings if f["status"] == WARN)
    if not fails and not warns:
        return "healthy: nothing to do"
    return "%d problem(s), %d warning(s)" % (fails, warns)


def format_report(host, findings, logs):
    """The report text: findings first (what is wrong, what to do), then the log tails."""
    lines = ["eLMS queue workers: diagnosis of %s" % host, "Result: %s" % summary(findings), ""]
    for item in findings:
        lines.append("[%s] %-22s %s" % (LABELS[item["status"]], item["check"], item["summary"]))
        if item["fix"] and item["status"] in (FAIL, WARN):
            lines.append("       %-22s fix: %s" % ("", item["fix"]))
    for log in logs:
        lines.append("")
        lines.append("--- last lines of %s (%s)" % (log["path"], log["what"]))
        if log.get("missing"):
            lines.append("(no such file)")
        lines.extend(log.get("tail") or ([] if log.get("missing") else ["(empty)"]))
    return "\n".join(lines) + "\n"
