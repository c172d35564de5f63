#!/usr/bin/env python3
"""Benchmarks of the collection's deploy: `make bench` (see tests/benchmarks/README.md).

Every figure is a ratio or a count measured side by side in one run, because absolute
times on shared machines drift. Prints the tables and writes them to
.build/bench/results.md (raw data: results.json, every Ansible run's output: logs/).
Targets are reported, never enforced: the exit status is non-zero only when a section
could not be measured.

    bench.py [--quick] [--only SECTION[,SECTION]] [--keep] [...]   (--help for all)

Options can also come from the BENCH_ARGS environment variable (BENCH_ARGS=--quick make bench).
Containers are named elms-bench-* and removed at the end, also on failure or Ctrl-C.
"""

import argparse
import bisect
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "tests" / "benchmarks"
SHIM_DIR = HERE / "shim"
CALLBACK_DIR = HERE / "callback"
OUT = REPO / ".build" / "bench"
SITE = REPO / "playbooks" / "site.yml"
RESTART = REPO / "playbooks" / "restart.yml"
FIXTURE = REPO / "tests" / "fixtures" / "laravel_app" / "deploy.yml"
# The hand-written playbook a competent admin would write for the same two workers: the
# floor of the no-change and one-worker-change figures.
MINIMAL_SITE = HERE / "minimal" / "site.yml"
DEFAULTS = REPO / "roles" / "queue_workers" / "defaults" / "main.yml"

