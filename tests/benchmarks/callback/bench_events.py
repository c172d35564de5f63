# Writes what bench.py needs to count from a playbook run, one JSON object per line, to
# the file named by BENCH_EVENTS_LOG: when each task (or handler) starts, and each
# host's result for it. bench.py matches the docker shim's exec records to the task
# that was running, which the linear strategy makes unambiguous.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: bench_events
    type: aggregate
    short_description: task starts and results as JSON lines, for tests/benchmarks/bench.py
    description: Writes to the file named by the BENCH_EVENTS_LOG environment variable.
    requirements: [enable in ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("BENCH_EVENTS_LOG")
        self._out = open(path, "a", encoding="utf-8") if path else None

    def _write(self, **event):
        if self._out:
            event["time"] = time.time()
            self._out.write(json.dumps(event) + "\n")
            self._out.flush()

    def _task_start(self, task, handler):
        self._write(event="task_start", task=task.get_name(), uuid=task._uuid, handler=handler,
                    action=task.action)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task, False)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task, True)

    def _result(self, result, status):
        changed = bool(result._result.get("changed", False)) and status == "ok"
        self._write(event="result", task=result._task.get_name(), uuid=result._task._uuid,
                    host=result._host.get_name(), status="changed" if changed else status,
                    action=result._task.action)

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")
