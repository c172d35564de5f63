#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: queue_workers_canary
short_description: Dispatch a canary job through a Laravel app and wait until a worker has processed it
version_added: "0.4.0"
description:
  - Boots the app from its directory as its user (the way a worker does), pushes one job of the given class onto a
    queue through the app's own queue connection, and waits until that job has left the queue without failing
    (a worker took it and its C(handle) returned). This is what a rolling deploy checks on each host before the next
    batch starts (see the site and restart playbooks' C(queue_workers_canary_job)).
  - The job is told apart from every other job by a token the app's payload hook
    (C(Queue::createPayloadUsing), Laravel 6 and later) adds to its payload; nothing of the job class needs to
    change. It is pending while the connection still holds it (the C(database) driver's table, or the C(redis)
    driver's lists of the queue, reserved and delayed ones included) and failed when the app's failed-job store
    holds it (the exception's first line is returned).
  - Only the C(database) and C(redis) queue drivers can be watched this way; another driver is refused with that
    reason before anything is pushed.
  - In check mode nothing is pushed.
author:
  - eLMS infrastructure team (@elms-platform)
options:
  app_dir:
    description: The app's directory (its C(artisan) and C(bootstrap/app.php)).
    type: path
    required: true
  user:
    description: The user the app runs as (the workers' user); the module runs php as that user.
    type: str
    required: true
  php:
    description: The php binary; empty means the one on C(PATH).
    type: str
    default: ""
  job:
    description: The job's class, e.g. C(App\\Jobs\\QueueCanary); it should be cheap and have no effect that matters.
    type: str
    required: true
  args:
    description: The job constructor's arguments, in order (JSON values).
    type: list
    elements: raw
    default: []
  connection:
    description: The queue connection to push onto; empty means the app's default (C(queue.default)).
    type: str
    default: ""
  queue:
    description: The queue to push onto; empty means the connection's own (its C(queue) in C(config/queue.php)).
    type: str
    default: ""
  timeout:
    description: Seconds to wait for a worker to process the job.
    type: int
    default: 120
notes:
  - A canary that times out stays in the queue and is processed whenever a worker takes it.
  - Reports C(changed=false) - the job is a probe; what it does in the app is up to its class.
"""

EXAMPLES = r"""
- name: Check that the workers process a job
  elms.queue_workers.queue_workers_canary:
    app_dir: /var/www/html
    user: www-data
    job: App\Jobs\WritePing
    args: [canary]
    queue: default
    timeout: 60
"""

RETURN = r"""
processed:
  description: Whether a worker processed the job within O(timeout) seconds.
  returned: unless check mode
  type: bool
seconds:
  description: Seconds from the push until the job was seen processed (or until the wait ended).
  returned: unless check mode
  type: float
connection:
  description: The queue connection it was pushed onto.
  returned: unless check mode
  type: str
queue:
  description: The queue it was pushed onto.
  returned: unless check mode
  type: str
driver:
  description: The connection's driver.
  returned: unless check mode
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.elms.queue_workers.plugins.module_utils.app_command import as_user_prefix, run_as

# Boots the app, pushes the job with a token in its payload, and polls until the queue no
# longer holds it; a job that left the queue is looked for in the failed-job store twice
# over a second (a worker deletes a failed job before the store records it).
CANARY = r"""
if (is_file('vendor/autoload.php')) { require 'vendor/autoload.php'; }
$app = require 'bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
$want = json_decode($argv[1], true);
$say = function (array $out) { echo json_encode($out); exit(0); };
$class = $want['job'];
if (!class_exists($class)) { $say(['error' => "the app has no class $class"]); }
$name = $want['connection'] ?: $app['config']['queue.default'];
$config = $app['config']["queue.connections.$name"];
if (!is_array($config)) { $say(['error' => "the app has no queue connection '$name' (config/queue.php)"]); }
$driver = $config['driver'] ?? '';
$queue = $want['queue'] ?: ($config['queue'] ?? 'default');
$base = ['connection' => $name, 'queue' => $queue, 'driver' => $driver];
if (!in_array($driver, ['database', 'redis'], true)) {
  $say($base + ['error' => "the queue connection '$name' uses the '$driver' driver: a canary can be followed only on the database and redis drivers"]);
}
$token = 'elms-canary-' . bin2hex(random_bytes(12));
Illuminate\Queue\Queue::createPayloadUsing(function () use ($token) { return ['elmsQueueWorkersCanary' => $token]; });
try {
  $app['queue']->connection($name)->pushOn($queue, new $class(...$want['args']));
} catch (Throwable $e) {
  $say($base + ['error' => 'pushing the job failed: ' . get_class($e) . ': ' . $e->getMessage()]);
}
Illuminate\Queue\Queue::createPayloadUsing(null);
$start = microtime(true);
$held = function () use ($app, $driver, $config, $queue, $token) {
  if ($driver === 'database') {
    return $app['db']->connection($config['connection'] ?? null)->table($config['table'] ?? 'jobs')
      ->where('queue', $queue)->where('payload', 'like', '%' . $token . '%')->exists();
  }
  $redis = $app['redis']->connection($config['connection'] ?? null);
  $key = 'queues:' . $queue;
  foreach ([$redis->lrange($key, 0, -1), $redis->zrange($key . ':reserved', 0, -1),
            $redis->zrange($key . ':delayed', 0, -1)] as $items) {
    foreach ($items as $item) { if (strpos($item, $token) !== false) { return true; } }
  }
  return false;
};
$failed = function () use ($app, $token) {
  $config = $app['config']['queue.failed'] ?? [];
  if (in_array($config['driver'] ?? '', ['database', 'database-uuids'], true)) {
    $row = $app['db']->connection($config['database'] ?? null)->table($config['table'] ?? 'failed_jobs')
      ->where('payload', 'like', '%' . $token . '%')->first();
    return $row ? (array) $row : null;
  }
  foreach ($app['queue.failer']->all() as $row) {
    $row = (array) $row;
    if (strpos($row['payload'] ?? '', $token) !== false) { return $row; }
  }
  return null;
};
$deadline = $start + $want['timeout'];
while (true) {
  usleep(250000);
  try { $pending = $held(); } catch (Throwable $e) { $pending = true; $lastError = $e->getMessage(); }
  if (!$pending) {
    foreach ([0, 1] as $round) {
      $row = $failed();
      if ($row) {
        $first = strtok((string) ($row['exception'] ?? ''), "\n");
        $say($base + ['processed' => false, 'failed' => true, 'exception' => $first,
                      'seconds' => round(microtime(true) - $start, 2)]);
      }
      if ($round === 0) { usleep(1000000); }
    }
    $say($base + ['processed' => true, 'seconds' => round(microtime(true) - $start, 2)]);
  }
  if (microtime(true) >= $deadline) {
    $say($base + ['processed' => false, 'pending' => true, 'seconds' => round(microtime(true) - $start, 2),
                  'read_error' => $lastError ?? null]);
  }
}
"""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_dir=dict(type="path", required=True),
            user=dict(type="str", required=True),
            php=dict(type="str", default=""),
            job=dict(type="str", required=True),
            args=dict(type="list", elements="raw", default=[]),
            connection=dict(type="str", default=""),
            queue=dict(type="str", default=""),
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, not %d" % params["timeout"])
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no canary job pushed")
    php = params["php"] or module.get_bin_path("php")
    if not php:
        module.fail_json(msg="php is not on PATH: set php (queue_workers_php)")
    prefix = as_user_prefix(module, params["user"])
    if prefix is None:
        module.fail_json(msg="cannot run php as %s: the module must run as root or as that user (become)" % params["user"])
    wanted = {key: params[key] for key in ("job", "args", "connection", "queue", "timeout")}
    rc, out, err = run_as(module, prefix, [php, "-r", CANARY, json.dumps(wanted)], cwd=params["app_dir"],
                          timeout=params["timeout"] + 60)
    try:
        found = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        module.fail_json(msg="the app in %s could not run the canary (php exited %d): %s"
                         % (params["app_dir"], rc, " ".join((out + err).split())[:600]))
    where = "job %s on queue '%s' of connection '%s'" % (params["job"], found.get("queue", params["queue"]),
                                                         found.get("connection", params["connection"]))
    result = {key: found.get(key) for key in ("connection", "queue", "driver", "seconds")}
    result["processed"] = bool(found.get("processed"))
    if found.get("error"):
        module.fail_json(msg="canary %s: %s" % (where, found["error"]), **result)
    if found.get("failed"):
        exception = found.get("exception") or "no exception recorded"
        module.fail_json(msg="the canary %s failed in a worker after %s s: %s" % (where, found.get("seconds"), exception),
                         **result)
    if not found.get("processed"):
        module.fail_json(msg="the canary %s was not processed within %d s: is a worker of this app listening on that "
                         "queue and RUNNING?%s" % (where, params["timeout"],
                                                   " (reading the queue failed: %s)" % found["read_error"]
                                                   if found.get("read_error") else ""), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
