"""Bad input on a fresh host fails before anything is installed, started or written.

The host has PHP and the Laravel app but neither supervisor nor FFmpeg, so a run that
gets past its checks shows at once: a package installed, a service or a process started,
a file written. Every bad input is run through the site playbook, also limited with
--tags; the last check is one good run, the first converge of this host from nothing.
These tests run in file order.
"""

import json

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
# Where a package install, a program file, a log directory or a stamp would be written.
WATCHED = ("/etc", APP, "/var/lib/dpkg", "/opt", "/usr/bin", "/usr/local")
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
                      ["missing required arguments: queue", "queue_workers_programs"]),
    "numprocs-zero": (programs(dict(DEFAULT_WORKER, numprocs=0)),
                      ["queue_workers_programs[0] (elms-default-worker).numprocs = 0", "from 1 to 64"]),
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
}
BAD_INPUTS = [pytest.param(extra, words, id=name)
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
    """Every file, directory or link under WATCHED that changed after the marker."""
    found = host.run("find %s -xdev -newer %s -print 2>/dev/null" % (" ".join(WATCHED), MARKER))
    return sorted(found.stdout.split())


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


def assert_fails_changing_nothing(host, extra_vars, words, *args):
    before = host_state(host)
    touch_marker(host)
    rc, out = playbook("site.yml", None, "-e", json.dumps(extra_vars), *args)
    text = readable(out)
    assert rc != 0, out[-3000:]
    for word in words:
        assert word in text, out[-3000:]
    # The error alone, not the whole argument spec after it.
    assert "argument_spec_data" not in out
    assert written_since_marker(host) == []
    assert host_state(host) == before


def test_the_host_starts_without_supervisor_or_ffmpeg(fresh):
    assert fresh == FRESH


@pytest.mark.parametrize("extra_vars, words", BAD_INPUTS)
def test_bad_input_fails_before_anything_changes(host, fresh, extra_vars, words):
    assert_fails_changing_nothing(host, extra_vars, words)


@pytest.mark.parametrize("tag, name", TAGGED_INPUTS)
def test_bad_input_fails_before_anything_changes_when_limited_by_tags(host, fresh, tag, name):
    extra_vars, words = dict(CONTROLLER_INPUTS, **HOST_INPUTS)[name]
    assert_fails_changing_nothing(host, extra_vars, words, "--tags", tag)


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