# The PHP image has no FFmpeg, so a first converge there installs it as on a new server;
# the app image has it preinstalled and is used where the install is not what is measured.
IMAGE_PHP = "elms-test/debian12-php:latest"
IMAGE_APP = "elms-test/debian12-app:latest"
PREFIX = "elms-bench-"
# The fleet's hosts are clones of one converged host, committed to a throwaway image under
# this repository name (tagged with the bench's process id, removed at the end).
FLEET_IMAGE = "elms-bench/fleet"
MAIN = PREFIX + "main"
MINIMAL = PREFIX + "minimal"
APP_DIR = "/var/www/html"
SUPERVISORCTL = ["supervisorctl", "-c", "/etc/supervisor/supervisord.conf"]
# The same inventory variables for every run, ping included, as the demo uses.
HOST_VARS = {
    "ansible_connection": "community.docker.docker",
    "ansible_python_interpreter": "/usr/bin/python3",
    "ansible_become": "false",
}
# What the roles install, with the apt options the apt module gives them: supervisor via
# ansible.builtin.package without install_recommends (apt's own default), FFmpeg with
# install_recommends: false. The apt module always adds the dpkg confdef/confold options.
APT_GET = ["apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
FLOOR_INSTALLS = [
    APT_GET + ["install", "supervisor"],
    APT_GET + ["-o", "APT::Install-Recommends=no", "install", "ffmpeg"],
]
APT_ENV = ["env", "DEBIAN_FRONTEND=noninteractive", "DEBIAN_PRIORITY=critical"]

SECTIONS = ["nochange", "fleet", "disruption", "responsiveness", "first-converge", "burst"]
# Sections that share one converged container, run first and in this order; then the
# ones that need fresh containers (the shared one is removed by then, to leave the CPUs
# to them).
MAIN_SECTIONS = ["nochange", "disruption", "responsiveness", "burst"]
RUN_ORDER = MAIN_SECTIONS + ["first-converge", "fleet"]

STARTED = time.monotonic()


class BenchError(Exception):
    """A step the measurement depends on failed: the section reports it and stops."""


def log(message):
    print("[bench %5.0fs] %s" % (time.monotonic() - STARTED, message), file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else None


def percentile(values, pct):
    """Inclusive percentile (p50 = median); None without data."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def ratio(value, floor):
    return value / floor if value is not None and floor else None


# --- docker and Ansible plumbing -------------------------------------------------------

class Runner:
    """Runs docker and Ansible for the sections, and remembers what to clean up."""

    def __init__(self, args):
        self.args = args
        self.containers = set()
        self.images = set()
        # Why the shared host's site converge failed, when it did: the no-change section
        # still measures its floors (ping, the minimal playbook), the others cannot run.
        self.main_error = None
        # Fresh hosts converged by one section and measured further by another.
        self.converged = {}
        # The real docker, never the counting shim should it already be on PATH.
        search = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                                 if d and Path(d).resolve() != SHIM_DIR)
        self.real_docker = shutil.which("docker", path=search)
        if not self.real_docker:
            raise BenchError("docker is not on PATH (make docker starts an engine)")
        venv_bin = REPO / ".venv" / "bin"
        self.path = os.pathsep.join(
            ([str(venv_bin)] if venv_bin.is_dir() else []) + [os.environ.get("PATH", "")])
        self.ansible = shutil.which("ansible", path=self.path)
        self.ansible_playbook = shutil.which("ansible-playbook", path=self.path)
        if not (self.ansible and self.ansible_playbook):
            raise BenchError("ansible is not installed (make venv)")
        self.collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or str(REPO / ".build" / "collections")
        link = Path(self.collections.split(os.pathsep)[0]) / "ansible_collections" / "elms" / "queue_workers"
        if not link.exists():
            raise BenchError("the collection is not importable from %s (make collection)" % self.collections)
        self.log_dir = OUT / "logs"
        self.run_dir = OUT / "runs"
        for directory in (self.log_dir, self.run_dir):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)

    # docker, called directly (never through the counting shim)

    def docker(self, *args, check=True, timeout=None):
        proc = subprocess.run([self.real_docker, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise BenchError("docker %s failed (%d): %s" % (" ".join(args[:3]), proc.returncode,
                                                              (proc.stderr or proc.stdout).strip()[-800:]))
        return proc

    def sh(self, container, script, *params, check=True, timeout=None):
        """Run a shell script in the container; params become $1, $2, ..."""
        return self.docker("exec", container, "sh", "-c", script, "sh", *params, check=check, timeout=timeout)

    def start(self, names, image):
        """Start containers the way tests/harness/demo.sh does: systemd as PID 1, unprivileged."""
        for name in names:
            self.docker("rm", "-f", name, check=False)  # left over by an interrupted run
            self.containers.add(name)
            self.docker("run", "-d", "--name", name, "--network", "host", "--cgroupns", "host",
                        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                        "--tmpfs", "/tmp", "--stop-signal", "SIGRTMIN+3", image)
        pending = set(names)
        # Counted from the last start: many systemds booting at once on a few cores take
        # longer than one.
        deadline = time.monotonic() + 90 + 10 * len(names)
        while pending:
            for name in sorted(pending):
                state = self.docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise BenchError("systemd did not come up in %s%s" % (", ".join(sorted(pending)), inotify_hint()))
            if pending:
                time.sleep(1)

    def remove(self, names):
        names = [name for name in names if name in self.containers]
        if names and not self.args.keep:
            self.docker("rm", "-f", *names, check=False)
            self.containers.difference_update(names)

    def commit(self, container, tag):
        """A throwaway image of a container (removed by remove_all, with --keep too)."""
        self.images.add(tag)
        self.docker("commit", container, tag)

    def remove_all(self):
        if self.containers and not self.args.keep:
            log("removing containers: %s" % " ".join(sorted(self.containers)))
            self.remove(sorted(self.containers))
        elif self.containers:
            log("--keep: left running: %s" % " ".join(sorted(self.containers)))
        if self.images and not self.containers:
            log("removing images: %s" % " ".join(sorted(self.images)))
            self.docker("rmi", *sorted(self.images), check=False)
            self.images.clear()
        elif self.images:
            log("--keep: left the image(s) of the kept containers: %s" % " ".join(sorted(self.images)))

    # Ansible, through the shim (remote calls) and the callback (tasks)

    def inventory(self, label, names):
        path = OUT / ("inventory-%s.ini" % label)
        lines = ["[bench]"] + names + ["", "[bench:vars]"]
        lines += ["%s=%s" % item for item in HOST_VARS.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self, label):
        env = dict(os.environ)
        env.update({
            "PATH": os.pathsep.join([str(SHIM_DIR), self.path]),
            "BENCH_REAL_DOCKER": self.real_docker,
            "BENCH_DOCKER_LOG": str(self.run_dir / (label + ".docker")),
            "BENCH_EVENTS_LOG": str(self.run_dir / (label + ".events")),
            "ANSIBLE_COLLECTIONS_PATH": self.collections,
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_events",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        })
        return env

    def ansible_run(self, label, argv, check=True, memory=False):
        """Run an Ansible command; return its wall time and what it did (AnsibleRun).
        memory: also sample the memory of its process tree while it runs (TreeMemory)."""
        for suffix in (".docker", ".events"):
            (self.run_dir / (label + suffix)).unlink(missing_ok=True)
        log_path = self.log_dir / (label + ".log")
        with open(log_path, "w") as out:
            out.write("$ %s\n" % shlex.join(str(a) for a in argv))
            out.flush()
            started_at = time.time()  # the callback's clock, for the time before the first task
            start = time.perf_counter()
            proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env(label), cwd=REPO)
            sampler = TreeMemory(proc.pid) if memory else None
            if sampler:
                sampler.start()
            try:
                # wait4 gives the CPU time of this process and of every descendant it
                # waited for: Ansible's worker forks and the docker CLI they run.
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                if sampler:
                    sampler.finish()
            seconds = time.perf_counter() - start
            ended_at = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)
        if check and proc.returncode != 0:
            lines = log_path.read_text(errors="replace").splitlines()
            reason = next((line.strip() for line in lines if line.startswith(("[ERROR]", "ERROR!", "fatal:"))), "")
            raise BenchError("%s failed (exit %d)%s; see %s:\n%s" % (
                label, proc.returncode, ": " + reason[:300] if reason else "", log_path, "\n".join(lines[-25:])))
        return AnsibleRun(label, seconds, proc.returncode, self.run_dir / (label + ".docker"),
                          self.run_dir / (label + ".events"), cpu_seconds=usage.ru_utime + usage.ru_stime,
                          started_at=started_at, ended_at=ended_at,
                          # Linux: KiB, the largest single process among it and the descendants it waited for.
                          maxrss_kib=usage.ru_maxrss, memory=sampler.result() if sampler else None)

    def ping(self, label, inventory, forks=None, memory=False):
        return self.ansible_run(label, [self.ansible, "-i", inventory, "all", "-m", "ansible.builtin.ping",
                                        "-f", forks or self.args.forks], memory=memory)

    def site(self, label, inventory, extra_vars=None, forks=None, memory=False):
        argv = [self.ansible_playbook, "-i", inventory, SITE, "-f", forks or self.args.forks]
        if extra_vars:
            argv += ["-e", "@%s" % extra_vars]
        return self.ansible_run(label, argv, memory=memory)

    def restart(self, label, inventory, batch, forks=None):
        """playbooks/restart.yml with queue_workers_batch (a count or a percentage)."""
        return self.ansible_run(label, [self.ansible_playbook, "-i", inventory, RESTART, "-f", forks or self.args.forks,
                                        "-e", "queue_workers_batch=%s" % batch])

    def minimal(self, label, inventory, extra_vars=None):
        argv = [self.ansible_playbook, "-i", inventory, MINIMAL_SITE, "-f", self.args.forks]
        if extra_vars:
            argv += ["-e", "@%s" % extra_vars]
        return self.ansible_run(label, argv)

    def deploy_fixture(self, label, inventory):
        return self.ansible_run(label, [self.ansible_playbook, "-i", inventory, FIXTURE, "-f", self.args.forks])

    def read_yaml(self, path, name):
        """A YAML file read by Ansible's own YAML loader (no YAML library needed here)."""
        target = OUT / ("%s.json" % name)
        target.unlink(missing_ok=True)
        args = {"content": "{{ lookup('ansible.builtin.file', '%s') | from_yaml | to_json }}" % path,
                "dest": str(target)}
        self.ansible_run("read-" + name, [self.ansible, "localhost", "-c", "local", "-m", "ansible.builtin.copy",
                                          "-a", json.dumps(args)])
        return json.loads(target.read_text())

    def default_programs(self):
        """queue_workers_programs from the role's defaults, so that the overrides follow the
        role instead of a copy kept here."""
        return self.read_yaml(DEFAULTS, "queue_workers_defaults")["queue_workers_programs"]

    def minimal_workers(self):
        """The `workers` list of the minimal playbook's play vars."""
        return self.read_yaml(MINIMAL_SITE, "minimal_playbook")[0]["vars"]["workers"]

    def vars_file(self, name, data):
        path = OUT / ("vars-%s.json" % name)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path


class TreeMemory(threading.Thread):
    """Samples the memory of a process and its descendants (Ansible and its worker forks,
    the docker CLI and shim processes) every `interval` seconds while it runs: the sum of
    their VmRSS (/proc/PID/status; pages the forks share with their parent are counted in
    each, so an upper bound) and of their Pss (/proc/PID/smaps_rollup: shared pages split
    between the processes sharing them, so the tree's real footprint). Peaks are kept."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.halt = threading.Event()
        self.samples = 0
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0

    @staticmethod
    def _field(path, name):
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith(name):
                        return int(line.split()[1])
        except OSError:  # the process has just exited
            pass
        return 0

    def tree(self):
        children = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry.name) as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def sample(self):
        pids = self.tree()
        rss = sum(self._field("/proc/%d/status" % pid, "VmRSS:") for pid in pids)
        pss = sum(self._field("/proc/%d/smaps_rollup" % pid, "Pss:") for pid in pids)
        self.samples += 1
        self.peak_rss_kib = max(self.peak_rss_kib, rss)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)
        self.peak_processes = max(self.peak_processes, len(pids))

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def finish(self):
        self.halt.set()
        self.join()

    def result(self):
        return {"samples": self.samples, "interval_s": self.interval, "peak_rss_mib": round(self.peak_rss_kib / 1024, 1),
                "peak_pss_mib": round(self.peak_pss_kib / 1024, 1), "peak_processes": self.peak_processes}


def inotify_hint():
    """Why many systemd containers may not boot: every systemd (and its .path units) takes
    inotify instances, which all root processes of all containers share."""
    try:
        with open("/proc/sys/fs/inotify/max_user_instances") as handle:
            limit = int(handle.read())
    except (OSError, ValueError):
        return ""
    return (" (each systemd takes inotify instances, shared by every container's root: "
            "fs.inotify.max_user_instances is %d here; `sysctl fs.inotify.max_user_instances=1024` "
            "lets more containers boot)" % limit)


def classify_exec(command):
    """What a `docker exec ... /bin/sh -c COMMAND` of the docker connection does."""
    if "dd of=" in command:
        return "file upload"
    if "dd if=" in command:
        return "file download"
    if "python" in command:
        return "module run"
    if "mkdir" in command:
        return "temp dir"
    if "rm -f -r" in command:
        return "cleanup"
    if "echo ~" in command:
        return "home dir lookup"
    if "chmod" in command:
        return "file mode"
    return "other"


class AnsibleRun:
    """One ansible/ansible-playbook run: wall time, tasks (callback), remote calls (shim)."""

    def __init__(self, label, seconds, rc, docker_log, events_log, cpu_seconds=None, started_at=None,
                 ended_at=None, maxrss_kib=None, memory=None):
        self.label = label
        self.maxrss_kib = maxrss_kib
        self.memory = memory
        self.seconds = seconds
        # Wall-clock (epoch) start and end of the process, on the callback's clock.
        self.started_at = started_at
        self.ended_at = ended_at
        # User + system CPU of the Ansible process and its descendants on the controller.
        self.cpu_seconds = cpu_seconds
        self.rc = rc
        self.calls = self._read_docker_log(docker_log)
        self.events = self._read_events(events_log)

    @staticmethod
    def _read_docker_log(path):
        if not path.exists():
            return []
        calls = []
        for record in path.read_text(errors="replace").split("\x1e"):
            fields = record.split("\x1f")[:-1]
            if len(fields) >= 2:
                calls.append((float(fields[0]), fields[1:]))
        return calls

    @staticmethod
    def _read_events(path):
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @property
    def execs(self):
        return [(t, argv) for t, argv in self.calls if argv and argv[0] == "exec"]

    def summary(self, hosts=1):
        results = [e for e in self.events if e["event"] == "result"]
        statuses = {}
        for event in results:
            statuses[event["status"]] = statuses.get(event["status"], 0) + 1
        kinds = {}
        for _, argv in self.execs:
            kind = classify_exec(argv[-1])
            kinds[kind] = kinds.get(kind, 0) + 1
        ran = sum(n for status, n in statuses.items() if status != "skipped")
        return {
            "seconds": round(self.seconds, 3),
            # The whole run's, not per host.
            "controller_cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 3),
            "hosts": hosts,
            # Per host: each host runs the same tasks.
            "tasks_run": ran / hosts,
            "tasks_changed": statuses.get("changed", 0) / hosts,
            "tasks_skipped": statuses.get("skipped", 0) / hosts,
            "tasks_failed": (statuses.get("failed", 0) + statuses.get("unreachable", 0)) / hosts,
            "remote_calls": len(self.execs) / hosts,
            "remote_calls_by_kind": {kind: n / hosts for kind, n in sorted(kinds.items())},
            "other_docker_cli_calls": (len(self.calls) - len(self.execs)) / hosts,
        }

    def calls_by_task(self):
        """Remote calls per task, matched by time to the task that was running (linear
        strategy: a task's calls all happen before the next task starts)."""
        starts = [e for e in self.events if e["event"] == "task_start"]
        times = [e["time"] for e in starts]
        rows = {}
        order = []
        for t, argv in self.execs:
            index = bisect.bisect_right(times, t) - 1
            if index < 0:
                key = "(before the first task)"
            else:
                task = starts[index]
                key = ("handler: " if task["handler"] else "") + task["task"]
            if key not in rows:
                rows[key] = {"task": key, "remote_calls": 0, "module_runs": 0}
                order.append(key)
            rows[key]["remote_calls"] += 1
            if classify_exec(argv[-1]) == "module run":
                rows[key]["module_runs"] += 1
        return [rows[key] for key in order]

    def task_times(self):
        """Where a one-host run's wall time goes: {"startup": seconds before the first task
        starts (Python start-up, parsing the playbook, inventory, plugins), "tasks": [{task,
        action, runs, seconds}] (a task runs from its start to the next task's start, the
        last one to the last result: the linear strategy runs one task at a time; tasks of
        the same name, as those of a role included twice, are added up), "wrapup": seconds
        from the last result to the process's exit (stats, exit)}."""
        starts = [e for e in self.events if e["event"] == "task_start"]
        if not starts:
            return {"startup": None, "tasks": [], "wrapup": None}
        last = max(e["time"] for e in self.events)
        rows, order = {}, []
        for i, task in enumerate(starts):
            end = starts[i + 1]["time"] if i + 1 < len(starts) else last
            key = ("handler: " if task["handler"] else "") + task["task"]
            if key not in rows:
                rows[key] = {"task": key, "action": task.get("action"), "runs": 0, "seconds": 0.0}
                order.append(key)
            rows[key]["runs"] += 1
            rows[key]["seconds"] += end - task["time"]
        for row in rows.values():
            row["seconds"] = round(row["seconds"], 3)
        return {
            "startup": round(starts[0]["time"] - self.started_at, 3) if self.started_at else None,
            "tasks": [rows[key] for key in order],
            "wrapup": round(self.ended_at - last, 3) if self.ended_at else None,
        }


# --- supervisor and the Laravel app in a container -------------------------------------

def worker_pids(runner, container):
    """{process name: pid} of every RUNNING program, and supervisord's own pid."""
    status = runner.docker("exec", container, *SUPERVISORCTL, "status", check=False).stdout
    pids = {}
    for line in status.splitlines():
        match = re.match(r"^(\S+)\s+RUNNING\s+pid (\d+),", line)
        if match:
            pids[match.group(1)] = int(match.group(2))
    supervisord = runner.docker("exec", container, *SUPERVISORCTL, "pid", check=False).stdout.strip()
    return pids, supervisord


def group_of(process):
    return process.split(":", 1)[0]


def restarts(before, after):
    """Per program group: how many of its processes have another pid (or are gone)."""
    groups = {}
    for process, pid in before.items():
        entry = groups.setdefault(group_of(process), {"processes": 0, "restarted": 0})
        entry["processes"] += 1
        if after.get(process) != pid:
            entry["restarted"] += 1
    for process in after:
        if process not in before:
            entry = groups.setdefault(group_of(process), {"processes": 0, "restarted": 0})
            entry["processes"] += 1
            entry["restarted"] += 1
    return groups


def artisan(runner, container, *args):
    runner.sh(container, 'cd "$1" && shift && exec runuser -u www-data -- php artisan "$@"', APP_DIR, *args)


def host_cpu_times():
    """(busy, total) jiffies of the whole machine; containers share its kernel."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def container_cpu_seconds(runner, container):
    """CPU seconds the container's processes have used (docker exec ones included), from
    its cgroup on the host (v1 cgroupfs, v2 cgroupfs or v2 systemd); None if not found."""
    cid = runner.docker("inspect", "-f", "{{.Id}}", container).stdout.strip()
    candidates = [
        ("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, None),
        ("/sys/fs/cgroup/docker/%s/cpu.stat" % cid, "usage_usec"),
        ("/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid, "usage_usec"),
    ]
    for path, key in candidates:
        if os.path.exists(path):
            with open(path) as handle:
                text = handle.read()
            if key is None:
                return int(text.strip()) / 1e9
            return int(re.search(r"^%s (\d+)" % key, text, re.M).group(1)) / 1e6
    return None


def load_average():
    return round(os.getloadavg()[0], 2)


def parse_time(text):
    return datetime.datetime.fromisoformat(text).timestamp() if text else None


# --- sections ----------------------------------------------------------------------------

def prepare_main(runner):
    """One converged host for the no-change, disruption and responsiveness sections. A
    failed site converge is remembered rather than raised: the no-change section still
    measures its floors on this host."""
    log("starting %s (%s), deploying the app fixture and converging" % (MAIN, IMAGE_APP))
    runner.start([MAIN], IMAGE_APP)
    inventory = runner.inventory("main", [MAIN])
    runner.deploy_fixture("main-fixture", inventory)
    try:
        runner.site("main-converge", inventory)
    except BenchError as error:
        runner.main_error = str(error)
        log("the site's converge failed: %s" % error)
    return inventory


def wait_for_workers(runner, container, processes, timeout=60):
    """Wait until `processes` worker processes are RUNNING; return their pids."""
    deadline = time.monotonic() + timeout
    while True:
        pids, _ = worker_pids(runner, container)
        if len(pids) >= processes:
            return pids
        if time.monotonic() > deadline:
            raise BenchError("%s: %d of %d worker processes RUNNING after %d s" % (
                container, len(pids), processes, timeout))
        time.sleep(1)


def prepare_minimal(runner):
    """The floor's host: the same image and app fixture as the shared host, converged once
    by the hand-written minimal playbook, whose workers must then run."""
    log("starting %s (%s), deploying the app fixture and converging with the minimal playbook"
        % (MINIMAL, IMAGE_APP))
    runner.start([MINIMAL], IMAGE_APP)
    inventory = runner.inventory("minimal", [MINIMAL])
    runner.deploy_fixture("minimal-fixture", inventory)
    runner.minimal("minimal-converge", inventory)
    workers = runner.minimal_workers()
    wait_for_workers(runner, MINIMAL, sum(int(w["numprocs"]) for w in workers))
    return inventory, workers


def distribution(runs):
    """Medians and the typical round (closest to the median time) of repeated runs."""
    summaries = [run.summary() for run in runs]
    seconds = [s["seconds"] for s in summaries]
    cpu = [s["controller_cpu_seconds"] for s in summaries]
    middle = median(seconds)
    typical = min(range(len(runs)), key=lambda i: abs(seconds[i] - middle))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "median": middle,
        "cpu_median": median(cpu),
        "typical": summaries[typical],
        "by_task": runs[typical].calls_by_task(),
        # The counts are the same in every round when the run really changes nothing.
        "counts_varied": len({(s["tasks_run"], s["remote_calls"], s["tasks_changed"]) for s in summaries}) > 1,
        "changed_max": max(s["tasks_changed"] for s in summaries),
    }


def paired(runs, a, b):
    """Per-round ratios of a's time to b's (the runs of one round are next to each other)."""
    return [ratio(x.seconds, y.seconds) for x, y in zip(runs[a], runs[b])]


def section_nochange(runner, inventory):
    """1. The no-change site rerun against two floors, alternating in rotating order:
    `ansible -m ping` on the same host and the hand-written minimal playbook's no-change
    rerun on a second host; then a one-worker change and back, by both."""
    minimal_inventory, minimal_workers = prepare_minimal(runner)
    try:
        return measure_nochange(runner, inventory, minimal_inventory, minimal_workers)
    finally:
        runner.remove([MINIMAL])


def measure_nochange(runner, inventory, minimal_inventory, minimal_workers):
    args = runner.args
    site_error = runner.main_error
    commands = {
        "ping": lambda label: runner.ping(label, inventory),
        "site": lambda label: runner.site(label, inventory),
        "minimal": lambda label: runner.minimal(label, minimal_inventory),
    }
    kinds = ["ping", "site", "minimal"] if not site_error else ["ping", "minimal"]
    # The first run of each pays for cold caches; the minimal one also shows that the
    # floor changes nothing on its second run.
    warmup = {}
    for kind in list(kinds):
        try:
            warmup[kind] = commands[kind]("nochange-warmup-%s" % kind).summary()
        except BenchError as error:
            if kind != "site":
                raise
            site_error = str(error)
            kinds.remove("site")
    runs = {kind: [] for kind in kinds}
    for i in range(args.repeat):
        shift = i % len(kinds)
        order = kinds[shift:] + kinds[:shift]
        log("no-change: round %d of %d (%s)" % (i + 1, args.repeat, ", ".join(order)))
        for kind in order:
            try:
                runs[kind].append(commands[kind]("nochange-%s-%d" % (kind, i + 1)))
            except BenchError as error:
                if kind != "site":
                    raise
                site_error = str(error)
        if site_error and "site" in kinds:
            kinds.remove("site")
            del runs["site"]
    result = {
        "repeat": args.repeat,
        "target_ratio": 1.5,
        "target_remote_calls": 1,
        "warmup_changed": {kind: s["tasks_changed"] for kind, s in warmup.items()},
        "site_error": site_error,
    }
    for kind in ("ping", "site", "minimal"):
        result[kind] = distribution(runs[kind]) if runs.get(kind) else None
    medians = {kind: (result[kind] or {}).get("median") for kind in ("ping", "site", "minimal")}
    cpus = {kind: (result[kind] or {}).get("cpu_median") for kind in ("ping", "site", "minimal")}
    result["ratios"] = {
        "site/ping": ratio(medians["site"], medians["ping"]),
        "site/minimal": ratio(medians["site"], medians["minimal"]),
        "minimal/ping": ratio(medians["minimal"], medians["ping"]),
    }
    result["cpu_ratios"] = {
        "site/ping": ratio(cpus["site"], cpus["ping"]),
        "site/minimal": ratio(cpus["site"], cpus["minimal"]),
        "minimal/ping": ratio(cpus["minimal"], cpus["ping"]),
    }
    result["round_ratios"] = {
        "site/ping": paired(runs, "site", "ping") if "site" in runs else [],
        "site/minimal": paired(runs, "site", "minimal") if "site" in runs else [],
        "minimal/ping": paired(runs, "minimal", "ping"),
    }
    result["change"] = one_worker_change(runner, inventory, minimal_inventory, minimal_workers,
                                         site_ok=not site_error)
    if result["change"].get("site_error") and not site_error:
        result["site_error"] = result["change"]["site_error"]
    return result


def call_kinds(summary):
    """(module runs, file uploads, every other remote call) of a run's summary."""
    kinds = dict(summary["remote_calls_by_kind"])
    module_runs = kinds.pop("module run", 0)
    uploads = kinds.pop("file upload", 0)
    return module_runs, uploads, sum(kinds.values())


def one_worker_change(runner, inventory, minimal_inventory, minimal_workers, site_ok):
    """The default worker's `sleep` plus one through extra vars, then back (a run without
    them), by the collection's site and by the minimal playbook; what reaches the host."""
    programs = runner.default_programs()
    target = next(p for p in programs if p.get("queue") == "default" or p["name"].startswith("elms-default"))
    old = int(target.get("sleep", 3))
    site_file = runner.vars_file("change-one-worker", {"queue_workers_programs": [
        dict(p, sleep=old + 1) if p is target else p for p in programs]})
    mine = next(w for w in minimal_workers if w["name"] == target["name"])
    minimal_file = runner.vars_file("minimal-change-one-worker", {"workers": [
        dict(w, sleep=int(w["sleep"]) + 1) if w is mine else w for w in minimal_workers]})
    result = {"worker": target["name"], "change_made": "sleep %d -> %d" % (old, old + 1), "target_module_runs": 2,
              "target_remote_calls": 2, "steps": []}
    steps = [("site", "change", site_file), ("minimal", "change", minimal_file),
             ("site", "back", None), ("minimal", "back", None)]
    for kind, direction, extra in steps:
        if kind == "site" and not site_ok:
            continue
        container, inv = (MAIN, inventory) if kind == "site" else (MINIMAL, minimal_inventory)
        before, _ = worker_pids(runner, container)
        log("one-worker change: %s, %s" % (kind, direction))
        label = "change-%s-%s" % (kind, direction)
        try:
            run = runner.site(label, inv, extra) if kind == "site" else runner.minimal(label, inv, extra)
        except BenchError as error:
            if kind != "site":
                raise
            result["site_error"] = str(error)
            site_ok = False
            continue
        if kind == "minimal":  # supervisorctl update returns before the new processes run
            wait_for_workers(runner, container, len(before), timeout=30)
        after, _ = worker_pids(runner, container)
        summary = run.summary()
        module_runs, uploads, other = call_kinds(summary)
        result["steps"].append({
            "playbook": kind, "direction": direction, "summary": summary, "module_runs": module_runs,
            "file_uploads": uploads, "other_calls": other, "groups": restarts(before, after),
            "by_task": run.calls_by_task(),
        })
    site_steps = [s for s in result["steps"] if s["playbook"] == "site"]
    result["met"] = len(site_steps) == 2 and all(
        s["module_runs"] == 2 and s["summary"]["remote_calls"] == 2 for s in site_steps)
    return result


def section_disruption(runner, inventory):
    """3. Worker restarts counted by pid: a no-change run, then a change to one worker."""
    programs = runner.default_programs()
    target = next(p for p in programs if p.get("queue") == "default" or p["name"].startswith("elms-default"))
    changed = [dict(p, sleep=int(p.get("sleep", 3)) + 1) if p is target else p for p in programs]
    change_file = runner.vars_file("change-one-worker", {"queue_workers_programs": changed})
    result = {"changed_worker": target["name"],
              "change_made": "sleep %s -> %s" % (target.get("sleep", 3), int(target.get("sleep", 3)) + 1)}
    steps = [("no-change", None), ("change", change_file), ("change back", None)]
    for name, extra in steps:
        before, supervisord_before = worker_pids(runner, MAIN)
        log("disruption: site run (%s)" % name)
        run = runner.site("disruption-%s" % name.replace(" ", "-"), inventory, extra)
        after, supervisord_after = worker_pids(runner, MAIN)
        groups = restarts(before, after)
        result[name] = {
            "groups": groups,
            "restarted": sum(g["restarted"] for g in groups.values()),
            "processes": len(before),
            "supervisord_restarted": supervisord_before != supervisord_after,
            "tasks_changed": run.summary()["tasks_changed"],
        }
    others = {g: v for g, v in result["change"]["groups"].items() if g != target["name"]}
    mine = result["change"]["groups"].get(target["name"], {"processes": 0, "restarted": 0})
    result["no_change_met"] = result["no-change"]["restarted"] == 0
    result["change_met"] = (mine["processes"] > 0 and mine["restarted"] == mine["processes"]
                            and all(v["restarted"] == 0 for v in others.values()))
    return result


BENCH_JOB = HERE / "app" / "BenchFixedWork.php"
BENCH_DISPATCH = HERE / "app" / "dispatch.php"
BENCH_DISPATCH_IN_CONTAINER = "/usr/local/share/elms-bench/dispatch.php"


def install_bench_job(runner, cpu_ms):
    """Add the fixed-work job to the app in the bench container and size it: the
    fixture's own elms:dispatch-ping burns CPU until a wall-clock budget is spent, so its
    run time would not grow under load. Returns the rounds that take cpu_ms of CPU."""
    job = "%s/app/Jobs/BenchFixedWork.php" % APP_DIR
    runner.docker("cp", str(BENCH_JOB), "%s:%s" % (MAIN, job))
    runner.docker("exec", MAIN, "mkdir", "-p", os.path.dirname(BENCH_DISPATCH_IN_CONTAINER))
    runner.docker("cp", str(BENCH_DISPATCH), "%s:%s" % (MAIN, BENCH_DISPATCH_IN_CONTAINER))
    runner.docker("exec", MAIN, "chown", "root:root", job, BENCH_DISPATCH_IN_CONTAINER)
    runner.docker("exec", MAIN, "chmod", "0644", job, BENCH_DISPATCH_IN_CONTAINER)
    out = runner.sh(MAIN, 'cd "$1" && runuser -u www-data -- php "$2" calibrate "$3"', APP_DIR,
                    BENCH_DISPATCH_IN_CONTAINER, str(cpu_ms)).stdout
    return int(out.strip())


# One exec per job dispatches it, lists the encodes' progress files and samples the
# ffmpeg processes: their nice value, and their threads running or waiting for a CPU
# (how many cores the encodes would use, whatever else runs on the machine). The same
# exec in every condition, so dispatching loads the host alike with or without encodes.
DISPATCH_SCRIPT = r"""
cd "$1" || exit 1
runuser -u www-data -- php "$2" dispatch "$3" "$4" || exit 1
for f in storage/app/hls/"$5"-enc-*/started.json; do [ -e "$f" ] && echo "started $f"; done
for p in $(pgrep -x ffmpeg); do
  echo "nice $(cut -d' ' -f19 /proc/$p/stat)"
  echo "runnable $(cat /proc/$p/task/*/stat | awk '$3 == "R"' | wc -l)"
done
exit 0
"""
MARKERS_READER = ('import glob, json, sys; print(json.dumps([json.load(open(f)) for f in '
                  'sorted(glob.glob(sys.argv[1] + "/" + sys.argv[2] + "-*.json"))]))')
ENCODES_READER = ('import json, os, sys; print(json.dumps({n: [json.load(open(p)) if os.path.exists(p) else None '
                  'for p in (sys.argv[1] + "/" + n + "/started.json", sys.argv[1] + "/" + n + "/done.json")] '
                  'for n in sys.argv[2:]}))')


def job_stream(runner, label, loaded, rounds):
    """Dispatch a steady stream of fixed-work default-queue jobs and collect their markers.
    Loaded: keep the video worker busy with encodes for the whole stream (one encode
    always waiting behind the running one)."""
    args = runner.args
    prefix = "bench-%s-%d" % (label, int(time.time()))
    encodes = []

    def dispatch_encode():
        name = "%s-enc-%02d" % (prefix, len(encodes) + 1)
        artisan(runner, MAIN, "elms:dispatch-encode", name, "--duration=%d" % args.encode_duration,
                "--size=%s" % args.encode_size)
        encodes.append(name)

    if loaded:
        dispatch_encode()
        deadline = time.monotonic() + 60
        while runner.sh(MAIN, 'test -f "$1"', "%s/storage/app/hls/%s/started.json" % (APP_DIR, encodes[0]),
                        check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise BenchError("the video worker did not start an encode within 60 s")
            time.sleep(0.5)
        dispatch_encode()
        time.sleep(3)  # ffmpeg is past its start-up

    nice_seen, runnable = set(), []
    busy0, total0 = host_cpu_times()
    cpu0 = container_cpu_seconds(runner, MAIN)
    start = time.monotonic()
    for i in range(args.jobs):
        delay = start + i * args.job_interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out = runner.sh(MAIN, DISPATCH_SCRIPT, APP_DIR, BENCH_DISPATCH_IN_CONTAINER, "%s-%03d" % (prefix, i),
                        str(rounds), prefix).stdout
        lines = [line.split(" ", 1) for line in out.splitlines() if " " in line]
        nice_seen.update(int(value) for key, value in lines if key == "nice")
        runnable.append(sum(int(value) for key, value in lines if key == "runnable"))
        if loaded:
            started = {value.split("/")[-2] for key, value in lines if key == "started"}
            if all(name in started for name in encodes):  # nothing waiting: queue the next
                dispatch_encode()
    stream_seconds = time.monotonic() - start
    cpu1 = container_cpu_seconds(runner, MAIN)
    busy1, total1 = host_cpu_times()

    deadline = time.monotonic() + 120
    while True:
        markers = json.loads(runner.docker("exec", MAIN, "python3", "-c", MARKERS_READER,
                                           "%s/storage/app/markers" % APP_DIR, prefix).stdout)
        if len(markers) >= args.jobs or time.monotonic() > deadline:
            break
        time.sleep(1)

    windows = []
    if loaded:
        log("responsiveness: %s: waiting for the last encodes to finish" % label)
        deadline = time.monotonic() + 600
        while True:
            state = json.loads(runner.docker("exec", MAIN, "python3", "-c", ENCODES_READER,
                                             "%s/storage/app/hls" % APP_DIR, *encodes).stdout)
            if all(done for _, done in state.values()):
                break
            if time.monotonic() > deadline:
                # The next condition (idle, maybe) would run beside it and not be what it says.
                raise BenchError("%s: %d encode(s) still unfinished 600 s after the stream" % (
                    label, sum(1 for _, done in state.values() if not done)))
            time.sleep(2)
        for name in encodes:
            started, done = state[name]
            windows.append((parse_time(started and started["started_at"]), parse_time(done and done["finished_at"])))

    if len(markers) < args.jobs:
        raise BenchError("%s: only %d of %d default jobs finished" % (label, len(markers), args.jobs))
    run_ms = [m["work_ms"] for m in markers]
    latency_ms = [(m["processed_at_unix"] - m["dispatched_at_unix"]) * 1000 for m in markers]
    first = min(m["dispatched_at_unix"] for m in markers)
    last = max(m["processed_at_unix"] for m in markers)
    return {
        "jobs": len(markers),
        "stream_seconds": round(stream_seconds, 1),
        "run_ms": {"p50": percentile(run_ms, 50), "p95": percentile(run_ms, 95), "max": max(run_ms)},
        "latency_ms": {"p50": percentile(latency_ms, 50), "p95": percentile(latency_ms, 95),
                       "max": max(latency_ms)},
        # CPU time the job itself got (about the calibrated amount in every condition).
        "job_cpu_ms_p50": percentile([m["cpu_ms"] for m in markers], 50),
        # Cores the container used while the jobs were dispatched, and how busy the whole
        # machine was (other people's work included).
        "container_cores": round((cpu1 - cpu0) / stream_seconds, 2) if cpu0 is not None else None,
        "host_cpu_busy": round((busy1 - busy0) / max(1, total1 - total0), 3),
        "ffmpeg_runnable_threads": round(statistics.mean(runnable), 2) if runnable else None,
        "ffmpeg_nice_seen": sorted(nice_seen),
        "encodes": len(encodes),
        "encode_seconds_median": median([end - begin for begin, end in windows if begin and end]),
        "encode_coverage": coverage(windows, first, last) if loaded else None,
        "worker_pids": sorted({m["pid"] for m in markers}),
    }


def coverage(windows, first, last):
    """Share of [first, last] during which an encode was running (intervals' union)."""
    if last <= first:
        return None
    covered, cursor = 0.0, first
    for begin, end in sorted((b, e) for b, e in windows if b is not None):
        end = end if end is not None else last
        begin, end = max(begin, cursor), min(end, last)
        if end > begin:
            covered += end - begin
            cursor = end
    return round(covered / (last - first), 3)


# The three conditions of the responsiveness section, in their order of round 1; each
# round starts one further along (round 2: on, off, idle; round 3: off, idle, on; ...).
CONDITIONS = ["idle", "on", "off"]
CONDITION_TITLES = {"idle": "idle (floor)", "on": "encoding, isolation on", "off": "encoding, isolation off"}
RESPONSIVENESS_TARGET = 1.5  # isolation on: p95 run time at most this times idle's, in every round


def rotated(items, shift):
    shift %= len(items)
    return items[shift:] + items[:shift]


def spread(values):
    """Median, min and max of per-round values (None where a round has none)."""
    values = [v for v in values if v is not None]
    return {"median": median(values), "min": min(values) if values else None,
            "max": max(values) if values else None}


def section_responsiveness(runner, inventory):
    """4. Default-queue jobs while the video worker encodes: idle, isolation on, isolation
    off, over several rounds in rotating order; ratios are taken within each round."""
    args = runner.args
    sha256_rounds = install_bench_job(runner, args.cpu_ms)
    # Off: the guide's plain config, the same two workers without nice/ionice. A site run
    # switches between it and the defaults (on) whenever the next loaded condition needs
    # the other one; only the video worker's group changes and restarts. Idle runs with
    # whichever the previous condition left: the default worker's program is the same in
    # both, and no encode runs.
    plain_file = runner.vars_file("isolation-off", {"queue_workers_programs": [
        {k: v for k, v in p.items() if k not in ("nice", "ionice_class", "ionice_level")}
        for p in runner.default_programs()]})
    applied = "on"  # the shared host was converged with the defaults, and left so
    result = {"jobs": args.jobs, "interval_s": args.job_interval, "cpu_ms": args.cpu_ms,
              "sha256_rounds": sha256_rounds, "target_ratio": RESPONSIVENESS_TARGET,
              "encode": "--duration=%d --size=%s" % (args.encode_duration, args.encode_size), "rounds": []}
    for i in range(args.rounds):
        order = rotated(CONDITIONS, i)
        entry = {"round": i + 1, "order": order, "load_average": {}, "switches": []}
        for condition in order:
            if condition != "idle" and condition != applied:
                log("responsiveness: round %d of %d: isolation %s, site run" % (i + 1, args.rounds, condition))
                run = runner.site("responsiveness-r%d-isolation-%s" % (i + 1, condition), inventory,
                                  plain_file if condition == "off" else None)
                entry["switches"].append({"to": condition, "seconds": round(run.seconds, 1),
                                          "tasks_changed": run.summary()["tasks_changed"]})
                applied = condition
            log("responsiveness: round %d of %d: %s (%d jobs of %d sha256 rounds, one every %g s)"
                % (i + 1, args.rounds, CONDITION_TITLES[condition], args.jobs, sha256_rounds, args.job_interval))
            entry["load_average"][condition] = load_average()
            entry[condition] = job_stream(runner, "r%d-%s" % (i + 1, condition), condition != "idle",
                                          sha256_rounds)
        for condition in ("on", "off"):
            entry["ratio_" + condition] = ratio(entry[condition]["run_ms"]["p95"], entry["idle"]["run_ms"]["p95"])
            entry["latency_ratio_" + condition] = ratio(entry[condition]["latency_ms"]["p95"],
                                                        entry["idle"]["latency_ms"]["p95"])
        entry["met"] = entry["ratio_on"] is not None and entry["ratio_on"] <= RESPONSIVENESS_TARGET
        log("responsiveness: round %d: p95 on/idle %s, off/idle %s"
            % (i + 1, fmt(entry["ratio_on"], "x"), fmt(entry["ratio_off"], "x")))
        result["rounds"].append(entry)
    rounds = result["rounds"]
    for key in ("ratio_on", "ratio_off", "latency_ratio_on", "latency_ratio_off"):
        result[key] = spread([r[key] for r in rounds])
    for condition in CONDITIONS:
        result["p95_" + condition] = spread([r[condition]["run_ms"]["p95"] for r in rounds])
    result["rounds_met"] = sum(1 for r in rounds if r["met"])
    # Met only when every round meets it: one good round out of three is not a result.
    result["met"] = bool(rounds) and result["rounds_met"] == len(rounds)
    return result


# --- 6. a burst on a worker that follows its queue ------------------------------------------

# The burst worker in each condition; the range reacts every 5 s (queue_workers_scale_interval).
BURST_WORKER = "elms-burst-worker"
BURST_CONDITIONS = ["range", "fixed1", "fixed4"]
BURST_NUMPROCS = {"range": {"min": 1, "max": 4, "clear_seconds": 5, "step": 3, "cooldown": 10},
                  "fixed1": 1, "fixed4": 4}
BURST_TARGET = 1.25  # the range's time to clear at most this times fixed 4's
# One exec dispatches the burst, 4 artisan calls at a time (the same in every condition).
BURST_DISPATCH = r"""
cd "$1" || exit 1
seq -f "$3-%03g" 1 "$2" | xargs -P 4 -I M runuser -u www-data -- php artisan elms:dispatch-ping M \
  --cpu-ms="$4" --queue=burst >/dev/null
"""


def burst_processes(runner):
    pids, _ = worker_pids(runner, MAIN)
    return sum(1 for p in pids if p.split(":")[-1].startswith(BURST_WORKER + "_"))


def burst_round(runner, label, condition, jobs, cpu_ms):
    """Dispatch a burst, wait until every job ran; the range's: then until it is back at 1 process."""
    prefix = "bench-burst-%s-%d" % (label, int(time.time()))
    processes_before = burst_processes(runner)
    peak = processes_before
    runner.sh(MAIN, BURST_DISPATCH, APP_DIR, str(jobs), prefix, str(cpu_ms))
    deadline = time.monotonic() + max(120, jobs * cpu_ms / 1000.0 * 2)
    while True:
        markers = json.loads(runner.docker("exec", MAIN, "python3", "-c", MARKERS_READER,
                                           "%s/storage/app/markers" % APP_DIR, prefix).stdout)
        peak = max(peak, burst_processes(runner))
        if len(markers) >= jobs:
            break
        if time.monotonic() > deadline:
            raise BenchError("burst %s: only %d of %d jobs ran" % (label, len(markers), jobs))
        time.sleep(0.5)
    first = min(m["dispatched_at_unix"] for m in markers)
    last = max(m["processed_at_unix"] for m in markers)
    entry = {"clear_seconds": round(last - first, 1), "processes_before": processes_before, "peak": peak,
             "pids": len({m["pid"] for m in markers}), "back_to_min_seconds": None}
    if condition == "range":
        drained = time.time()
        deadline = time.monotonic() + 90
        while burst_processes(runner) > 1 and time.monotonic() < deadline:
            time.sleep(1)
        entry["idle_processes"] = burst_processes(runner)
        entry["back_to_min_seconds"] = round(time.time() - drained, 1)
    return entry


def section_burst(runner, inventory):
    """6. A burst of jobs on a worker with numprocs 1-4 against fixed 1 and fixed 4, alternated over rounds."""
    args = runner.args
    files = dict((condition, runner.vars_file("burst-" + condition, {
        "queue_workers_programs": runner.default_programs() + [
            {"name": BURST_WORKER, "queue": "burst", "sleep": 1, "tries": 1, "numprocs": BURST_NUMPROCS[condition]}],
        "queue_workers_scale_interval": 5})) for condition in BURST_CONDITIONS)
    result = {"jobs": args.burst_jobs, "cpu_ms": args.burst_cpu_ms, "target_ratio": BURST_TARGET,
              "range": BURST_NUMPROCS["range"], "rounds": []}
    for i in range(args.rounds):
        entry = {"round": i + 1, "order": rotated(BURST_CONDITIONS, i), "load_average": {}}
        for condition in entry["order"]:
            runner.site("burst-r%d-%s" % (i + 1, condition), inventory, files[condition])
            wanted = 4 if condition == "fixed4" else 1
            deadline = time.monotonic() + 60
            while burst_processes(runner) != wanted:
                if time.monotonic() > deadline:
                    raise BenchError("burst: %s has %d processes, not %d, after its deploy"
                                     % (condition, burst_processes(runner), wanted))
                time.sleep(1)
            if condition == "range":
                time.sleep(6)  # the listener has measured the empty queue once: a burst, not a restart
            log("burst: round %d of %d: %s, %d jobs of %d ms" % (i + 1, args.rounds, condition, args.burst_jobs,
                                                                 args.burst_cpu_ms))
            entry["load_average"][condition] = load_average()
            entry[condition] = burst_round(runner, "r%d-%s" % (i + 1, condition), condition, args.burst_jobs,
                                           args.burst_cpu_ms)
        entry["ratio_fixed4"] = ratio(entry["range"]["clear_seconds"], entry["fixed4"]["clear_seconds"])
        entry["ratio_fixed1"] = ratio(entry["range"]["clear_seconds"], entry["fixed1"]["clear_seconds"])
        entry["met"] = (entry["ratio_fixed4"] is not None and entry["ratio_fixed4"] <= BURST_TARGET
                        and entry["range"]["idle_processes"] == 1)
        log("burst: round %d: range/fixed4 %s, range/fixed1 %s" % (i + 1, fmt(entry["ratio_fixed4"], "x"),
                                                                   fmt(entry["ratio_fixed1"], "x")))
        result["rounds"].append(entry)
    # Put the shared host back as the other sections left it.
    runner.site("burst-back", inventory)
    rounds = result["rounds"]
    result["ratio_fixed4"] = spread([r["ratio_fixed4"] for r in rounds])
    result["ratio_fixed1"] = spread([r["ratio_fixed1"] for r in rounds])
    for condition in BURST_CONDITIONS:
        result["clear_" + condition] = spread([r[condition]["clear_seconds"] for r in rounds])
    result["rounds_met"] = sum(1 for r in rounds if r["met"])
    result["met"] = bool(rounds) and result["rounds_met"] == len(rounds)
    return result


def render_burst(r, summary, details):
    summary.append("| 6 | burst of %d jobs of %d ms: time to clear, numprocs 1-4 vs fixed 4 | %s s | %s s | %s | "
                   "≤ %g× every round, 1 process when idle | %s (%d of %d rounds) |" % (
                       r["jobs"], r["cpu_ms"], fmt(r["clear_range"]["median"], digits=1),
                       fmt(r["clear_fixed4"]["median"], digits=1), fmt_spread(r["ratio_fixed4"]), r["target_ratio"],
                       met(r["met"]), r["rounds_met"], len(r["rounds"])))
    summary.append("| 6 | the same burst, numprocs 1-4 vs fixed 1 | %s s | %s s | %s | | |" % (
        fmt(r["clear_range"]["median"], digits=1), fmt(r["clear_fixed1"]["median"], digits=1),
        fmt_spread(r["ratio_fixed1"])))
    details += ["## 6. A burst on a worker that follows its queue", "",
                "On the shared host, a worker `%s` on queue `burst` deployed in three conditions in rotating order "
                "(a site run between them): numprocs `%s` (the listener measures the queue every 5 s), fixed 1 and "
                "fixed 4. Each round dispatches %d `elms:dispatch-ping --cpu-ms=%d` jobs at once (4 artisan calls "
                "at a time); the time to clear is from the first job's dispatch to the last job's end (their markers). "
                "The job works for a wall-clock time, so 4 processes clear it about 4× faster than 1 whatever the "
                "host's cores; what is measured is how fast the range reaches its processes and lets them go."
                % (BURST_WORKER, json.dumps(r["range"]), r["jobs"], r["cpu_ms"]), "",
                "| round | order | range s | fixed 1 s | fixed 4 s | range ÷ fixed 4 | range peak processes | "
                "back at 1 process after s | load |", "|---|---|---|---|---|---|---|---|---|"]
    for entry in r["rounds"]:
        details.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            entry["round"], ", ".join(entry["order"]), entry["range"]["clear_seconds"],
            entry["fixed1"]["clear_seconds"], entry["fixed4"]["clear_seconds"], fmt(entry["ratio_fixed4"], "×"),
            entry["range"]["peak"], entry["range"]["back_to_min_seconds"],
            ", ".join("%s %s" % item for item in entry["load_average"].items())))
    details.append("")


def fresh_hosts(runner, size, image=IMAGE_PHP):
    """Start `size` fresh hosts (by default without supervisor or FFmpeg) and deploy the app
    fixture to all of them in one run (not timed; the site playbook checks the app's artisan)."""
    names = ["%sfresh%d-%02d" % (PREFIX, size, i) for i in range(1, size + 1)]
    log("%d fresh host(s) from %s: starting, deploying the app fixture" % (size, image))
    runner.start(names, image)
    inventory = runner.inventory("fresh%d" % size, names)
    runner.deploy_fixture("fresh%d-fixture" % size, inventory)
    return names, inventory


# Tasks whose time is the package install itself, which the bare apt-get floor also pays.
PACKAGE_ACTIONS = {"ansible.builtin.package", "ansible.builtin.apt", "ansible.builtin.dnf", "package", "apt", "dnf"}
# The first converge (site ÷ bare install): met only when every round meets it.
FIRST_CONVERGE_TARGET = 1.3


def bare_install(runner, container):
    """The floor: the roles' installs as bare apt-get commands, timed one by one."""
    seconds = []
    for command in FLOOR_INSTALLS:
        start = time.perf_counter()
        runner.docker("exec", container, *APT_ENV, *command)
        seconds.append(round(time.perf_counter() - start, 3))
    return {"seconds": round(sum(seconds), 3), "per_command": seconds}


def converge_breakdown(run):
    """A first converge's time split into Ansible's start-up, the package-install tasks,
    every other task and the wrap-up, with the per-task times."""
    times = run.task_times()
    packages = sum(t["seconds"] for t in times["tasks"] if t["action"] in PACKAGE_ACTIONS)
    others = sum(t["seconds"] for t in times["tasks"] if t["action"] not in PACKAGE_ACTIONS)
    return {"startup": times["startup"], "package_tasks": round(packages, 3), "other_tasks": round(others, 3),
            "wrapup": times["wrapup"], "tasks": times["tasks"]}


def section_first_converge(runner):
    """5. The full site on a fresh host against a bare apt-get install of the same packages
    on another fresh host, alternating which goes first over several rounds (fresh hosts in
    every round)."""
    args = runner.args
    floor = PREFIX + "floor"
    keep_for_fleet = "fleet" in args.only
    result = {"floor_commands": [shlex.join(c) for c in FLOOR_INSTALLS], "target_ratio": FIRST_CONVERGE_TARGET,
              "rounds": []}
    for i in range(args.converge_rounds):
        order = ["floor", "site"] if i % 2 == 0 else ["site", "floor"]
        log("first converge: round %d of %d (%s), preparing two fresh hosts"
            % (i + 1, args.converge_rounds, ", then ".join(order)))
        # Both hosts are ready before either is timed, so each measurement runs alone.
        names, inventory = fresh_hosts(runner, 1)
        runner.start([floor], IMAGE_PHP)
        # The fixture's apt task refreshed the package lists on the site's host; so do it on
        # the floor's host, outside the timing.
        runner.docker("exec", floor, *APT_ENV, "apt-get", "update", "-qq")
        entry = {"round": i + 1, "order": order, "load_average": {}}
        for what in order:
            entry["load_average"][what] = load_average()
            if what == "floor":
                log("first converge: round %d: bare apt-get install of supervisor and ffmpeg (the floor)" % (i + 1))
                entry["floor"] = bare_install(runner, floor)
            else:
                log("first converge: round %d: site on the fresh host" % (i + 1))
                run = runner.site("fresh1-first-r%d" % (i + 1), inventory)
                entry["site"] = run.summary()
                entry["breakdown"] = converge_breakdown(run)
        runner.remove([floor])
        if keep_for_fleet and i == args.converge_rounds - 1:
            # The fleet's one-host first converge is this round's: its host is kept for the
            # fleet's no-change rounds rather than installing FFmpeg once more.
            runner.converged[1] = (names, inventory, entry["site"], entry["load_average"]["site"])
        else:
            runner.remove(names)
        entry["ratio"] = ratio(entry["site"]["seconds"], entry["floor"]["seconds"])
        entry["beyond_install"] = round(entry["site"]["seconds"] - entry["floor"]["seconds"], 3)
        entry["met"] = None if FIRST_CONVERGE_TARGET is None else (
            entry["ratio"] is not None and entry["ratio"] <= FIRST_CONVERGE_TARGET)
        log("first converge: round %d: site %.1f s, bare install %.1f s (%s)" % (
            i + 1, entry["site"]["seconds"], entry["floor"]["seconds"], fmt(entry["ratio"], "x")))
        result["rounds"].append(entry)
    rounds = result["rounds"]
    result["ratio"] = spread([r["ratio"] for r in rounds])
    result["site_seconds"] = spread([r["site"]["seconds"] for r in rounds])
    result["floor_seconds"] = spread([r["floor"]["seconds"] for r in rounds])
    result["rounds_met"] = None if FIRST_CONVERGE_TARGET is None else sum(1 for r in rounds if r["met"])
    result["met"] = None if FIRST_CONVERGE_TARGET is None else result["rounds_met"] == len(rounds)
    # Per task, over the rounds: the top ones by median time.
    per_task = {}
    for r in rounds:
        for t in r["breakdown"]["tasks"]:
            row = per_task.setdefault(t["task"], {"task": t["task"], "action": t["action"], "runs": t["runs"],
                                                  "seconds": [None] * len(rounds)})
            row["seconds"][r["round"] - 1] = t["seconds"]
    for row in per_task.values():
        row["median"] = median([x for x in row["seconds"] if x is not None])
    result["tasks"] = sorted(per_task.values(), key=lambda row: -row["median"])
    return result


def changed_per_host(run):
    """{host: tasks changed} of a playbook run, every host of its results listed."""
    hosts = {}
    for event in run.events:
        if event["event"] == "result":
            hosts[event["host"]] = hosts.get(event["host"], 0) + (event["status"] == "changed")
    return hosts


FLEET_TARGET = 2.0  # no-change rerun of 10 hosts: at most this times one host's, at each forks setting
FLEET_PING_TARGET = 1.5  # no-change site rerun at most this times ansible -m ping over the same hosts, at 1 and 10
FLEET_CPU_TARGET = 3.0  # controller CPU per host at 10 hosts: at most this times ping's
FLEET_TASKS_TARGET = 4  # task results per host (skipped ones included) of a no-change run
RESTART_BATCH = "25%"


def fleet_seed(runner):
    """One converged host to clone: the first-converge section's last site host when it was
    kept, else a fresh host converged here (from the app image, FFmpeg preinstalled: the
    install is not what this section measures). Returns (name, its first converge's summary)."""
    if 1 in runner.converged:
        names, _, first, _ = runner.converged.pop(1)
        return names[0], IMAGE_PHP, first
    names, inventory = fresh_hosts(runner, 1, IMAGE_APP)
    log("fleet: first converge of %s (the host the others are cloned from)" % names[0])
    return names[0], IMAGE_APP, runner.site("fleet-seed-first", inventory).summary()


def grow_fleet(runner, hosts, size, image, processes):
    """Start clones until the fleet has `size` hosts, wait for their workers, and check
    with one site run over the whole fleet that every host is at no-change."""
    new = ["%sfleet-%02d" % (PREFIX, i) for i in range(len(hosts) + 1, size + 1)]
    if new:
        log("fleet: starting %d clone(s) of the converged host" % len(new))
        runner.start(new, image)
        for name in new:
            wait_for_workers(runner, name, processes, timeout=120)
        hosts.extend(new)
    inventory = runner.inventory("fleet%d" % size, hosts)
    log("fleet of %d: site run to check that every host is at no-change (not timed)" % size)
    run = runner.site("fleet%d-check" % size, inventory, forks=max(runner.args.fleet_forks))
    changed = {host: n for host, n in changed_per_host(run).items() if n}
    missing = sorted(set(hosts) - set(changed_per_host(run)))
    if changed or missing:
        raise BenchError("fleet of %d: not every host is at no-change: %s" % (size, "; ".join(
            ["%s changed %d task(s)" % item for item in sorted(changed.items())]
            + ["%s has no result" % host for host in missing])))
    return inventory


def section_fleet(runner):
    """2. No-change rerun of 1, 5, 10, 20 hosts at several forks settings (clones of one
    converged host), the controller's CPU and memory, and a rolling restart."""
    args = runner.args
    sizes = sorted(set(args.fleet))
    seed, seed_image, first = fleet_seed(runner)
    processes = len(wait_for_workers(runner, seed, 1))
    image = "%s:%d" % (FLEET_IMAGE, os.getpid())
    log("fleet: committing %s to %s" % (seed, image))
    runner.commit(seed, image)
    hosts = [seed]
    kinds = [(kind, forks) for forks in args.fleet_forks for kind in ("site", "ping")]
    rows = []
    inventories = {}
    error = None
    for size in sizes:
        # A size that cannot be measured (clones that do not boot in time on a loaded
        # machine) keeps the smaller sizes' figures: reported, and the command fails.
        try:
            inventory = grow_fleet(runner, hosts, size, image, processes)
            runs = {kind: [] for kind in kinds}
            for i in range(args.fleet_repeat):
                order = rotated(kinds, i)
                log("fleet of %d: round %d of %d (%s)" % (size, i + 1, args.fleet_repeat,
                                                          ", ".join("%s forks %d" % k for k in order)))
                for kind, forks in order:
                    label = "fleet%d-%s-f%d-%d" % (size, "nochange" if kind == "site" else "ping", forks, i + 1)
                    command = runner.site if kind == "site" else runner.ping
                    runs[(kind, forks)].append(command(label, inventory, forks=forks, memory=True))
        except BenchError as failure:
            error = "fleet of %d: %s" % (size, failure)
            log(error)
            break
        inventories[size] = inventory
        for forks in args.fleet_forks:
            site, ping = runs[("site", forks)], runs[("ping", forks)]
            summaries = [r.summary(size) for r in site]
            cpu = [s["controller_cpu_seconds"] for s in summaries]
            memory = [r.memory for r in site]
            rows.append({
                "hosts": size,
                "forks": forks,
                "load_average": load_average(),
                "nochange_seconds": [round(r.seconds, 3) for r in site],
                "nochange_median": median([r.seconds for r in site]),
                "nochange_changed_max": max(s["tasks_changed"] for s in summaries),
                "ping_median": median([r.seconds for r in ping]),
                "cpu_per_host": median(cpu) / size,
                "ping_cpu_per_host": median([r.cpu_seconds for r in ping]) / size,
                "remote_calls_per_host": summaries[0]["remote_calls"],
                "remote_calls_varied": len({s["remote_calls"] for s in summaries}) > 1,
                # Every task result per host, skipped ones included (the callback's count).
                "tasks_per_host": summaries[0]["tasks_run"] + summaries[0]["tasks_skipped"],
                "peak_rss_mib": max(m["peak_rss_mib"] for m in memory),
                "peak_pss_mib": max(m["peak_pss_mib"] for m in memory),
                "peak_processes": max(m["peak_processes"] for m in memory),
                "samples_min": min(m["samples"] for m in memory),
                "maxrss_mib": round(max(r.maxrss_kib for r in site) / 1024, 1),
            })
    if not rows:
        raise BenchError(error)
    sizes = sorted({row["hosts"] for row in rows})
    for row in rows:
        base = next(r for r in rows if r["forks"] == row["forks"] and r["hosts"] == sizes[0])
        row["growth"] = ratio(row["nochange_median"], base["nochange_median"])
        row["ping_growth"] = ratio(row["ping_median"], base["ping_median"])
        row["nochange_vs_ping"] = ratio(row["nochange_median"], row["ping_median"])
    result = {"forks": args.fleet_forks, "repeat": args.fleet_repeat, "sizes": sizes, "rows": rows,
              "target_ratio": FLEET_TARGET, "image": image, "processes_per_host": processes,
              "first_converge": first, "seed_image": seed_image, "error": error}
    # The target compares 10 hosts with 1 (the largest size up to 10 when 10 is not run).
    compared = max([n for n in sizes if n <= 10] or [sizes[-1]])
    result["target_hosts"] = compared
    result["met"] = {}
    for row in rows:
        if row["hosts"] == compared and compared > sizes[0]:
            result["met"][row["forks"]] = row["growth"] is not None and row["growth"] <= FLEET_TARGET
    # A failed restart must not lose the no-change figures: it is reported, and fails the command.
    try:
        result["restart"] = measure_restart(runner, hosts[:max(sizes)], inventories, sizes)
    except BenchError as error:
        result["restart"], result["restart_error"] = None, str(error)
    runner.remove(hosts)
    return result


def measure_restart(runner, hosts, inventories, sizes):
    """playbooks/restart.yml over the fleet (at most --restart-hosts hosts) in batches of
    RESTART_BATCH, against a restart of one host; alternating which goes first. The
    workers are idle: nothing has been dispatched to these hosts."""
    args = runner.args
    many = max([n for n in sizes if n <= args.restart_hosts] or [min(sizes)])
    if many < 2:
        return None
    one_inventory = inventories.get(1) or runner.inventory("fleet-restart1", hosts[:1])
    many_inventory = inventories.get(many) or runner.inventory("fleet-restart%d" % many, hosts[:many])
    runs = {1: [], many: []}
    for i in range(args.restart_repeat):
        order = [1, many] if i % 2 == 0 else [many, 1]
        for size in order:
            log("fleet: restart.yml over %d host(s), queue_workers_batch=%s (round %d of %d)"
                % (size, RESTART_BATCH, i + 1, args.restart_repeat))
            runs[size].append(runner.restart("restart%d-%d" % (size, i + 1),
                                             one_inventory if size == 1 else many_inventory, RESTART_BATCH,
                                             forks=max(args.fleet_forks)))
    one = median([r.seconds for r in runs[1]])
    rolled = median([r.seconds for r in runs[many]])
    return {
        "hosts": many, "batch": RESTART_BATCH, "repeat": args.restart_repeat, "forks": max(args.fleet_forks),
        "one_seconds": [round(r.seconds, 3) for r in runs[1]], "many_seconds": [round(r.seconds, 3) for r in runs[many]],
        "one_median": one, "many_median": rolled, "ratio": ratio(rolled, one),
        "cpu_per_host": median([r.cpu_seconds for r in runs[many]]) / many,
        "remote_calls_per_host": runs[many][0].summary(many)["remote_calls"],
        # The play's batches, from the callback: a task starts once per batch.
        "batches": max(sum(1 for e in r.events if e["event"] == "task_start"
                           and e["task"].endswith("recycle every program after its current work, and wait until "
                                                  "each runs again"))
                       for r in runs[many]),
    }


SECTION_FUNCTIONS = {
    "nochange": section_nochange,
    "fleet": section_fleet,
    "disruption": section_disruption,
    "responsiveness": section_responsiveness,
    "first-converge": section_first_converge,
    "burst": section_burst,
}


# --- report ----------------------------------------------------------------------------

def fmt(value, unit="", digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        text = ("%." + str(digits) + "f") % value
    else:
        text = str(value)
    return text + unit


def fmt_count(value):
    return fmt(int(value) if float(value).is_integer() else value, digits=1)


def met(ok):
    return "yes" if ok else "**no**"


def calls_text(s):
    """'3 (module runs 2, uploads 1)' from a run's summary."""
    if not s:
        return "-"
    kinds = dict(s["remote_calls_by_kind"])
    parts = ["module runs %s" % fmt_count(kinds.pop("module run", 0))]
    if "file upload" in kinds:
        parts.append("uploads %s" % fmt_count(kinds.pop("file upload")))
    parts += ["%s %s" % (kind, fmt_count(n)) for kind, n in kinds.items()]
    return "%s (%s)" % (fmt_count(s["remote_calls"]), ", ".join(parts))


def render_nochange(r, summary, details):
    ping, site, minimal = r["ping"], r["site"], r["minimal"]

    def med(d, key="median"):
        return d[key] if d else None

    site_ratio = r["ratios"]["site/ping"]
    summary.append("| 1 | no-change `site` rerun vs `ansible -m ping` (medians of %d rounds) | %s | %s | %s | ≤ %.1f× "
                   "| %s |" % (r["repeat"], fmt(med(site), " s"), fmt(med(ping), " s"), fmt(site_ratio, "×"),
                               r["target_ratio"], met(site_ratio is not None and site_ratio <= r["target_ratio"])))
    summary.append("| 1 | no-change `site` rerun vs the hand-written minimal playbook's | %s | %s | %s | | |"
                   % (fmt(med(site), " s"), fmt(med(minimal), " s"), fmt(r["ratios"]["site/minimal"], "×")))
    summary.append("| 1 | no-change minimal playbook vs `ansible -m ping` | %s | %s | %s | | |"
                   % (fmt(med(minimal), " s"), fmt(med(ping), " s"), fmt(r["ratios"]["minimal/ping"], "×")))
    site_calls = site["typical"]["remote_calls"] if site else None
    summary.append("| 1 | remote calls of the no-change `site` rerun (`docker exec`, shim) | %s | %s (ping), %s (minimal) "
                   "| | %d | %s |" % (calls_text(site and site["typical"]), fmt_count(ping["typical"]["remote_calls"]),
                                    fmt_count(minimal["typical"]["remote_calls"]), r["target_remote_calls"],
                                    met(site_calls == r["target_remote_calls"])))
    if site:
        summary.append("| 1 | tasks run on the no-change `site` rerun (callback; skipped: %s, changed: %s) | %s | %s "
                       "(minimal) | | | |" % (fmt_count(site["typical"]["tasks_skipped"]),
                                             fmt_count(site["typical"]["tasks_changed"]),
                                             fmt_count(site["typical"]["tasks_run"]),
                                             fmt_count(minimal["typical"]["tasks_run"])))
    summary.append("| 1 | controller CPU per no-change `site` run (user+sys, medians; minimal: %s) | %s | %s (ping) | %s "
                   "| | |" % (fmt(med(minimal, "cpu_median"), " s"), fmt(med(site, "cpu_median"), " s"),
                              fmt(med(ping, "cpu_median"), " s"), fmt(r["cpu_ratios"]["site/ping"], "×")))
    change = r["change"]
    site_steps = [s for s in change["steps"] if s["playbook"] == "site"]
    minimal_steps = [s for s in change["steps"] if s["playbook"] == "minimal"]
    summary.append("| 1 | one-worker change (%s `%s`), then back: remote calls of `site` (module runs) | %s | %s "
                   "(minimal) | | %d (%d module runs) each | %s |" % (
                       change["worker"], change["change_made"],
                       " / ".join("%s (%s)" % (fmt_count(s["summary"]["remote_calls"]), fmt_count(s["module_runs"]))
                                  for s in site_steps) or "-",
                       " / ".join("%s (%s)" % (fmt_count(s["summary"]["remote_calls"]), fmt_count(s["module_runs"]))
                                  for s in minimal_steps) or "-",
                       change["target_remote_calls"], change["target_module_runs"], met(change["met"])))

    details += ["## 1. No-change rerun and a one-worker change", "",
                "Three commands, alternating in rotating order (round 1: ping, site, minimal; round 2: site, minimal, "
                "ping; ...), after one warm-up run of each: `ansible -m ping` and `ansible-playbook playbooks/site.yml` "
                "on the host the site converged (`%s`), and the hand-written minimal playbook "
                "(`tests/benchmarks/minimal/site.yml`: apt, one template, service; handlers `supervisorctl reread` and "
                "`update`) on a second host (`%s`, same image and app fixture) it converged once. Same inventory "
                "variables, pipelining on. Controller CPU: user+sys of the Ansible process and every descendant it "
                "waited for (worker forks, docker CLI), from `os.wait4`." % (MAIN, MINIMAL), ""]
    if r["site_error"]:
        details += ["**The collection's site run failed; the site's figures are missing:** `%s`"
                    % r["site_error"].splitlines()[0], ""]
    details += ["| run | median | seconds per round | controller CPU (median) | remote calls | other docker CLI calls "
                "| tasks run | skipped | changed |", "|---|---|---|---|---|---|---|---|---|"]
    for name, d in (("`ansible -m ping`", ping), ("`site` no-change", site), ("minimal playbook no-change", minimal)):
        if not d:
            details.append("| %s | - | - | - | - | - | - | - | - |" % name)
            continue
        s = d["typical"]
        details.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(d["median"], " s"), ", ".join(fmt(x, "", 2) for x in d["seconds"]),
            fmt(d["cpu_median"], " s"), calls_text(s), fmt_count(s["other_docker_cli_calls"]),
            fmt_count(s["tasks_run"]), fmt_count(s["tasks_skipped"]), fmt_count(s["tasks_changed"])))
    details += ["", "Per-round ratios: %s." % "; ".join(
        "%s %s" % (key, ", ".join(fmt(x, "×") for x in values) or "-")
        for key, values in r["round_ratios"].items()),
        "Controller CPU ratios (medians): %s." % ", ".join(
            "%s %s" % (key, fmt(value, "×")) for key, value in r["cpu_ratios"].items()), ""]
    warn = [("%s (changed up to %s)" % (kind, fmt_count(d["changed_max"])))
            for kind, d in (("site", site), ("minimal", minimal)) if d and (d["counts_varied"] or d["changed_max"])]
    warn += ["the warm-up run of %s changed %s task(s)" % (kind, fmt_count(n))
             for kind, n in sorted(r["warmup_changed"].items()) if n]
    if warn:
        details += ["Warning: the rounds did not all do the same work: %s." % ", ".join(warn), ""]
    if site:
        details += ["Tasks that reached the host on the no-change `site` run (calls matched to the running task by "
                    "time):", "", "| task | remote calls | module runs |", "|---|---|---|"]
        for row in sorted(site["by_task"], key=lambda row: -row["remote_calls"]):
            details.append("| %s | %d | %d |" % (row["task"].replace("|", "\\|"), row["remote_calls"],
                                                 row["module_runs"]))
        details.append("")

    details += ["**One-worker change.** `%s` of %s through `-e @file` (the site: `queue_workers_programs` with the "
                "role's defaults and that one value; the minimal playbook: its `workers` list likewise), then back "
                "with a plain run. Remote calls are the `docker exec`s: module runs (a Python module piped to the "
                "host) and file uploads (`dd of=`) counted apart. Restarts: `supervisorctl status` pids before and "
                "after. The site's wall time includes its wait for the workers to be RUNNING; the minimal playbook "
                "does not wait." % (change["change_made"], change["worker"]), "",
                "| playbook | direction | seconds | controller CPU | remote calls | tasks run | changed | skipped "
                "| restarted |", "|---|---|---|---|---|---|---|---|---|"]
    for s in change["steps"]:
        m = s["summary"]
        details.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "`site`" if s["playbook"] == "site" else "minimal", s["direction"], fmt(m["seconds"], " s"),
            fmt(m["controller_cpu_seconds"], " s"), calls_text(m), fmt_count(m["tasks_run"]),
            fmt_count(m["tasks_changed"]), fmt_count(m["tasks_skipped"]),
            ", ".join("%s %d of %d" % (g, v["restarted"], v["processes"]) for g, v in sorted(s["groups"].items()))))
    for s in site_steps:
        details += ["", "Tasks that reached the host on the `site` %s run:" % s["direction"], "",
                    "| task | remote calls | module runs |", "|---|---|---|"]
        for row in s["by_task"]:
            details.append("| %s | %d | %d |" % (row["task"].replace("|", "\\|"), row["remote_calls"],
                                                 row["module_runs"]))
    details.append("")


