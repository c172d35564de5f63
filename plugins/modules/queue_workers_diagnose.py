#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: queue_workers_diagnose
short_description: Check a host's queue workers the way the eLMS guide's troubleshooting list does
version_added: "0.1.0"
description:
  - Read-only. Looks at what the guide's "still stuck?" list asks an admin to look at, in one call.
    Whether supervisord runs and with which config and C([include]); whether each worker's program
    file is in the include directory with the right extension (and where it is when it is not);
    the last lines of each worker's log and of supervisord's log.
  - Asks supervisord itself, through its XML-RPC API (the one C(supervisorctl) uses), for the state of
    each worker's processes and for which program files differ from what it runs (C(reloadConfig), what
    C(supervisorctl reread) shows; supervisord reads the files again and applies nothing). A program file
    written but not applied, a group read but not added, and a config supervisord cannot read are each named.
  - Compares the command line of each RUNNING worker (C(/proc/PID/cmdline)) with its program file's
    C(command=), names the workers that could not start (their C(spawnerr), and supervisord's log lines
    of the last minute), and looks for workers left running by a supervisord that died (orphans).
  - It also checks whether the worker user can run C(artisan queue:work --once) (on a queue name no job
    uses, so no real job is taken) and write C(storage/), whether FFmpeg encodes one second of HLS (in
    a temporary directory that is removed), the app's queue connection (C(sync) makes workers
    pointless), and the pending and failed job counts the app reports.
  - Returns every finding with what to do, and the whole report as text. Never fails because the
    host is broken; fails only on bad options.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  host:
    description: The name to put at the top of the report.
    type: str
    default: ""
  supervisor:
    description: The facts of M(elms.queue_workers.supervisor_facts) (C(ansible_facts.supervisor)).
    type: dict
    required: true
  programs:
    description: The worker definitions (C(queue_workers_programs)); only C(state=present) ones are checked.
    type: list
    elements: dict
    required: true
  owner:
    description:
      - The owner of these programs (C(OWNER/APP), see M(elms.queue_workers.supervisor_programs)); a program file marked
        for it, or for C(OWNER) alone by an earlier version, counts as written by the deploy.
    type: str
    default: elms.queue_workers/elms
  alerts_program:
    description: The alert listener's program name; the report says whether it is installed and runs, and when it last
      sent an alert (from O(alerts_state_file)). Empty skips that check.
    type: str
    default: queue-workers-alerts
  alerts_state_file:
    description: The alert listener's state file.
    type: path
    default: /var/lib/elms-queue-workers/alerts/state.json
  alerts_log:
    description: The alert listener's log, named in the report.
    type: path
    default: /var/log/elms-queue-workers/alerts.log
  log_dir:
    description: Where a worker without its own C(log) logs, relative to O(app_dir) or absolute.
    type: str
    default: storage/logs
  app_dir:
    description: The Laravel application's root.
    type: path
    required: true
  user:
    description: The default worker user.
    type: str
    required: true
  php:
    description: The php binary (C(queue_workers_php)); empty means the one on C(PATH).
    type: str
    default: ""
  connection:
    description: The queue connection the workers are given, empty for the app's default.
    type: str
    default: ""
  log_lines:
    description: How many lines of each log to include.
    type: int
    default: 15
  ffmpeg:
    description: The ffmpeg binary; empty means the one on C(PATH).
    type: str
    default: ""
  h264_encoders:
    description: H.264 encoders to try, in order of preference.
    type: list
    elements: str
    default: [libx264, libopenh264]
  aac_encoders:
    description: AAC encoders to try, in order of preference.
    type: list
    elements: str
    default: [aac, libfdk_aac]
  run_checks:
    description:
      - Also run the checks that start programs as the worker user (C(queue:work --once), the app's
        queue probe) and the FFmpeg test encode. Off, only files and supervisor are looked at.
    type: bool
    default: true
extends_documentation_fragment:
  - elms.queue_workers.read_only
notes:
  - Run it as root (C(become)) so that it can read supervisor's files and start programs as the worker user
    (with C(runuser), or C(su) where C(runuser) is missing).
"""

EXAMPLES = r"""
- name: Detect supervisor
  elms.queue_workers.supervisor_facts:

- name: Diagnose the workers
  elms.queue_workers.queue_workers_diagnose:
    host: "{{ inventory_hostname }}"
    supervisor: "{{ ansible_facts.supervisor }}"
    programs: "{{ queue_workers_programs }}"
    app_dir: /var/www/html
    user: www-data
  register: diagnosis

- name: Show it
  ansible.builtin.debug:
    msg: "{{ diagnosis.report.splitlines() }}"
"""

RETURN = r"""
report:
  description: The report as text; findings with their fix first, then the log tails.
  returned: always
  type: str
findings:
  description: One entry per check, in the guide's order.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: What was checked.
      type: str
    status:
      description: C(ok), C(warn), C(fail) or C(skip).
      type: str
    summary:
      description: What was found.
      type: str
    fix:
      description: What to do, when something is wrong.
      type: str
problems:
  description: The number of findings with status C(fail).
  returned: always
  type: int
warnings_count:
  description: The number of findings with status C(warn).
  returned: always
  type: int
"""

import json
import os
import pwd
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elms.queue_workers.plugins.module_utils import daemon_kinds, diagnosis
from ansible_collections.elms.queue_workers.plugins.module_utils.app_command import C_ENV, as_user_prefix, run_as
from ansible_collections.elms.queue_workers.plugins.module_utils import program_state
from ansible_collections.elms.queue_workers.plugins.module_utils import orphans as orphan_procs
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.elms.queue_workers.plugins.module_utils import worker_programs as workers

PROBE_QUEUE = "elms-diagnose-probe"
# Boots the app the way a worker does and asks it what it queues on and how many jobs wait.
APP_PROBE = r"""
if (is_file('vendor/autoload.php')) { require 'vendor/autoload.php'; }
$app = require 'bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
$wanted = json_decode($argv[1], true);
$out = ['default' => $app['config']['queue.default'], 'sizes' => []];
foreach ($wanted as $pair) {
  try { $out['sizes'][$pair[1]] = $app['queue']->connection($pair[0] ?: null)->size($pair[1]); }
  catch (Throwable $e) { $out['sizes'][$pair[1]] = 'unknown (' . $e->getMessage() . ')'; }
}
try { $out['failed'] = count($app['queue.failer']->all()); } catch (Throwable $e) { }
echo json_encode($out);
"""


def read_text(path, limit=1 << 20):
    try:
        with open(path, "r", errors="replace") as handle:
            return handle.read(limit)
    except (IOError, OSError):
        return None


def tail(path, lines=None):
    """The last lines of a file's last 64 KiB (all of them when lines is None), or None without the file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    found = data.splitlines()
    return found if lines is None else found[-lines:]


def read_priority(module, pid):
    """The running process's niceness (/proc/PID/stat) and I/O class as ionice prints it ('best-effort: prio 7')."""
    found = {"nice": None, "io": None}
    try:
        with open("/proc/%s/stat" % pid) as handle:
            found["nice"] = int(handle.read().rpartition(")")[2].split()[16])
    except (IOError, OSError, ValueError, IndexError):
        return found
    ionice = module.get_bin_path("ionice")
    if ionice:
        rc, out, _err = module.run_command([ionice, "-p", str(pid)], environ_update=C_ENV)
        if rc == 0:
            found["io"] = out.strip()
    return found


def read_cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            return layout.split_cmdline(handle.read()) or None
    except (IOError, OSError):
        return None


def ask_supervisord(config_file):
    """supervisord's processes, and which program files differ from what it runs.

    reloadConfig is what supervisorctl reread sends: supervisord reads its files again and
    answers which groups were added, changed or removed on disk; it applies nothing.
    """
    try:
        client = rpc.connect(config_file)
        answer = {"processes": client.processes()}
    except layout.LayoutError as exc:
        return {"error": str(exc)}
    except rpc.RPCError as exc:
        return {"error": exc.message}
    try:
        added, changed, removed = client.reload_config()
        answer["reread"] = {"added": list(added), "changed": list(changed), "removed": list(removed)}
    except rpc.RPCError as exc:
        answer["reread_error"] = {"code": exc.code, "message": exc.message}
    return answer


