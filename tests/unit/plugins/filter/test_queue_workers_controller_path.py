"""queue_workers_controller_path: where the diagnosis writes its reports on the controller."""

import os

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.elms.queue_workers.plugins.filter.queue_workers import queue_workers_controller_path


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return os.path.realpath(str(tmp_path))


def test_a_relative_path_is_taken_from_the_working_directory(cwd):
    assert os.path.realpath(queue_workers_controller_path("diagnose-reports")) == os.path.join(cwd, "diagnose-reports")


def test_an_empty_base_is_the_working_directory(cwd):
    assert os.path.realpath(queue_workers_controller_path("diagnose-reports", "")) == os.path.join(cwd, "diagnose-reports")


def test_a_relative_path_is_taken_from_the_base_when_one_is_given(cwd):
    assert queue_workers_controller_path("diagnose-reports", "/runner/artifacts/42") == "/runner/artifacts/42/diagnose-reports"


@pytest.mark.parametrize("base", ["", "/runner/artifacts/42"])
def test_an_absolute_path_is_kept(cwd, base):
    assert queue_workers_controller_path("/var/tmp/elms/../reports", base) == "/var/tmp/reports"


def test_the_home_directory_is_expanded(monkeypatch, cwd):
    monkeypatch.setenv("HOME", "/home/ops")
    assert queue_workers_controller_path("~/reports", "/runner/artifacts/42") == "/home/ops/reports"


def test_a_relative_base_is_refused_naming_it(cwd):
    with pytest.raises(AnsibleFilterError, match="base must be an absolute directory, got 'artifacts'"):
        queue_workers_controller_path("reports", "artifacts")
