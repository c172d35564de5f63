"""The collection as other teams get it: a Galaxy tarball installed into an empty path."""

import os
import subprocess
import tarfile

import pytest

from conftest import EXPECT, ROOT, playbook

DEV_ONLY = ("tests/", "molecule/", ".venv/", ".build/", ".ci/", ".config/", ".git/", "Makefile",
            "requirements-dev.txt", ".yamllint", ".ansible-lint")
NEEDED = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "playbooks/site.yml",
          "playbooks/restart.yml", "playbooks/diagnose.yml", "playbooks/docker_config.yml",
          "plugins/modules/supervisor_facts.py", "roles/queue_workers/meta/argument_specs.yml",
          "changelogs/changelog.yaml")


def run(*argv, **env):
    done = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, **env))
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run("ansible-galaxy", "collection", "build", ROOT, "--output-path", str(out))
    (path,) = out.glob("elms-queue_workers-*.tar.gz")
    return str(path)


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """An empty collections path with only the tarball installed into it."""
    path = str(tmp_path_factory.mktemp("collections"))
    run("ansible-galaxy", "collection", "install", tarball, "-p", path, ANSIBLE_COLLECTIONS_PATH=path)
    return path


def test_the_tarball_holds_the_collection_and_no_dev_files(tarball):
    names = tarfile.open(tarball).getnames()
    assert [n for n in names if n.startswith(DEV_ONLY) or n in DEV_ONLY] == []
    assert [n for n in NEEDED if n not in names] == []


def test_the_installed_collection_is_the_only_one_found(installed):
    listing = run("ansible-galaxy", "collection", "list", "elms.queue_workers", ANSIBLE_COLLECTIONS_PATH=installed)
    # The collection paths it lists ('# PATH' lines; other lines may be warnings that name the venv's files).
    paths = [line[2:].strip() for line in listing.splitlines() if line.startswith("# ")]
    assert paths == [os.path.join(installed, "ansible_collections")], listing


def test_site_by_fqcn_from_the_tarball_deploys_the_workers(installed, supervisor_status):
    rc, out = playbook("elms.queue_workers.site", None, "-vv", ANSIBLE_COLLECTIONS_PATH=installed)
    assert rc == 0, out
    # The roles ran from the installed copy, not from this checkout.
    assert os.path.join(installed, "ansible_collections/elms/queue_workers/roles") in out
    states = supervisor_status()
    assert sorted(name for name, (state, _) in states.items() if state == "RUNNING") == [
        "elms-default-worker:elms-default-worker_00", "elms-default-worker:elms-default-worker_01",
        "elms-video-worker:elms-video-worker_00"]


def test_a_second_run_from_the_tarball_changes_nothing(installed, host):
    rc, out = playbook("elms.queue_workers.site", None, ANSIBLE_COLLECTIONS_PATH=installed)
    assert rc == 0, out
    assert "changed=0" in out
    assert host.file("%s/elms-video-worker%s" % (EXPECT["include_dir"], EXPECT["extension"])).is_file