def section_option(text, section, option):
    if not text:
        return None
    try:
        parser = layout.parse_config(text)
    except Exception:  # supervisord reports a broken file (reloadConfig); its log path is then unknown
        return None
    if parser.has_section(section) and parser.has_option(section, option):
        return parser.get(section, option, raw=True)
    return None


def candidate_files(sup):
    """Files that may hold a [program:x]: the config, every include glob's directory, the usual places."""
    dirs = set(["/etc/supervisor/conf.d", "/etc/supervisord.d", "/etc/supervisor.d"])
    for pattern in sup.get("include_globs") or []:
        dirs.add(os.path.dirname(pattern))
    if sup.get("include_dir"):
        dirs.add(sup["include_dir"])
    files = [sup["config_file"]] if sup.get("config_file") else []
    for folder in sorted(dirs):
        try:
            names = sorted(os.listdir(folder))[:500]
        except OSError:
            continue
        files.extend(os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n)))
    return files


def owned(text, owner):
    """Whether a program file was written for this owner (an app's OWNER/APP, or OWNER of an earlier version)."""
    found = program_state.owner_of(text)
    return found is not None and (found == owner or found == owner.split("/")[0])


def collect(module):
    params = module.params
    sup = params["supervisor"] or {}
    settings = {"app_dir": params["app_dir"], "user": params["user"], "php": params["php"],
                "connection": params["connection"], "log_dir": params["log_dir"]}
    lines = params["log_lines"]
    present = workers.select(params["programs"], "present")
    texts = dict((path, read_text(path)) for path in candidate_files(sup))
    obs = {"supervisor": sup, "programs": [], "app": {}, "probe": {}, "ffmpeg": {}}
    logs = []
    # command= may name %(ENV_X)s of supervisord's own environment.
    sup_env = orphan_procs.read_environ(sup["pid"]) if sup.get("running") and sup.get("pid") else None
    entries = []
    for worker in present:
        entries.append((worker["name"], worker, workers.desired_state(worker)))
        if isinstance(worker.get("numprocs"), dict):
            # A scaled worker's spare program, when this host has one (max: auto may leave no room for it).
            entries.append((workers.spare_name(worker["name"]), worker, workers.SCALED))
    for name, worker, wanted in entries:
        path = "%s/%s%s" % (sup.get("include_dir") or "?", name, sup.get("include_extension") or "")
        text = texts.get(path) if path in texts else read_text(path)
        if wanted == workers.SCALED and text is None:
            continue
        defined_in = [p for p, t in texts.items() if name in diagnosis.program_sections(t)]
        source_path = path if text is not None else (defined_in[0] if defined_in else None)
        source = text if text is not None else (texts.get(source_path) if source_path else None)
        commands, _error = diagnosis.file_commands(source, name, os.path.dirname(source_path or path),
                                                   sup_env if sup_env is not None else dict(os.environ), os.uname()[1])
        obs["programs"].append({
            "name": name, "file": path, "file_exists": text is not None,
            "file_owned": owned(text, params["owner"]),
            "defined_in": [p for p in defined_in if p != path],
            "state": wanted, "commands": commands,
            "nice": worker.get("nice"), "ionice_class": worker.get("ionice_class"),
            "ionice_level": worker.get("ionice_level"),
        })
        log = section_option(source, "program:%s" % name, "stdout_logfile")
        if not log or "%(" in log or log.upper() in ("AUTO", "NONE"):
            log = workers.log_path(worker, settings)
        if all(entry["path"] != log for entry in logs):  # a spare program writes its worker's log
            logs.append({"what": "worker %s" % name, "path": log, "tail": tail(log, lines)})

    names = set(p["name"] for p in obs["programs"])
    if sup.get("running") and sup.get("config_file"):
        obs["rpc"] = ask_supervisord(sup["config_file"])
        obs["cmdlines"] = {}
        obs["priorities"] = {}
        for info in obs["rpc"].get("processes") or []:
            if info.get("group") in names and info.get("statename") == "RUNNING" and info.get("pid"):
                obs["cmdlines"][info["pid"]] = read_cmdline(info["pid"])
                obs["priorities"][info["pid"]] = read_priority(module, info["pid"])
    # Also when supervisord is down: that is when a killed one's workers still run.
    obs["orphans"] = [dict((k, o.get(k)) for k in ("pid", "ppid", "group", "process", "cmdline"))
                      for o in orphan_procs.find_orphans(names)]
    main_log = section_option(texts.get(sup.get("config_file")), "supervisord", "logfile")
    if main_log:
        main_log = main_log.replace("%(here)s", os.path.dirname(sup["config_file"]))
        everything = tail(main_log)
        # supervisord logs in the host's local time.
        obs["log"] = {"lines": everything or [], "now": time.strftime("%Y-%m-%d %H:%M:%S")}
        logs.append({"what": "supervisord", "path": main_log,
                     "tail": everything[-lines:] if everything is not None else None})
    for log in logs:
        log["missing"] = log["tail"] is None

    obs["alerts"] = collect_alerts(params, sup, obs.get("rpc") or {})
    obs["app"] = collect_app(module, settings, present)
    obs["probe"] = obs["app"].pop("probe", {})
    obs["ffmpeg"] = collect_ffmpeg(module, obs["app"].get("prefix"))
    obs["app"].pop("prefix", None)
    return obs, logs


