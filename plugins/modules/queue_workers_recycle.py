#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: queue_workers_recycle
short_description: Recycle Laravel workers after a code deploy, each after its current work, in one call
version_added: "0.5.0"
description:
  - What C(restart.yml) does on a host, in one remote call. First, for each app in O(apps), boots the app from its
    directory as its user and checks the cache store C(queue:restart) writes its signal to - that it keeps what is put
    in it, and, in a release layout (the directory is a C(current) symlink into C(releases/ID)), that it does not keep
    its data inside one release (the file driver under a C(storage/) of the release's own, sqlite in its own
    C(database/)), where workers started from another release would never see the signal. Any problem fails the
    module before any worker is asked anything, naming the app, what was found and the fix.
  - Then, through supervisord's API (the supervisord found the way M(elms.queue_workers.supervisor_facts) finds it),
    each item of O(recycle) asks its programs to exit after their current work - its C(command) (C(artisan
    queue:restart), C(horizon:terminate), a daemon's own) as the app's user, or, without one, a stop and start
    through supervisord (each stop waits for the job up to the program's C(stopwaitsecs)). Nothing is killed.
  - Then it waits (at most O(wait_timeout) seconds) until every process of the C(started) programs in O(programs) runs
    under a new pid. A process still under its old pid is told apart from the host, never assumed - C(busy) when it
    has a child process (an encode runs ffmpeg) or its log shows a job that started and did not end (Laravel's
    C(Processing)/C(Processed)/C(Failed) lines, C(RUNNING)/C(DONE)/C(FAIL) from Laravel 9; the log gives the job's
    class and age, in the first app's timezone), otherwise C(idle) (it had twice its C(--sleep) and 10 s more to see
    the signal and did not, so it reads another cache store than the one the signal went to).
  - The module fails naming every process that is C(idle), C(STOPPED), C(FATAL) or gone, and why; it stops waiting as
    soon as one is, when nothing else is still starting. Busy processes fail it only with O(require_all). A process
    STARTING when the wait ends is given up to 30 s more.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  config_file:
    description: The supervisord config to use when several supervisords run; empty detects the running one.
    type: str
    default: ""
  apps:
    description: The apps whose cache store is checked first (the C(queue:restart) signal lives there).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The app's name (for messages).
        type: str
        required: true
      dir:
        description: The app's directory (in a release layout, its C(current) symlink).
        type: str
        required: true
      user:
        description: The user the app runs as.
        type: str
        required: true
      php:
        description: The php binary.
        type: str
        required: true
  programs:
    description: The programs of these apps; those C(started) are waited for.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Program (group) name.
        type: str
        required: true
      state:
        description: Desired state; only C(started) programs are recycled.
        type: str
        default: started
        choices: [started, stopped, absent]
      stopwaitsecs:
        description: The program's C(stopwaitsecs).
        type: int
        default: 10
  recycle:
    description:
      - How each group of programs is recycled (the role's restart plan, one item per command and app). An item with a
        C(command) runs it; an item without one has its programs stopped and started through supervisord.
    type: list
    elements: dict
    default: []
    suboptions:
      command:
        description: The argv that asks these programs to exit after their current work; null stops and starts them.
        type: list
        elements: str
      chdir:
        description: The directory C(command) runs in.
        type: path
      programs:
        description: The programs (of O(programs)) this item recycles.
        type: list
        elements: str
        required: true
      app:
        description: Whose programs these are (for messages).
        type: str
  require_all:
    description:
      - Fail when a process is still busy with a job at the end of the wait, naming it with its job and the job's age
        (a rollout gates on that). False reports it in RV(recycled) and succeeds (it recycles when its job ends).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for every process to run under a new pid.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: The cache stores are checked; no worker is asked anything.
  diff_mode:
    support: none
    description: No file changes.
"""

EXAMPLES = r"""
- name: Recycle the workers after a code deploy, and wait until each runs under a new pid
  elms.queue_workers.queue_workers_recycle:
    apps: [{name: elms, dir: /var/www/html, user: www-data, php: /usr/bin/php}]
    programs: [{name: elms-default-worker}, {name: elms-video-worker, stopwaitsecs: 7230}]
    recycle:
      - command: [runuser, -u, www-data, --, /usr/bin/php, /var/www/html/artisan, queue:restart]
        chdir: /var/www/html
        programs: [elms-default-worker, elms-video-worker]
    wait_timeout: 300
"""

RETURN = r"""
apps:
  description: Per app, what its cache store check found (C(store), C(driver), C(ok), C(utc_offset), C(base) - the
    release its directory resolves to, C(data) - where the store keeps its data, when on disk).
  returned: always
  type: dict
pids:
  description: Per program, C(before) and C(after), each a map of process name to pid (null when not running).
  returned: when something was recycled
  type: dict
report:
  description: What the restart says, line by line - how many processes run the new code, and one line per process
    still busy with a job (which job, for how long).
  returned: success
  type: list
  elements: str
recycled:
  description:
    - Per process (C(group:name)), where it stands after the wait.
  type: dict
  returned: always
  contains:
    state:
      description:
        - C(recycled) (RUNNING under a new pid), C(busy) (RUNNING under its old pid, in a job; it recycles when the job
          ends), C(idle) (RUNNING under its old pid with no job, so it did not see the restart signal), or its supervisor
          state (C(STOPPED), C(FATAL), C(STARTING), ...; C(gone) when supervisord no longer has it).
      type: str
      sample: busy
    pid_before:
      description: Its pid when the command ran (null when it was not running).
      type: int
    pid_after:
      description: Its pid at the end of the wait (null when not running).
      type: int
    job:
      description: When C(busy), the job's class as the log names it; null when the log does not show it.
      type: str
      sample: App\Jobs\EncodeVideoToHls
    job_age_seconds:
      description: When C(busy) and the log shows the job's start, seconds since it started; null otherwise.
      type: int
      sample: 42
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.elms.queue_workers.plugins.module_utils import recycling
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_detect
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc

# Booted from the app's directory as its user: the cache store queue:restart writes to, that it
# works, where it keeps its data, and the timezone of the workers' log lines.
PROBE = r"""
if (is_file('vendor/autoload.php')) { require 'vendor/autoload.php'; }
$app = require 'bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
$name = $app['config']['cache.default'];
$config = $app['config']["cache.stores.$name"];
$store = $app['cache']->store();
$store->put('elms-queue-workers-probe', 'ok', 60);
$ok = $store->get('elms-queue-workers-probe') === 'ok';
$store->forget('elms-queue-workers-probe');
$data = null;
if ($config['driver'] === 'file') { $data = $config['path']; }
if ($config['driver'] === 'database') {
  $db = $app['config']['database.connections.' . ($config['connection'] ?? $app['config']['database.default'])];
  if (($db['driver'] ?? '') === 'sqlite') { $data = $db['database']; }
}
$zone = $app['config']['queue.output_timezone'] ?: $app['config']['app.timezone'] ?: 'UTC';
$offset = (new DateTime('now', new DateTimeZone($zone)))->getOffset();
echo json_encode(['store' => $name, 'driver' => $config['driver'], 'ok' => $ok, 'utc_offset' => $offset,
                  'base' => realpath(base_path()), 'data' => $data === null ? null : (realpath($data) ?: $data)]);
"""


def last_line(*texts):
    for text in texts:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def cache_problem(app, probe):
    """What is wrong with an app's cache store for queue:restart's signal, or None."""
    if not probe.get("ok"):
        return ("app %s: its cache store %s (%s) does not keep what is put in it: queue:restart's signal would be lost. "
                "Fix the store (CACHE_DRIVER, config/cache.php)." % (app["name"], probe.get("store"), probe.get("driver")))
    if probe.get("driver") in ("array", "null"):
        return ("app %s: its cache store %s is the %s driver, which keeps nothing between processes: the workers would "
                "never see queue:restart's signal. Use a shared store (file, database, redis, memcached)."
                % (app["name"], probe.get("store"), probe["driver"]))
    directory = app["dir"].rstrip("/")
    base, data = probe.get("base") or "", probe.get("data")
    if base != directory and data and (data + "/").startswith(base + "/"):
        return ("app %s: its cache store %s (%s) keeps its data in %s, inside the release %s that %s points to: "
                "workers started from another release read another cache and would never see the restart signal. "
                "Share it between releases (make storage/%s a symlink to a shared directory, as zero-downtime "
                "deployers do) or use a shared cache store (redis, memcached, a database server)."
                % (app["name"], probe.get("store"), probe["driver"], data, base, directory,
                   "" if probe["driver"] == "file" else " and database/"))
    return None


def check_caches(module, apps):
    """Each app's cache store, from the app itself; returns ({app: probe}, [problems])."""
    found, problems = {}, []
    for app in apps:
        argv = ["runuser", "-u", app["user"], "--", app["php"], "-r", PROBE]
        rc, out, err = module.run_command(argv, cwd=app["dir"], environ_update={"LC_ALL": "C"})
        try:
            probe = json.loads(out) if rc == 0 else None
        except ValueError:
            probe = None
        if not isinstance(probe, dict):
            problems.append("app %s: its cache store could not be checked (php exited %d): %s"
                            % (app["name"], rc, last_line(err, out)))
            continue
        found[app["name"]] = probe
        problem = cache_problem(app, probe)
        if problem:
            problems.append(problem)
    return found, problems


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="str", default=""),
            apps=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                dir=dict(type="str", required=True),
                user=dict(type="str", required=True),
                php=dict(type="str", required=True),
            )),
            programs=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", default="started", choices=["started", "stopped", "absent"]),
                stopwaitsecs=dict(type="int", default=10),
            )),
            recycle=dict(type="list", elements="dict", default=[], options=dict(
                command=dict(type="list", elements="str"),
                chdir=dict(type="path"),
                programs=dict(type="list", elements="str", required=True),
                app=dict(type="str"),
            )),
            require_all=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False, apps={}, recycled={}, pids={}, report=[])
    if not params["recycle"]:
        result["report"] = ["No program to recycle."]
        module.exit_json(**result)
    result["apps"], problems = check_caches(module, params["apps"])
    if problems:
        module.fail_json(msg=" ".join(problems), errors=problems, **result)
    offsets = [probe.get("utc_offset") or 0 for probe in result["apps"].values()]
    # The logs' timezone: the first app's (apps of one host rarely differ).
    params["log_utc_offset"] = int(offsets[0]) if offsets else 0

    facts = supervisor_detect.detect(module, {}, version=False)
    if not facts["running"] or not facts["config_file"]:
        module.fail_json(msg="supervisord does not run here (%s): nothing can be recycled; run the site playbook"
                         % ("; ".join(facts["problems"]) or "no supervisord process"), **result)
    try:
        client = recycling.connect(facts["config_file"])
        client.state()
    except rpc.RPCError as exc:
        module.fail_json(msg="supervisord does not answer: %s" % exc.message, **result)
    names = sorted(p["name"] for p in params["programs"])
    before = recycling.pids_by_group(client, names)
    recycling.recycle(module, client, params, before, result)


if __name__ == "__main__":
    main()
