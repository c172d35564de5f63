"""The execution environment definition (meta/execution-environment.yml), through the real ansible-builder.

`ansible-builder create` writes the build context an image is built from; a full image build
needs the platform's base EE, which cannot be pulled where these tests run, so the context is
what is checked: the Containerfile, and that the collection tarball, the collection, Python
and system requirements land in context/_build. `ansible-builder introspect` then reads the
collection the way every execution environment build that installs it does.
"""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
META = os.path.join(ROOT, "meta")
DEFINITION = os.path.join(META, "execution-environment.yml")


def definition():
    with open(DEFINITION, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def run(argv, cwd, **env):
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", **env))
    assert done.returncode == 0, "%s\n%s" % (" ".join(argv), done.stdout)
    return done.stdout


def version():
    return yaml.safe_load(read(os.path.join(ROOT, "galaxy.yml")))["version"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """What `ansible-galaxy collection build` and the definition leave in a checkout's root.

    The root's execution-environment.yml link and meta/ are copied as they are (the link
    stays a link), next to a tarball built from this checkout, so that nothing is written
    into the checkout itself.
    """
    root = tmp_path_factory.mktemp("checkout")
    run([sys.executable, "-m", "ansible.cli.galaxy", "collection", "build", ROOT, "--output-path", str(root)], str(root))
    shutil.copytree(META, str(root / "meta"))
    link = os.path.join(ROOT, "execution-environment.yml")
    assert os.readlink(link) == "meta/execution-environment.yml", "the root's execution-environment.yml must link to meta/"
    os.symlink(os.readlink(link), str(root / "execution-environment.yml"))
    return root


@pytest.fixture(scope="module")
def context(checkout):
    """The build context the real `ansible-builder create` writes, run from the checkout's root."""
    out = run([sys.executable, "-m", "ansible_builder", "create", "-f", "execution-environment.yml",
               "-c", "context", "--output-filename", "Containerfile"], str(checkout))
    assert "No matches" not in out, out
    return checkout / "context"


def test_the_definition_is_ansible_builder_v3():
    assert definition()["version"] == 3


def test_the_base_image_is_a_bare_name_without_a_registry():
    name = definition()["images"]["base_image"]["name"]
    assert "/" not in name and ":" in name, name


def test_the_containerfile_takes_the_base_image_as_a_build_argument(context):
    containerfile = read(str(context / "Containerfile"))
    assert 'ARG EE_BASE_IMAGE="%s"' % definition()["images"]["base_image"]["name"] in containerfile
    assert re.search(r"^FROM \$EE_BASE_IMAGE as base$", containerfile, re.M), containerfile


def test_the_containerfile_installs_the_tested_ansible_core_and_runner(context):
    pins = re.findall(r"^(ansible-core|ansible-runner)==(\S+)", read(os.path.join(ROOT, "requirements-dev.txt")), re.M)
    assert len(pins) == 2, "requirements-dev.txt must pin ansible-core and ansible-runner"
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', read(str(context / "Containerfile")), re.M)
    assert refs and sorted(refs.group(1).split()) == sorted("%s==%s" % pin for pin in pins)


@pytest.mark.parametrize("source, built", [
    ("ee-requirements.yml", "requirements.yml"),
    ("ee-requirements.txt", "requirements.txt"),
    ("ee-bindep.txt", "bindep.txt"),
])
def test_the_requirement_files_land_in_the_build_directory(context, source, built):
    assert read(str(context / "_build" / built)) == read(os.path.join(META, source))


def test_the_collection_tarball_lands_where_the_galaxy_requirements_name_it(context):
    # The galaxy stage runs `ansible-galaxy collection install -r requirements.yml` in a
    # copy of _build, so a requirement's file path is relative to _build.
    build = context / "_build"
    requirements = yaml.safe_load(read(str(build / "requirements.yml")))
    files = [entry["name"] for entry in requirements["collections"] if entry.get("type") == "file"]
    assert files == ["collections/elms-queue_workers-%s.tar.gz" % version()]
    assert [path for path in files if not (build / path).is_file()] == []


def test_every_file_the_definition_names_exists_from_the_collection_root():
    # Relative to the root: the paths ansible-builder reads from an installed collection,
    # and from the root's link when it builds from the checkout.
    dependencies = definition()["dependencies"]
    named = [dependencies[key] for key in ("galaxy", "python", "system")]
    assert [path for path in named if not os.path.isfile(os.path.join(ROOT, path))] == []


def test_a_build_that_installs_the_collection_gets_its_requirements(checkout):
    """`ansible-builder introspect` reads the installed collection as every EE build does."""
    collections = checkout / "installed"
    (tarball,) = glob.glob(str(checkout / "elms-queue_workers-*.tar.gz"))
    # An empty collections path: the checkout's own copy must not count as installed.
    run([sys.executable, "-m", "ansible.cli.galaxy", "collection", "install", tarball, "-p", str(collections)],
        str(checkout), ANSIBLE_COLLECTIONS_PATH=str(collections))
    found = yaml.safe_load(run([sys.executable, "-m", "ansible_builder", "introspect", str(collections)],
                               str(checkout)).split("---", 1)[1])
    bindep = [line for line in read(os.path.join(META, "ee-bindep.txt")).splitlines() if line and not line.startswith("#")]
    assert found["system"] == ["%s  # from collection elms.queue_workers" % line for line in bindep]
    assert found["python"] == []


def controller_modules():
    """The collection's Python that runs on the controller: every plugin but modules, and the module_utils they import."""
    paths = [path for path in glob.glob(os.path.join(ROOT, "plugins", "*", "*.py"))
             if os.path.basename(os.path.dirname(path)) not in ("modules", "module_utils", "doc_fragments")]
    seen = set()
    while paths:
        path = paths.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported(path):
            prefix = "ansible_collections.elms.queue_workers.plugins.module_utils"
            if name.startswith(prefix + "."):
                paths.append(os.path.join(ROOT, "plugins", "module_utils", name[len(prefix) + 1:].split(".")[0] + ".py"))
    return sorted(seen)


def imported(path):
    names = []
    for node in ast.walk(ast.parse(read(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names += [node.module + "." + alias.name for alias in node.names]
    return names


def test_controller_side_plugins_import_nothing_the_execution_environment_lacks():
    listed = {re.split(r"[\s<>=!~\[;]", line, maxsplit=1)[0].lower().replace("_", "-")
              for line in read(os.path.join(META, "ee-requirements.txt")).splitlines() if line.strip() and not line.startswith("#")}
    modules = controller_modules()
    assert os.path.join(ROOT, "plugins", "filter", "queue_workers.py") in modules
    missing = set()
    for path in modules:
        for name in imported(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("ansible", "ansible_collections", "__future__"):
                continue
            if top.lower().replace("_", "-") not in listed:
                missing.add("%s imports %s" % (os.path.relpath(path, ROOT), name))
    assert sorted(missing) == [], "add them to meta/ee-requirements.txt"
