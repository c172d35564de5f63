# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling deploys and restarts over a fleet: batches, each host's outcome, and the fleet's summary.

Pure functions, used by the filters of plugins/filter/rollout.py on the controller. The
batches are Ansible's own (a play's ``serial``), worked out here the way ansible-core's
PlaybookExecutor cuts them, so that the summary can say which batch each host was in and
which batch stopped a rollout.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

BATCH_RE = re.compile(r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$")
CANARY_KEYS = ("job", "args", "app", "connection", "queue", "timeout")
CLASS_RE = re.compile(r"^\\?[A-Za-z_][A-Za-z0-9_]*(?:\\[A-Za-z_][A-Za-z0-9_]*)*$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
REASON_LIMIT = 400


def _items(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def batch_errors(value, name="queue_workers_batch"):
    """What is wrong with a batch size: a number of hosts, a percentage of them, or a list of those."""
    items = _items(value)
    if not items:
        return ["%s is an empty list: give a number of hosts (5), a percentage of them ('25%%') or a list of those "
                "(e.g. [1, '25%%', '100%%']: a canary host, then a quarter, then the rest)." % name]
    errors = []
    for item in items:
        if isinstance(item, bool) or not BATCH_RE.match(str(item).strip()):
            errors.append("%s: %r is not a batch size: give a number of hosts of at least 1 (5), a percentage from "
                          "1%% to 100%% ('25%%'), or a list of those." % (name, item))
    return errors


def _size(item, total):
    text = str(item).strip()
    if text.endswith("%"):
        # ansible-core's pct_to_int: rounded down, at least one host.
        return int(int(text[:-1]) / 100.0 * total) or 1
    return int(text)


def batches(hosts, value):
    """The hosts in the batches a play with ``serial: value`` runs them in (ansible-core's cut)."""
    hosts = list(hosts)
    sizes = [_size(item, len(hosts)) for item in _items(value)] or [len(hosts)]
    result, index = [], 0
    while hosts:
        size = sizes[min(index, len(sizes) - 1)]
        result.append(hosts[:size])
        hosts = hosts[size:]
        index += 1
    return result


def max_fail_errors(value, name="queue_workers_max_fail_percentage"):
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        number = None
    if isinstance(value, bool) or number is None or not 0 <= number <= 100:
        return ["%s: %r is not a percentage: give 0 (stop at the first failed host, the default) up to 100 "
                "(never stop)." % (name, value)]
    return []


def max_fail(value):
    return float(str(value).strip().rstrip("%"))


def canary(value, apps_plan, name="queue_workers_canary_job"):
    """The canary job to dispatch on each host, checked: (errors, spec or None).

    value: empty (no canary), a job class name, or a dict with C(job) and optionally
    C(args) (the constructor's arguments), C(app) (which app dispatches it; default the
    first present app), C(connection), C(queue) (default: the connection's own) and
    C(timeout) (seconds to wait until a worker has processed it, default 120).
    """
    if value in (None, "", {}):
        return [], None
    spec = {"job": value} if isinstance(value, str) else value
    if not isinstance(spec, dict):
        return ["%s must be a job class name or a dict with 'job' (and optionally args, app, connection, queue, "
                "timeout), not %s." % (name, type(value).__name__)], None
    errors = []
    unknown = sorted(set(spec) - set(CANARY_KEYS))
    if unknown:
        errors.append("%s: unknown key(s) %s; known: %s." % (name, ", ".join(unknown), ", ".join(CANARY_KEYS)))
    job = str(spec.get("job") or "")
    if not CLASS_RE.match(job):
        errors.append("%s.job: %r is not a PHP class name: give the job's class, e.g. 'App\\Jobs\\QueueCanary'."
                      % (name, job))
    args = spec.get("args", [])
    if not isinstance(args, list):
        errors.append("%s.args must be a list (the job constructor's arguments, in order)." % name)
    for key in ("connection", "queue"):
        if spec.get(key) not in (None, "") and not NAME_RE.match(str(spec[key])):
            errors.append("%s.%s: %r is not a queue %s name." % (name, key, spec[key], key))
    timeout = spec.get("timeout", 120)
    if isinstance(timeout, bool) or not str(timeout).isdigit() or int(timeout) < 1:
        errors.append("%s.timeout: %r must be a number of seconds of at least 1." % (name, timeout))
    present = [app for app in (apps_plan or {}).get("apps", []) if app.get("state", "present") == "present"]
    app = None
    if spec.get("app"):
        app = next((a for a in present if a["name"] == spec["app"]), None)
        if app is None:
            errors.append("%s.app: %r is not a present app of this host (present: %s)."
                          % (name, spec["app"], ", ".join(a["name"] for a in present) or "none"))
    elif present:
        app = present[0]
    else:
        errors.append("%s is set but no app is present on this host to dispatch it." % name)
    if errors:
        return errors, None
    return [], {"job": job.lstrip("\\"), "args": list(args), "app": app["name"], "dir": app["dir"],
                "user": app["user"], "php": app["php"], "connection": str(spec.get("connection") or app.get("connection") or ""),
                "queue": str(spec.get("queue") or ""), "timeout": int(timeout)}


def checks(batch, max_fail_percentage, canary_job, apps_plan, defaults_batch="100%"):
    """Every rollout setting's problems, each naming its variable (the validation runs them first)."""
    errors = batch_errors(defaults_batch if batch in (None, "") else batch)
    errors += max_fail_errors(max_fail_percentage)
    errors += canary(canary_job, apps_plan)[0]
    return errors


def _words(value):
    return " ".join(str(value or "").split())


def _said(result):
    """What a failed task's result says: its message, or the last line of its stderr or stdout."""
    message = _words(result.get("msg"))
    if message and message not in ("non-zero return code", "One or more items failed"):
        return message
    for stream in ("stderr", "stdout"):
        lines = [line for line in str(result.get(stream) or "").splitlines() if line.strip()]
        if lines:
            return _words(lines[-1]) if not message else "%s: %s" % (message, _words(lines[-1]))
    return message


def json_text(value):
    """A value as the user wrote it, in JSON (a batch size of 1 and one of '1' read apart)."""
    return json.dumps(value)


def reason(error):
    """The failed task's name and what it said; a loop's failed items each with theirs."""
    error = error or {}
    result = error.get("result") or {}
    if not isinstance(result, dict):
        result = {"msg": result}
    if error.get("msg") and not result:
        result = {"msg": error["msg"]}
    items = [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("failed")]
    if items:
        message = "; ".join("%s: %s" % (item.get("_ansible_item_label", item.get("item", "")), _said(item))
                            for item in items)
    else:
        message = _said(result) or "failed without a message"
    if len(message) > REASON_LIMIT:
        message = message[:REASON_LIMIT - 3] + "..."
    return "%s: %s" % (error.get("task") or "a task", message)


def _restarted_site(applied):
    pids = (applied or {}).get("pids") or {}
    count = 0
    for program in pids.values():
        before = (program or {}).get("before") or {}
        for process, pid in ((program or {}).get("after") or {}).items():
            if pid and before.get(process) != pid:
                count += 1
    return count


def outcome(playbook, result=None, applied=None, restarted=None, canary_result=None, error=None,
            installed=False, require_all=True, check_mode=False):
    """One host's outcome in a rollout: C(status) changed, unchanged or failed, and why.

    result/applied: the converge's and the handler's results (site); restarted: the
    recycle's result (restart); canary_result: the canary's; error: the failed task's name and
    message when a task failed (caught by the playbook, so that the batch can finish and the
    summary be written); installed: whether supervisor or FFmpeg were installed or started.
    A host is healthy when its workers run the version it was given: the converge's
    apply waited for RUNNING (and put a failed change back), the recycle for new pids; busy
    workers (still in a job when the wait ended) pass only when require_all is false.
    """
    found = {"playbook": playbook, "status": "unchanged", "reason": "",
             "workers_restarted": 0, "canary_seconds": None}
    if canary_result and not canary_result.get("skipped"):
        found["canary_seconds"] = canary_result.get("seconds")
    if error:
        found.update(status="failed", reason=error["reason"] if error.get("reason") else reason(error))
        return found
    if playbook == "restart":
        recycled = (restarted or {}).get("recycled") or {}
        found["workers_restarted"] = sum(1 for item in recycled.values() if item.get("state") == "recycled")
        behind = sorted(name for name, item in recycled.items()
                        if item.get("state") != "recycled" and (require_all or item.get("state") != "busy"))
        if behind:
            found.update(status="failed", reason="not on the new code: %s" % ", ".join(
                "%s (%s)" % (name, recycled[name].get("state")) for name in behind))
        elif recycled:
            found["status"] = "changed"
        return found
    result = result or {}
    if not result.get("ready", True):
        # The converge did not fail, so this run was not to install supervisor: check mode (it would), or tags
        # that left the supervisor role out. Said, not failed.
        found.update(status="changed" if check_mode else "unchanged",
                     reason="supervisor is not ready: %s" % "; ".join(result.get("problems") or []))
        return found
    found["workers_restarted"] = _restarted_site(applied)
    if installed or (applied and not applied.get("skipped")) or result.get("changed"):
        found["status"] = "changed"
    return found


def fleet(playbook, hosts, outcomes, batch, max_fail_percentage):
    """The fleet's summary after the batches run so far, and whether the rollout stops here.

    hosts: every host of the play, in its order (ansible_play_hosts_all); outcomes: host ->
    outcome() for the hosts that got one. A host of a batch that ran without an outcome was
    not reached (unreachable: Ansible took it out of the play). The rollout stops after a batch
    whose failed and unreached hosts are more than max_fail_percentage of it (0: any).
    """
    outcomes = outcomes or {}
    cut = batches(hosts, batch)
    ran = [index for index, members in enumerate(cut) if any(host in outcomes for host in members)]
    current = ran[-1] if ran else None
    summary = {"playbook": playbook, "hosts": len(hosts), "batches": cut, "changed": [], "unchanged": [],
               "failed": {}, "not_reached": {}, "workers_restarted": 0, "batches_run": len(ran),
               "stopped_at_batch": None, "stop": False, "canary_seconds": {},
               "max_fail_percentage": max_fail(max_fail_percentage)}
    for index, members in enumerate(cut):
        for host in members:
            found = outcomes.get(host)
            if found:
                if found["status"] == "failed":
                    summary["failed"][host] = found["reason"]
                else:
                    summary[found["status"]].append(host)
                summary["workers_restarted"] += found.get("workers_restarted") or 0
                if found.get("canary_seconds") is not None:
                    summary["canary_seconds"][host] = found["canary_seconds"]
            elif current is not None and index <= current:
                summary["not_reached"][host] = "unreachable in batch %d" % (index + 1)
    if current is not None:
        members = cut[current]
        bad = [host for host in members if host in summary["failed"] or host in summary["not_reached"]]
        if bad and 100.0 * len(bad) / len(members) > max_fail(max_fail_percentage):
            summary["stop"] = True
            summary["stopped_at_batch"] = current + 1
    for index in range(current + 1 if current is not None else 0, len(cut)):
        for host in cut[index]:
            summary["not_reached"][host] = ("not run: the rollout stopped after batch %d" % (current + 1)
                                            if summary["stop"] else "not run yet")
    summary["text"] = _text(summary)
    return summary


def _names(hosts):
    return ", ".join(hosts) if hosts else "none"


def _text(summary):
    lines = ["%s over %d host(s) in %d batch(es) (%s); %d batch(es) run." % (
        summary["playbook"], summary["hosts"], len(summary["batches"]),
        " | ".join(", ".join(members) for members in summary["batches"]), summary["batches_run"])]
    lines.append("changed: %s; unchanged: %s; worker processes restarted: %d." % (
        _names(summary["changed"]), _names(summary["unchanged"]), summary["workers_restarted"]))
    for host, reason in sorted(summary["failed"].items()):
        lines.append("FAILED %s: %s" % (host, reason))
    for host, reason in sorted(summary["not_reached"].items()):
        lines.append("not reached %s: %s" % (host, reason))
    if summary["canary_seconds"]:
        lines.append("canary processed in: %s." % ", ".join(
            "%s %ss" % (host, seconds) for host, seconds in sorted(summary["canary_seconds"].items())))
    if summary["stop"]:
        lines.append("The rollout stopped after batch %d: more than %g%% of its hosts failed or were not reached "
                     "(queue_workers_max_fail_percentage); later batches were not touched."
                     % (summary["stopped_at_batch"], summary["max_fail_percentage"]))
    return lines
