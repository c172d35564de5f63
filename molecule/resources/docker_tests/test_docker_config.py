"""The queue container config: supervisord runs it in the foreground as a container's
main process, the workers reach RUNNING, process a real job, and log to docker logs."""

import subprocess
import time

import pytest

from conftest import APP

INSTANCE = "elms-mol-docker_dev"
QUEUE = INSTANCE + "-queue"
IMAGE = "elms-scratch/docker-dev-queue:latest"
CONFIG = APP + "/docker/supervisor/supervisord.conf"


def docker(*args, check=True):
    done = subprocess.run(["docker"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check:
        assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def queue_container():
    docker("rm", "-f", QUEUE, check=False)
    docker("commit", INSTANCE, IMAGE)
    docker("run", "-d", "--name", QUEUE, "--network", "host", "--entrypoint", "supervisord", IMAGE, "-c", CONFIG)
    yield QUEUE
    docker("rm", "-f", QUEUE, check=False)
    docker("rmi", IMAGE, check=False)


def has_file(container, path):
    return subprocess.run(["docker", "exec", container, "test", "-f", path]).returncode == 0


def status(container):
    return docker("exec", container, "supervisorctl", "-c", CONFIG, "status", check=False)


def test_docker_config_is_in_the_app_repository(host):
    config = host.file(CONFIG)
    assert config.is_file
    assert config.content_string.startswith("; Managed by Ansible (elms.queue_workers).")
    assert "nodaemon=true" in config.content_string
    assert "[include]" not in config.content_string


def test_docker_config_runs_the_workers_in_the_foreground(queue_container):
    deadline = time.time() + 60
    while time.time() < deadline:
        lines = status(queue_container).splitlines()
        if sum(" RUNNING " in line for line in lines) == 3:
            break
        time.sleep(2)
    assert sum(" RUNNING " in line for line in lines) == 3, lines
    # supervisord is the container's main process, not a daemon that forked away.
    assert "supervisord" in docker("exec", queue_container, "cat", "/proc/1/cmdline")


def test_docker_config_workers_do_jobs_and_log_to_docker_logs(queue_container):
    docker("exec", "-w", APP, queue_container, "runuser", "-u", "www-data", "--",
           "php", "artisan", "elms:dispatch-ping", "docker-dev")
    marker = APP + "/storage/app/markers/docker-dev.json"
    deadline = time.time() + 60
    while time.time() < deadline and not has_file(queue_container, marker):
        time.sleep(1)
    assert has_file(queue_container, marker), docker("logs", queue_container)
    logs = docker("logs", queue_container)
    assert "WritePing" in logs, logs
    assert "success: elms-default-worker_00 entered RUNNING state" in logs, logs