def fmt_spread(d, unit="×", digits=2):
    """'1.21× (1.10–1.35×)': the median of per-round values and their range."""
    if not d or d["median"] is None:
        return "-"
    return "%s (%s–%s)" % (fmt(float(d["median"]), unit, digits), fmt(float(d["min"]), "", digits),
                           fmt(float(d["max"]), unit, digits))


def rounds_met(r):
    return "%s (%d of %d rounds)" % (met(r["met"]), r["rounds_met"], len(r["rounds"]))


def render_responsiveness(r, summary, details):
    rounds = r["rounds"]
    summary.append("| 4 | p95 run time of a fixed %d ms CPU job on the default queue while encoding, isolation on, "
                   "vs idle (%d rounds; median, range of the per-round ratios) | %s | %s | %s | ≤ %.1f× in every round "
                   "| %s |" % (r["cpu_ms"], len(rounds), fmt(r["p95_on"]["median"], " ms", 0),
                               fmt(r["p95_idle"]["median"], " ms", 0), fmt_spread(r["ratio_on"]), r["target_ratio"],
                               rounds_met(r)))
    summary.append("| 4 | the same with isolation off (no nice/ionice), vs idle | %s | %s | %s | | |"
                   % (fmt(r["p95_off"]["median"], " ms", 0), fmt(r["p95_idle"]["median"], " ms", 0),
                      fmt_spread(r["ratio_off"])))
    details += ["## 4. Responsiveness under encoding", "",
                "%d rounds; in each, %d default-queue jobs per condition, one every %g s, each computing %d sha256 "
                "rounds (calibrated on the host to %d ms of CPU); under load the video worker encodes "
                "`elms:dispatch-encode %s` videos back to back (one always queued), and the next condition starts "
                "only when they have finished. The conditions rotate between rounds (round 1: idle, on, off; round "
                "2: on, off, idle; round 3: off, idle, on; ...); a site run switches the video worker's isolation "
                "when the next loaded condition needs the other setting. Run time = the job's own wall time for its "
                "fixed work; dispatch-to-done = `processed_at - dispatched_at` (includes the default worker's poll "
                "`sleep`). Ratios are p95 against the same round's idle p95. Target: isolation on at most %.1f× idle "
                "in **every** round." % (len(rounds), r["jobs"], r["interval_s"], r["sha256_rounds"], r["cpu_ms"],
                                         r["encode"], r["target_ratio"]), "",
                "| round | order | idle p50 / p95 | on p50 / p95 | off p50 / p95 | on ÷ idle (p95) | off ÷ idle (p95) "
                "| met | dispatch-to-done p95 on ÷ idle, off ÷ idle |", "|---|---|---|---|---|---|---|---|---|"]
    for e in rounds:
        details.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s, %s |" % (
            e["round"], ", ".join(e["order"]),
            *("%s / %s" % (fmt(e[c]["run_ms"]["p50"], "", 0), fmt(e[c]["run_ms"]["p95"], " ms", 0))
              for c in CONDITIONS),
            fmt(e["ratio_on"], "×"), fmt(e["ratio_off"], "×"), met(e["met"]),
            fmt(e["latency_ratio_on"], "×"), fmt(e["latency_ratio_off"], "×")))
    details += ["", "Over the rounds (median, min–max of the per-round values): p95 on ÷ idle %s, off ÷ idle %s; "
                "dispatch-to-done p95 on ÷ idle %s, off ÷ idle %s. Target met in %d of %d rounds."
                % (fmt_spread(r["ratio_on"]), fmt_spread(r["ratio_off"]), fmt_spread(r["latency_ratio_on"]),
                   fmt_spread(r["latency_ratio_off"]), r["rounds_met"], len(rounds)), "",
                "| round | condition | load average at its start | run p50 | run p95 | run max | job CPU p50 "
                "| dispatch-to-done p50 | p95 | max | cores used by the container | whole machine busy "
                "| ffmpeg threads wanting a CPU | encoding during the stream | ffmpeg nice | encodes (median length) |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    stray = []
    for e in rounds:
        for name in e["order"]:
            c = e[name]
            if name == "idle" and c["ffmpeg_nice_seen"]:
                stray.append(str(e["round"]))
            details.append("| %s |" % " | ".join([
                str(e["round"]), CONDITION_TITLES[name], fmt(e["load_average"][name]),
                fmt(c["run_ms"]["p50"], " ms", 0), fmt(c["run_ms"]["p95"], " ms", 0),
                fmt(c["run_ms"]["max"], " ms", 0), fmt(c["job_cpu_ms_p50"], " ms", 0),
                fmt(c["latency_ms"]["p50"], " ms", 0), fmt(c["latency_ms"]["p95"], " ms", 0),
                fmt(c["latency_ms"]["max"], " ms", 0),
                fmt(c["container_cores"], " of %d" % os.cpu_count()), fmt(c["host_cpu_busy"] * 100, " %", 0),
                fmt(c["ffmpeg_runnable_threads"], "", 1) if c["encodes"] else "-",
                "-" if c["encode_coverage"] is None else fmt(c["encode_coverage"] * 100, " %", 0),
                ", ".join(str(n) for n in c["ffmpeg_nice_seen"]) or "-",
                "%d (%s)" % (c["encodes"], fmt(c["encode_seconds_median"], " s", 0)) if c["encodes"] else "-"]))
    switches = ["round %d: %s" % (e["round"], ", ".join("to %s %s s" % (s["to"], fmt(s["seconds"], "", 1))
                                                        for s in e["switches"]))
                for e in rounds if e["switches"]]
    details += ["", "Site runs switching the isolation: %s." % ("; ".join(switches) or "none")]
    if stray:
        details.append("Warning: an ffmpeg process ran during the idle condition of round(s) %s." % ", ".join(stray))
    details.append("")


def render_first_converge(r, summary, details):
    rounds = r["rounds"]
    target = r["target_ratio"]
    summary.append("| 5 | first converge of a fresh host vs bare `apt-get install` (%d rounds; median, range of the "
                   "per-round ratios) | %s | %s | %s | %s | %s |" % (
                       len(rounds), fmt(r["site_seconds"]["median"], " s", 1), fmt(r["floor_seconds"]["median"], " s", 1),
                       fmt_spread(r["ratio"]), "" if target is None else "≤ %.1f× in every round" % target,
                       "" if target is None else rounds_met(r)))
    details += ["## 5. First converge", "",
                "`site` on a fresh `%s` container (app fixture deployed first, not timed) against another fresh one "
                "running only: `%s` (package lists refreshed first, not timed: by the fixture's apt task, by "
                "`apt-get update`). %d rounds, fresh containers in each, both prepared before either is timed; which "
                "goes first alternates (round 1: bare install, then site; round 2: site, then bare install; ...). "
                "Ratios are taken within a round.%s"
                % (IMAGE_PHP, "`; `".join(r["floor_commands"]), len(rounds),
                   "" if target is None else " Target: at most %.1f× in **every** round." % target), "",
                "| round | order | bare install (supervisor + ffmpeg) | site | site ÷ bare | site beyond the bare install "
                "| site: start-up / package tasks / other tasks / wrap-up | tasks run, changed | remote calls "
                "| load average before: bare, site |%s" % ("" if target is None else " met |"),
                "|---|---|---|---|---|---|---|---|---|---|%s" % ("" if target is None else "---|")]
    for e in rounds:
        b, s, f = e["breakdown"], e["site"], e["floor"]
        details.append("| %d | %s | %s (%s) | %s | %s | %s | %s / %s / %s / %s | %s, %s | %s | %s, %s |%s" % (
            e["round"], ", ".join("bare" if w == "floor" else w for w in e["order"]), fmt(f["seconds"], " s", 1),
            " + ".join(fmt(x, "", 1) for x in f["per_command"]), fmt(s["seconds"], " s", 1), fmt(e["ratio"], "×"),
            fmt(e["beyond_install"], " s", 1), fmt(b["startup"], "", 1), fmt(b["package_tasks"], "", 1),
            fmt(b["other_tasks"], "", 1), fmt(b["wrapup"], " s", 1), fmt_count(s["tasks_run"]),
            fmt_count(s["tasks_changed"]), fmt_count(s["remote_calls"]), fmt(e["load_average"]["floor"]),
            fmt(e["load_average"]["site"]), "" if target is None else " %s |" % met(e["met"])))
    parts = {key: spread([e["breakdown"][key] for e in rounds]) for key in ("startup", "package_tasks", "other_tasks")}
    details += ["", "Over the rounds (median, min–max): site ÷ bare install %s; the site beyond the bare install %s; "
                "of the site's time, Ansible's start-up before the first task %s, the package tasks %s (the bare "
                "install: %s), every other task %s." % (
                    fmt_spread(r["ratio"]), fmt_spread(spread([e["beyond_install"] for e in rounds]), " s", 1),
                    fmt_spread(parts["startup"], " s", 1), fmt_spread(parts["package_tasks"], " s", 1),
                    fmt_spread(r["floor_seconds"], " s", 1), fmt_spread(parts["other_tasks"], " s", 1)), "",
                "Where the site's time goes, per task (top 12 by median; a task runs from its start to the next "
                "task's start, the linear strategy running one task at a time; tasks of the same name are added "
                "up; package tasks are the installs the bare floor also does):", "",
                "| task | module | runs | seconds per round | median | package install |",
                "|---|---|---|---|---|---|"]
    for row in r["tasks"][:12]:
        details.append("| %s | %s | %d | %s | %s | %s |" % (
            row["task"].replace("|", "\\|"), row["action"] or "-", row["runs"],
            ", ".join(fmt(x, "", 1) for x in row["seconds"]), fmt(row["median"], " s", 1),
            "yes" if row["action"] in PACKAGE_ACTIONS else ""))
    rest = r["tasks"][12:]
    if rest:
        details.append("| %d other tasks | | | | %s | |" % (len(rest), fmt(sum(row["median"] for row in rest), " s", 1)))
    details.append("")


def render_fleet(r, summary, details):
    rows = r["rows"]
    base_hosts, compared, largest = r["sizes"][0], r["target_hosts"], r["sizes"][-1]

    def row_of(hosts, forks):
        return next((row for row in rows if row["hosts"] == hosts and row["forks"] == forks), None)

    for forks in r["forks"]:
        row, base = row_of(compared, forks), row_of(base_hosts, forks)
        if compared > base_hosts:
            summary.append("| 2 | fleet: no-change rerun of %d hosts vs %d, forks %d (medians of %d) | %s | %s | %s "
                           "| ≤ %.1f× | %s |" % (compared, base_hosts, forks, r["repeat"],
                                                fmt(row["nochange_median"], " s", 1), fmt(base["nochange_median"], " s", 1),
                                                fmt(row["growth"], "×"), r["target_ratio"], met(r["met"][forks])))
        if largest != compared:
            row = row_of(largest, forks)
            summary.append("| 2 | fleet: no-change rerun of %d hosts vs %d, forks %d | %s | %s | %s | | |" % (
                largest, base_hosts, forks, fmt(row["nochange_median"], " s", 1),
                fmt(base["nochange_median"], " s", 1), fmt(row["growth"], "×")))
    for forks in r["forks"]:
        row = row_of(largest, forks)
        summary.append("| 2 | controller at %d hosts, forks %d: CPU per host; peak memory of the Ansible process tree "
                       "(Pss sum; VmRSS sum; largest process) | %s per host; %s MiB; %s MiB; %s MiB | | | | |" % (
                           largest, forks, fmt(row["cpu_per_host"], " s"), fmt(row["peak_pss_mib"], "", 0),
                           fmt(row["peak_rss_mib"], "", 0), fmt(row["maxrss_mib"], "", 0)))
    restart = r["restart"]
    if restart:
        summary.append("| 2 | `restart.yml` over %d hosts with `queue_workers_batch=%s` vs one host (medians of %d) "
                       "| %s | %s | %s | | |" % (restart["hosts"], restart["batch"], restart["repeat"],
                                                fmt(restart["many_median"], " s", 1), fmt(restart["one_median"], " s", 1),
                                                fmt(restart["ratio"], "×")))
    first = r["first_converge"]
    details += ["## 2. Fleet", "",
                "One fresh `%s` host converged by the site (its first converge: %s, %s remote calls), committed to a "
                "throwaway image (`%s`, removed at the end); the fleet's other hosts are containers started from it "
                "(systemd boots, supervisord starts, its %d worker processes run), added as the fleet grows (%s hosts). "
                "Before the measured runs of each size, one site run over the whole fleet checks that every host is at "
                "no-change (no changed task on any host; not timed). All the hosts share this machine's %d CPUs, so the "
                "growth here is an upper bound of a real fleet's, where each host brings its own. Each round runs the "
                "no-change site and `ansible -m ping` at each forks setting (%s) in rotating order; medians of %d "
                "rounds. Controller CPU: user+sys of the Ansible process and every descendant it waited for (`os.wait4`), "
                "per host. Memory of the controller, sampled every 0.25 s from `/proc` over the Ansible process and "
                "all its descendants (worker forks, docker CLI): the peak of the sum of their Pss (shared pages split "
                "between the processes sharing them: the tree's real footprint) and of their VmRSS (shared pages "
                "counted in each fork: an upper bound); and `ru_maxrss` from `os.wait4`, the largest single process."
                % (r.get("seed_image", IMAGE_PHP), fmt(first["seconds"], " s", 1), fmt_count(first["remote_calls"]), r["image"],
                   r["processes_per_host"], ", ".join(str(n) for n in r["sizes"]), os.cpu_count(),
                   ", ".join(str(f) for f in r["forks"]), r["repeat"]), "",
                "| hosts | forks | no-change (median) | seconds per round | growth vs %d | ping | ping growth "
                "| no-change ÷ ping (target ≤ %s×) | controller CPU per host (site; ping; ratio, target ≤ %s×) | task "
                "results per host (skipped included; target ≤ %d) | remote calls per host | peak Pss / VmRSS "
                "sum, processes | largest process | load average after its rounds |" % (
                    base_hosts, FLEET_PING_TARGET, FLEET_CPU_TARGET, FLEET_TASKS_TARGET),
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        details.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s; %s; %s | %s | %s%s | %s / %s MiB, %d | %s MiB "
                       "| %s |" % (
            row["hosts"], row["forks"], fmt(row["nochange_median"], " s"),
            ", ".join(fmt(x, "", 2) for x in row["nochange_seconds"]), fmt(row["growth"], "×"),
            fmt(row["ping_median"], " s"), fmt(row["ping_growth"], "×"), fmt(row["nochange_vs_ping"], "×"),
            fmt(row["cpu_per_host"], " s"), fmt(row["ping_cpu_per_host"], " s"),
            fmt(ratio(row["cpu_per_host"], row["ping_cpu_per_host"]), "×"), fmt_count(row.get("tasks_per_host")),
            fmt_count(row["remote_calls_per_host"]),
            " (varied)" if row["remote_calls_varied"] else "", fmt(row["peak_pss_mib"], "", 0),
            fmt(row["peak_rss_mib"], "", 0), row["peak_processes"], fmt(row["maxrss_mib"], "", 0),
            fmt(row["load_average"])))
    changed = [row for row in rows if row["nochange_changed_max"]]
    if changed:
        details += ["", "Warning: a measured no-change run changed tasks: %s." % ", ".join(
            "%d hosts forks %d (%s per host)" % (row["hosts"], row["forks"], fmt_count(row["nochange_changed_max"]))
            for row in changed)]
    if restart:
        details += ["", "**Rolling restart.** `playbooks/restart.yml -e queue_workers_batch=%s` over %d hosts (forks %d) "
                    "against the same over one host, alternating which goes first, %d round(s); the workers are idle "
                    "(nothing is dispatched), so each host's restart is the workers' recycle and their start "
                    "(`startsecs`). %d host(s): %s s (median %s); 1 host: %s s (median %s); ratio %s; batches seen: %d "
                    "(the recycle task started once per batch); controller CPU per host %s, remote calls per host %s."
                    % (restart["batch"], restart["hosts"], restart["forks"], restart["repeat"], restart["hosts"],
                       ", ".join(fmt(x, "", 1) for x in restart["many_seconds"]), fmt(restart["many_median"], " s", 1),
                       ", ".join(fmt(x, "", 1) for x in restart["one_seconds"]), fmt(restart["one_median"], " s", 1),
                       fmt(restart["ratio"], "×"), restart["batches"], fmt(restart["cpu_per_host"], " s"),
                       fmt_count(restart["remote_calls_per_host"]))]
    if r.get("error"):
        details += ["", "**Not measured beyond %d hosts:** `%s`" % (largest, r["error"].splitlines()[0])]
    if r.get("restart_error"):
        details += ["", "**The rolling restart failed:** `%s`" % r["restart_error"].splitlines()[0]]
    details.append("")


def render(meta, results, errors):
    lines = ["# elms.queue_workers benchmarks", ""]
    lines.append("%s · %d CPUs · commit %s · ansible-core %s · load average %s at the start, %s at the end · "
                 "took %d min (%s)" % (
                     meta["date"], meta["cpus"], meta["commit"], meta["ansible_core"], meta["load_start"],
                     meta["load_end"], round(meta["seconds"] / 60),
                     ", ".join("%s %d s" % item for item in meta["section_seconds"].items())))
    lines.append("")
    lines.append("Every figure is a ratio or count measured side by side in this run; seconds are shown for "
                 "context and drift with the machine's other load. Targets are reported, not enforced.")
    lines.append("")
    summary = ["| # | figure | measured | floor | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    details = []

    r = results.get("nochange")
    if r:
        render_nochange(r, summary, details)

    r = results.get("fleet")
    if r:
        render_fleet(r, summary, details)

    r = results.get("disruption")
    if r:
        nc, ch = r["no-change"], r["change"]
        summary.append("| 3 | worker processes restarted by a no-change run (pids) | %d of %d | | | 0 | %s |"
                       % (nc["restarted"], nc["processes"], met(r["no_change_met"])))
        parts = ", ".join("%s %d of %d" % (g, v["restarted"], v["processes"]) for g, v in sorted(ch["groups"].items()))
        summary.append("| 3 | restarted by a change to %s (pids) | %s | | | only that group | %s |"
                       % (r["changed_worker"], parts, met(r["change_met"])))
        details += ["## 3. Disruption", "",
                    "`supervisorctl status` pids before and after each site run on the converged host. The change is "
                    "`%s` on %s (via `-e @file` overriding `queue_workers_programs`); the last run puts it back."
                    % (r["change_made"], r["changed_worker"]), "",
                    "| run | restarted per group | supervisord restarted | changed tasks |", "|---|---|---|---|"]
        for name in ("no-change", "change", "change back"):
            step = r[name]
            parts = ", ".join("%s %d of %d" % (g, v["restarted"], v["processes"])
                              for g, v in sorted(step["groups"].items()))
            details.append("| %s | %s | %s | %s |" % (name, parts, "yes" if step["supervisord_restarted"] else "no",
                                                      fmt_count(step["tasks_changed"])))
        details.append("")

    r = results.get("responsiveness")
    if r:
        render_responsiveness(r, summary, details)

    r = results.get("first-converge")
    if r:
        render_first_converge(r, summary, details)

    r = results.get("burst")
    if r:
        render_burst(r, summary, details)

    for section, message in errors.items():
        summary.append("| %s | could not be measured: %s | | | | | |"
                       % (section, message.splitlines()[0].replace("|", "\\|")))
    return "\n".join(lines + ["## Summary", ""] + summary + [""] + details)


# --- main ------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes, for developing the bench")
    parser.add_argument("--keep", action="store_true",
                        help="never remove a container (to look around; best with --only)")
    parser.add_argument("--repeat", type=int,
                        help="no-change rounds of ping, site and the minimal playbook (default 5, quick 2)")
    parser.add_argument("--fleet", help="fleet sizes (default 1,5,10,20; quick 1,2)")
    parser.add_argument("--fleet-repeat", type=int, help="ping/no-change rounds per fleet size (default 3, quick 1)")
    parser.add_argument("--fleet-forks", default="10,20", help="forks settings of the fleet's runs (default 10,20)")
    parser.add_argument("--restart-hosts", type=int, default=10,
                        help="hosts of the fleet's rolling restart: the largest fleet size up to this (default 10)")
    parser.add_argument("--restart-repeat", type=int,
                        help="rounds of the one-host and the rolling restart (default 2, quick 1)")
    parser.add_argument("--forks", type=int, default=10, help="Ansible forks for every run (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="responsiveness rounds of idle, isolation on and off in rotating order (default and "
                             "minimum 3, quick too)")
    parser.add_argument("--converge-rounds", type=int, default=2,
                        help="first-converge rounds of the site and the bare install in alternating order "
                             "(default and minimum 2, quick too)")
    parser.add_argument("--jobs", type=int, help="default-queue jobs per condition and round (default 30, quick 8)")
    parser.add_argument("--job-interval", type=float, default=1.75, help="seconds between jobs (default 1.75)")
    parser.add_argument("--cpu-ms", type=int, default=300,
                        help="CPU time of each job's fixed work, calibrated on the host (default 300)")
    parser.add_argument("--encode-duration", type=int, help="seconds of video per encode (default 30, quick 15)")
    parser.add_argument("--encode-size", default="1280x720", help="encode frame size (default 1280x720)")
    parser.add_argument("--burst-jobs", type=int, help="jobs of each burst (default 30, quick 12)")
    parser.add_argument("--burst-cpu-ms", type=int, default=5000, help="each burst job's work in ms (default 5000)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser.error("unknown section(s) %s; choose from %s" % (", ".join(unknown), ", ".join(SECTIONS)))
    # A single round, or two, cannot tell a result from the machine's noise.
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    if args.converge_rounds < 2:
        parser.error("--converge-rounds must be at least 2")
    args.repeat = args.repeat or (2 if quick else 5)
    args.fleet = [int(n) for n in (args.fleet or ("1,2" if quick else "1,5,10,20")).split(",")]
    if min(args.fleet) < 1:
        parser.error("--fleet sizes must be at least 1")
    args.fleet_repeat = args.fleet_repeat or (1 if quick else 3)
    args.fleet_forks = [int(n) for n in args.fleet_forks.split(",")]
    args.restart_repeat = args.restart_repeat or (1 if quick else 2)
    args.jobs = args.jobs or (8 if quick else 30)
    args.encode_duration = args.encode_duration or (15 if quick else 30)
    args.burst_jobs = args.burst_jobs or (12 if quick else 30)
    return args


def metadata():
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    core = subprocess.run([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
    if not core:
        venv_python = REPO / ".venv" / "bin" / "python"
        core = subprocess.run([str(venv_python), "-c", "import ansible.release as r; print(r.__version__)"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip() \
            if venv_python.exists() else "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "commit": commit,
        "ansible_core": core,
        "load_start": "%.2f" % os.getloadavg()[0],
    }


def main(argv):
    args = parse_args(shlex.split(os.environ.get("BENCH_ARGS", "")) + argv)
    OUT.mkdir(parents=True, exist_ok=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt  # leave through the finally below, which removes the containers
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    meta = metadata()
    meta["sections"] = args.only
    meta["section_seconds"] = {}
    results, errors = {}, {}
    runner = None
    interrupted = False
    try:
        runner = Runner(args)
        main_inventory = None
        for section in [s for s in RUN_ORDER if s in args.only]:
            if section in errors:
                continue
            started = time.monotonic()
            try:
                if section in MAIN_SECTIONS:
                    if main_inventory is None:
                        main_inventory = prepare_main(runner)
                    if runner.main_error and section != "nochange":
                        raise BenchError("the site's converge failed: " + runner.main_error)
                    results[section] = SECTION_FUNCTIONS[section](runner, main_inventory)
                    if section == "nochange" and results[section]["site_error"]:
                        # Measured in part (the floors): report them, and fail the command.
                        errors[section] = "the collection's site run failed: " + results[section]["site_error"]
                    if not any(s in args.only for s in MAIN_SECTIONS[MAIN_SECTIONS.index(section) + 1:]):
                        runner.remove([MAIN])  # leave the CPUs to the sections with fresh hosts
                else:
                    results[section] = SECTION_FUNCTIONS[section](runner)
                    if results[section].get("error"):
                        errors[section] = results[section]["error"]
                    elif results[section].get("restart_error"):
                        errors[section] = "the rolling restart failed: " + results[section]["restart_error"]
            except Exception as error:  # noqa: BLE001 - one section's failure must not lose the others
                errors[section] = str(error) if isinstance(error, BenchError) else "%s: %s" % (
                    type(error).__name__, error)
                if not isinstance(error, BenchError):
                    traceback.print_exc()
                log("%s could not be measured: %s" % (section, errors[section]))
                if section in MAIN_SECTIONS and main_inventory is None:
                    # The shared host could not be prepared: no use trying it again.
                    for other in MAIN_SECTIONS:
                        if other in args.only and other not in errors:
                            errors[other] = "the shared host could not be prepared: " + str(error)
            meta["section_seconds"][section] = round(time.monotonic() - started)
            log("%s took %.0f s" % (section, time.monotonic() - started))
    except BenchError as error:
        errors["bench"] = str(error)
        log(str(error))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted")
    finally:
        if runner:
            runner.remove_all()

    meta["load_end"] = "%.2f" % os.getloadavg()[0]
    meta["seconds"] = round(time.monotonic() - STARTED)
    if results or errors:
        report = render(meta, results, errors)
        (OUT / "results.md").write_text(report + "\n")
        (OUT / "results.json").write_text(json.dumps({"meta": meta, "results": results, "errors": errors},
                                                     indent=2) + "\n")
        print(report)
        log("written to %s and results.json (Ansible output: %s)" % (OUT / "results.md", OUT / "logs"))
    if interrupted:
        return 130
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
