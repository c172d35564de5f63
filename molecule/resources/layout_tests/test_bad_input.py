"""Bad input on a fresh host fails before anything is installed, started or written.

The host has PHP and the Laravel app but neither supervisor nor FFmpeg, so a run that
gets past its checks shows at once: a package installed, a service or a process started,
a file written. Every bad input is run through the site playbook, also limited with
--tags, three runs at a time (each run is mostly the controller starting up); each run
must fail naming its input, and after all of them nothing on the host may have changed
(a change names the files, packages, units or processes). The last check is one good
run, the first converge of this host from nothing. These tests run in file order.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APP, EXPECT, playbook

DEFAULT_WORKER = {"name": "elms-default-worker", "queue": "default", "numprocs": 2, "sleep": 3, "tries": 3,
                  "max_time": 3600, "log": "storage/logs/worker-default.log"}
VIDEO_WORKER = {"name": "elms-video-worker", "queue": "video-encoding", "numprocs": 1, "sleep": 10, "tries": 1,
                "max_time": 7200, "memory": 512, "log": "storage/logs/worker-video.log",
                "nice": 10, "ionice_class": "best-effort", "ionice_level": 7}
PACKAGES = ("supervisor", "ffmpeg")
# What any run that got past its checks would create on this host.
PATHS = ("/etc/supervisor", "/etc/supervisord.conf", "/opt/supervisor", "/var/lib/elms-queue-workers",
         "/usr/bin/supervisord", "/usr/bin/ffmpeg")
# Where a package install, a program file, a log directory, a stamp, a unit or a socket would be
# written: each watched directory that exists on the host.
WATCHED = ("/etc", APP, "/var/lib", "/var/log", "/run", "/srv", "/opt", "/usr/bin", "/usr/local")
# Written by the host itself, whatever a run does: systemd's and journald's own state, logins, the
# mount table, and apt's daily timer (its lists; an install shows in /var/lib/dpkg, which is watched).
VOLATILE = ("/run/systemd/", "/run/log/", "/run/user/", "/run/mount/", "/var/log/journal/", "/var/lib/systemd/",
            "/run/utmp", "/var/log/wtmp", "/var/log/lastlog", "/var/log/btmp", "/var/lib/apt/")
MARKER = "/tmp/elms-bad-input-marker"


def programs(*workers):
    return {"queue_workers_programs": list(workers)}


# (extra vars, words the error must contain: the variable and what is wrong with it).
CONTROLLER_INPUTS = {
    "underscore-name": (programs(dict(DEFAULT_WORKER, name="elms_default")),
                        ["queue_workers_programs[0] (elms_default).name", "no '_'"]),
    "duplicate-name": (programs(DEFAULT_WORKER, dict(VIDEO_WORKER, name="elms-default-worker")),
                       ["queue_workers_programs[1] (elms-default-worker).name", "used twice"]),
    "missing-queue": (programs({"name": "x", "numprocs": 1}),
                      ["queue_workers_programs[0] (x).queue = None must be a queue name"]),
    "bad-app-name": ({"queue_workers_app_name": "Shop_1"}, ["queue_workers_app_name = 'Shop_1'", "lowercase"]),
    "queue-on-scheduler": (programs(DEFAULT_WORKER, {"name": "elms-scheduler", "kind": "schedule", "queue": "default"}),
                           ["queue_workers_programs[1] (elms-scheduler) (kind schedule) sets queue"]),
    "same-program-in-two-apps": ({"queue_workers_apps": [{"name": "elms", "programs": [DEFAULT_WORKER]},
                                                         {"name": "shop", "programs": [DEFAULT_WORKER]}]},
                                 ["queue_workers_apps[1] (shop).programs: program elms-default-worker is also a "
                                  "program of app elms"]),
    "numprocs-zero": (programs(dict(DEFAULT_WORKER, numprocs=0)),
                      ["queue_workers_programs[0] (elms-default-worker).numprocs = 0", "from 1 to 64"]),
    "range-min-above-max": (programs(dict(DEFAULT_WORKER, numprocs={"min": 4, "max": 2})),
                            ["queue_workers_programs[0] (elms-default-worker).numprocs: max (2) must be above min (4)"]),
    "range-on-horizon": (programs(DEFAULT_WORKER, {"name": "elms-horizon", "kind": "horizon",
                                                   "numprocs": {"min": 1, "max": 3}}),
                         ["queue_workers_programs[1] (elms-horizon) (kind horizon) runs as one process"]),
    "relative-metrics-dir": ({"queue_workers_metrics_dir": "metrics"},
                             ["queue_workers_metrics_dir = 'metrics' must be an absolute directory"]),
    "stopwait-below-timeout": (programs(dict(VIDEO_WORKER, timeout=7000, stopwaitsecs=600)),
                               ["queue_workers_programs[0] (elms-video-worker).stopwaitsecs = 600",
                                "SIGKILL a running job"]),
    "root-worker": (programs(dict(DEFAULT_WORKER, user="root")),
                    ["queue_workers_programs[0] (elms-default-worker) runs as root", "queue_workers_allow_root"]),
    "unknown-key": (programs(dict(DEFAULT_WORKER, sleeep=3)), ["queue_workers_programs.sleeep"]),
    "extra-args-queue": (programs(dict(DEFAULT_WORKER, extra_args=["--queue=other"])),
                         ["queue_workers_programs[0] (elms-default-worker).extra_args sets --queue"]),
    "negative-nice": (programs(dict(VIDEO_WORKER, nice=-5)),
                      ["queue_workers_programs[0] (elms-video-worker).nice = -5 needs root", "www-data"]),
    "realtime-ionice": (programs(dict(VIDEO_WORKER, ionice_class="realtime")),
                        ["queue_workers_programs[0] (elms-video-worker).ionice_class = realtime needs root"]),
    "negative-margin": ({"queue_workers_stopwait_margin": -5},
                        ["queue_workers_stopwait_margin = -5", "must be a whole number >= 0"]),
    "env-both-quotes": (programs(dict(DEFAULT_WORKER, environment={"GREETING": "it's \"here\""})),
                        ["queue_workers_programs[0] (elms-default-worker).environment.GREETING",
                         "contains both ' and \""]),
}
# What only the host can tell: checked by the converge before it changes anything.
HOST_INPUTS = {
    "unknown-user": ({"queue_workers_user": "nobody-here"},
                     ["user nobody-here does not exist", "queue_workers_user"]),
    "no-artisan": ({"queue_workers_app_dir": "/var/www"},
                   ["/var/www/artisan does not exist", "queue_workers_app_dir"]),
    "php-not-executable": ({"queue_workers_php": "/etc/debian_version"},
                           ["php /etc/debian_version is not an executable file", "queue_workers_php"]),
    "php-missing": ({"queue_workers_php": "/usr/bin/php9"},
                    ["php /usr/bin/php9 is not an executable file", "queue_workers_php"]),
    "second-app-without-artisan": ({"queue_workers_apps": [{"name": "elms", "programs": [DEFAULT_WORKER]},
                                                           {"name": "shop", "dir": "/srv/none", "user": "www-data",
                                                            "programs": [dict(DEFAULT_WORKER, name="shop-worker")]}]},
                                   ["/srv/none/artisan does not exist", "queue_workers_apps[1] (shop).dir"]),
}
BAD_INPUTS = [pytest.param(name, extra, words, id=name)
              for name, (extra, words) in list(CONTROLLER_INPUTS.items()) + list(HOST_INPUTS.items())]

# Each tag the site playbook's steps carry, with a bad input checked on the controller and
# one only the host can tell. The ones that could install something come last.
TAGGED_INPUTS = [
    pytest.param(tag, name, id="%s-%s" % (tag, name))
    for tag, name in [("queue_workers", "numprocs-zero"), ("supervisor", "negative-margin"),
                      ("ffmpeg", "env-both-quotes"), ("queue_workers", "no-artisan"),
                      ("supervisor", "unknown-user"), ("ffmpeg", "php-not-executable")]
]


def host_state(host):
    """The packages, paths, services and processes a run that got past its checks would change."""
    cmdlines = host.run("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null").stdout
    units = host.run("systemctl list-unit-files --no-legend --no-pager").stdout
    return {
        "installed": sorted(p for p in PACKAGES
                            if "install ok installed" in host.run("dpkg-query -W -f='${Status}' %s" % p).stdout),
        "paths": sorted(p for p in PATHS if host.run("test -e %s" % p).rc == 0),
        "units": sorted(line.split()[0] for line in units.splitlines() if "supervisor" in line),
        "processes": sorted(line.strip() for line in cmdlines.splitlines()
                            if any(word in line for word in ("supervisord", "queue:work", "ffmpeg"))),
    }


FRESH = {"installed": [], "paths": [], "units": [], "processes": []}


def touch_marker(host):
    host.check_output("touch %s", MARKER)


def written_since_marker(host):
    """Every file, directory or link under WATCHED that changed after the marker (the host's own churn left out).
    The marker must exist and find must succeed: a check that cannot look finds nothing, and says so."""
    assert host.run("test -f %s" % MARKER).rc == 0, "the marker %s is missing: nothing can be compared" % MARKER
    watched = [path for path in WATCHED if host.run("test -d %s" % path).rc == 0]
    found = host.run("find %s -xdev -newer %s -print" % (" ".join(watched), MARKER))
    assert found.rc == 0, "find failed (%d): %s" % (found.rc, found.stderr)
    return sorted(path for path in found.stdout.split() if not path.startswith(VOLATILE) and path + "/" not in VOLATILE)


def readable(out):
    """The playbook's output with YAML's line folding and quote doubling undone."""
    return " ".join(out.split()).replace("''", "'").replace('\\"', '"')


@pytest.fixture(scope="module")
def fresh(host):
    """The host as prepare left it: no supervisor, no FFmpeg, nothing of the collection."""
    touch_marker(host)
    state = host_state(host)
    assert state == FRESH, "the scenario must start from a host without supervisor and FFmpeg"
    return state


def run_bad(case):
    extra_vars, words, args = case
    rc, out = playbook("site.yml", None, "-e", json.dumps(extra_vars), *args)
    return rc, out


@pytest.fixture(scope="module")
def bad_runs(host, fresh):
    """Every bad input run through the site playbook: {"results": {case id: (rc, output)}, "written": {case id or
    group: [files written]}, "state": the host after all of them}. The inputs the controller refuses never reach the
    host: they run three at a time, with one snapshot for the lot. Each input only the host can tell reaches it, and
    runs alone, between two snapshots of its own."""
    cases = dict((param.id, param.values[1:] + ((),)) for param in BAD_INPUTS)
    for param in TAGGED_INPUTS:
        tag, name = param.values
        extra_vars, words = dict(CONTROLLER_INPUTS, **HOST_INPUTS)[name]
        cases[param.id] = (extra_vars, words, ("--tags", tag))
    on_host = [case for case in cases if case.split("-", 1)[-1] in HOST_INPUTS or case in HOST_INPUTS]
    results, written = {}, {}
    touch_marker(host)
    with ThreadPoolExecutor(max_workers=3) as pool:
        controller = [case for case in cases if case not in on_host]
        results.update(zip(controller, pool.map(run_bad, [cases[case] for case in controller])))
    written["refused on the controller"] = written_since_marker(host)
    for case in on_host:
        touch_marker(host)
        results[case] = run_bad(cases[case])
        written[case] = written_since_marker(host)
    return {"results": results, "written": written, "state": host_state(host)}


def assert_failed_naming(bad_runs, case, words):
    rc, out = bad_runs["results"][case]
    text = readable(out)
    assert rc != 0, out[-3000:]
    for word in words:
        assert word in text, out[-3000:]
    # The error alone, not the whole argument spec after it.
    assert "argument_spec_data" not in out


def test_the_host_starts_without_supervisor_or_ffmpeg(fresh):
    assert fresh == FRESH


@pytest.mark.parametrize("case, extra_vars, words", BAD_INPUTS)
def test_bad_input_fails_naming_it(bad_runs, case, extra_vars, words):
    assert_failed_naming(bad_runs, case, words)


@pytest.mark.parametrize("tag, name", TAGGED_INPUTS)
def test_bad_input_fails_naming_it_when_limited_by_tags(bad_runs, tag, name):
    assert_failed_naming(bad_runs, "%s-%s" % (tag, name), dict(CONTROLLER_INPUTS, **HOST_INPUTS)[name][1])


def test_the_check_for_written_files_sees_a_write(host):
    """The snapshot can fail: a file written after the marker, in a watched place, is found."""
    touch_marker(host)
    probe = "/var/lib/elms-bad-input-probe"
    host.check_output("touch %s" % probe)
    try:
        # The probe, and the directory it was created in (its mtime changed with the new entry).
        assert written_since_marker(host) == ["/var/lib", probe]
    finally:
        host.check_output("rm -f %s" % probe)


def test_no_bad_input_wrote_a_file(bad_runs):
    assert dict((case, files) for case, files in bad_runs["written"].items() if files) == {}
    assert len(bad_runs["written"]) == 1 + sum(1 for case in bad_runs["results"]
                                              if case.split("-", 1)[-1] in HOST_INPUTS or case in HOST_INPUTS)


def test_no_bad_input_installed_started_or_created_anything(bad_runs):
    assert bad_runs["state"] == FRESH


def test_a_good_run_converges_the_fresh_host(host, fresh, supervisor_status):
    # Checked after the run, so that the run is judged even when an earlier case failed.
    started_from = host_state(host)
    rc, out = playbook("site.yml")
    assert rc == 0, out[-5000:]
    state = host_state(host)
    assert state["installed"] == sorted(PACKAGES)
    assert "supervisor.service" in state["units"]
    for name in ("elms-default-worker", "elms-video-worker"):
        assert host.file("%s/%s%s" % (EXPECT["include_dir"], name, EXPECT["extension"])).exists
    status = supervisor_status()
    workers = sorted(p for p in status if p.startswith(("elms-default-worker:", "elms-video-worker:")))
    assert workers == ["elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01",
                       "elms-video-worker:elms-video-worker_00"], status
    assert all(status[p][0] == "RUNNING" for p in workers), status
    assert started_from == FRESH, "an earlier bad input changed the host: this run was not a first converge"