def collect_alerts(params, sup, api):
    """The alert listener: its program file, its processes' states, and its state file."""
    name = params["alerts_program"]
    if not name:
        return None
    path = "%s/%s%s" % (sup.get("include_dir") or "?", name, sup.get("include_extension") or "")
    found = {"program": name, "installed": os.path.isfile(path), "log": params["alerts_log"]}
    if not found["installed"]:
        return found
    if api.get("processes") is not None:
        found["states"] = sorted(set(p.get("statename") for p in api["processes"] if p.get("group") == name))
    text = read_text(params["alerts_state_file"])
    try:
        found["state"] = json.loads(text) if text else {}
    except ValueError:
        found["state"] = {}
    return found


def collect_app(module, settings, present):
    app_dir, user = settings["app_dir"].rstrip("/") or "/", settings["user"]
    app = {"dir": app_dir, "user": user, "artisan_exists": os.path.isfile(os.path.join(app_dir, "artisan"))}
    try:
        pwd.getpwnam(user)
        app["user_exists"] = True
    except KeyError:
        app["user_exists"] = False
    env_text = read_text(os.path.join(app_dir, ".env"))
    app["dotenv"] = diagnosis.parse_dotenv(env_text) if env_text is not None else None
    app["config_cached"] = os.path.exists(os.path.join(app_dir, "bootstrap/cache/config.php"))
    if not (app["artisan_exists"] and app["user_exists"]) or not module.params["run_checks"]:
        if not module.params["run_checks"]:
            app["queue_work"] = {"skipped": "run_checks is off"}
        return app
    prefix = as_user_prefix(module, user)
    app["prefix"] = prefix
    if prefix is None:
        app["queue_work"] = {"skipped": "not root, so nothing can be run as %s" % user}
        return app
    dirs = ["storage", "storage/logs", "storage/framework", "storage/app", "bootstrap/cache"]
    app["unwritable"] = [d + "/" for d in dirs
                         if run_as(module, prefix, ["test", "-w", os.path.join(app_dir, d)])[0] != 0]
    app["writable_checked"] = True
    php = settings["php"] or module.get_bin_path("php")
    if not php:
        app["queue_work"] = {"rc": 127, "output": "php is not on PATH: set queue_workers_php"}
        return app
    connection = settings["connection"]
    queue_workers = [w for w in present if daemon_kinds.kind_of(w) == "queue"]
    if not queue_workers:
        app["queue_work"] = {"skipped": "no queue worker among the programs"}
    argv = [php, "artisan", "queue:work"] + ([connection] if connection else [])
    argv += ["--once", "--queue=" + PROBE_QUEUE, "--sleep=0", "--tries=1", "--stop-when-empty"]
    if queue_workers:
        rc, out, err = run_as(module, prefix, argv, cwd=app_dir)
        app["queue_work"] = {"rc": rc, "output": out + err}
    # Each other kind's own probe (daemon_kinds: schedule:list, horizon:status), once per kind.
    app["kind_probes"] = []
    for kind in sorted(set(daemon_kinds.kind_of(w) for w in present) - set(["queue"])):
        probe = daemon_kinds.KINDS.get(kind, {}).get("probe")
        if probe:
            words = probe.split()
            rc, out, err = run_as(module, prefix, [php, "artisan"] + words, cwd=app_dir, timeout=60)
            app["kind_probes"].append({"kind": kind, "command": probe, "rc": rc, "output": out + err})
    wanted = []
    for worker in queue_workers:
        for queue in workers.queue_list(worker):
            wanted.append([worker.get("connection") or connection, queue])
    rc, out, err = run_as(module, prefix, [php, "-r", APP_PROBE, json.dumps(wanted)], cwd=app_dir)
    try:
        app["probe"] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        app["probe"] = {"error": (out + err).strip() or "php exited %d" % rc}
    return app


def collect_ffmpeg(module, prefix):
    params = module.params
    if not params["run_checks"]:
        return {"skipped": "run_checks is off"}
    path = params["ffmpeg"] or module.get_bin_path("ffmpeg")
    if not path:
        return {}
    rc, out, err = module.run_command([path, "-hide_banner", "-encoders"], environ_update=C_ENV)
    names = set(line.split()[1] for line in out.splitlines() if len(line.split()) > 1)
    h264 = [e for e in params["h264_encoders"] if e in names]
    aac = [e for e in params["aac_encoders"] if e in names]
    if rc != 0 or not h264 or not aac:
        return {"path": path, "rc": rc or 1, "output": (err or "") + " no H.264 (%s) or no AAC (%s) encoder" % (
            ", ".join(params["h264_encoders"]), ", ".join(params["aac_encoders"]))}
    work = tempfile.mkdtemp(prefix="elms-diagnose-")
    try:
        if prefix:
            user = pwd.getpwnam(params["user"])
            os.chown(work, user.pw_uid, user.pw_gid)
        argv = [path, "-hide_banner", "-loglevel", "error", "-nostdin",
                "-f", "lavfi", "-i", "testsrc=duration=1:size=128x96:rate=10", "-f", "lavfi", "-i", "sine=duration=1",
                "-c:v", h264[0], "-c:a", aac[0], "-shortest", "-f", "hls", "-hls_time", "1",
                "-hls_segment_filename", os.path.join(work, "seg%03d.ts"), os.path.join(work, "index.m3u8")]
        rc, out, err = run_as(module, prefix, argv, cwd=work)
        playlist = read_text(os.path.join(work, "index.m3u8")) or ""
        if rc == 0 and not playlist.startswith("#EXTM3U"):
            rc, err = 1, "no playlist was written"
        return {"path": path, "rc": rc, "output": out + err, "encoders": "%s + %s" % (h264[0], aac[0])}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", default=""),
            supervisor=dict(type="dict", required=True),
            programs=dict(type="list", elements="dict", required=True),
            owner=dict(type="str", default="elms.queue_workers/elms"),
            alerts_program=dict(type="str", default="queue-workers-alerts"),
            alerts_state_file=dict(type="path", default="/var/lib/elms-queue-workers/alerts/state.json"),
            alerts_log=dict(type="path", default="/var/log/elms-queue-workers/alerts.log"),
            log_dir=dict(type="str", default="storage/logs"),
            app_dir=dict(type="path", required=True),
            user=dict(type="str", required=True),
            php=dict(type="str", default=""),
            connection=dict(type="str", default=""),
            log_lines=dict(type="int", default=15),
            ffmpeg=dict(type="str", default=""),
            h264_encoders=dict(type="list", elements="str", default=["libx264", "libopenh264"]),
            aac_encoders=dict(type="list", elements="str", default=["aac", "libfdk_aac"]),
            run_checks=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    obs, logs = collect(module)
    findings = diagnosis.evaluate(obs)
    module.exit_json(
        changed=False,
        findings=findings,
        report=diagnosis.format_report(module.params["host"] or os.uname()[1], findings, logs),
        problems=sum(1 for f in findings if f["status"] == diagnosis.FAIL),
        warnings_count=sum(1 for f in findings if f["status"] == diagnosis.WARN),
    )


if __name__ == "__main__":
    main()
