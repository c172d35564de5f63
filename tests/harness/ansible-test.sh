#!/usr/bin/env bash
# ansible-test sanity and units for elms.queue_workers, the way Galaxy checks collections:
# the ignore files stay empty, so every finding is fixed in the code.
#
# Run by `make sanity`, or by hand from the checkout: bash tests/harness/ansible-test.sh
# (after `make venv`). Extra arguments go to both commands, e.g. --verbose.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The pinned toolchain (ansible-core decides which ansible-test runs); make already puts it first.
export PATH="$root/.venv/bin:$PATH"
command -v ansible-test >/dev/null || { echo "ansible-test not found: run 'make venv' first" >&2; exit 1; }
# The host's Python: the other versions ansible-test knows are not installed here
# (ANSIBLE_TEST_PYTHON for another controller's, such as the newest_core scenario's 3.13).
python_version=${ANSIBLE_TEST_PYTHON:-3.11}

# ansible-test and pytest resolve the working directory to its physical path. From the
# .build/collections/ansible_collections/elms/queue_workers link that is the checkout itself,
# outside any ansible_collections/ tree: `ansible-test units` then cannot import the
# collection, and --venv re-runs ansible-test from that path. So the files git sees
# (tracked and new, not ignored) are copied to a real directory of that shape. Its
# tests/output holds the venvs ansible-test made for the last run and is kept.
link="$root/.build/collections/ansible_collections/elms/queue_workers"
copy="$root/.build/ansible-test/ansible_collections/elms/queue_workers"
[[ -e $link ]] || { echo "$link is missing: run 'make collection' first" >&2; exit 1; }
cd "$link"
kept="$root/.build/ansible-test/output"
rm -rf "$kept"
if [[ -d $copy/tests/output ]]; then mv "$copy/tests/output" "$kept"; fi
rm -rf "$copy"
mkdir -p "$copy"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' path; do
        # a tracked file deleted in the work tree is not part of what is tested
        if [[ -e $path || -L $path ]]; then printf '%s\0' "$path"; fi
    done |
    tar --null -T - -cf - | tar -xf - -C "$copy"
# ansible-test lists the files to test with git from the nearest repository up the tree;
# without one of its own the copy would be the checkout's ignored .build/ and have none.
git -C "$copy" init -q
if [[ -d $kept ]]; then mkdir -p "$copy/tests" && mv "$kept" "$copy/tests/output"; fi

# ansible-test makes each venv without pip, then runs pip's get-pip.py bootstrap script,
# which it downloads from its own CI file host into ~/.ansible/test/cache. Where that host
# cannot be reached, this stand-in does the same from PyPI: the bundled pip (ensurepip),
# then the pip version ansible-test asked for. An existing script is left as it is.
pip_version=$(PYTHON_VERSION=$python_version python - <<'EOF'
import os
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version=os.environ["PYTHON_VERSION"]))["pip"])
EOF
)
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -e $get_pip ]]; then
    mkdir -p "$(dirname "$get_pip")"
    cat >"$get_pip.tmp" <<'EOF'
"""Stand-in for get-pip.py: bootstrap pip from ensurepip, then install the requested packages from the index."""
import subprocess
import sys

flags = ("--no-setuptools", "--no-wheel")
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + [a for a in sys.argv[1:] if a not in flags])
if "--no-setuptools" in sys.argv:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
EOF
    mv "$get_pip.tmp" "$get_pip"
fi

cd "$copy"

# Findings are fixed, never ignored: an ignore file with an entry fails the run.
for ignore in tests/sanity/ignore-*.txt; do
    if [[ -s $ignore ]]; then
        echo "$ignore is not empty: fix the findings it lists in the code instead" >&2
        exit 1
    fi
done

# Sanity covers what the collection ships plus its unit tests. molecule/ and the rest of
# tests/ (the container harness, fixture app, images, benchmarks) are not in the Galaxy
# tarball (build_ignore) and are not Ansible content, so they are left out.
excludes=(--exclude molecule/)
for dir in tests/*/; do
    case $dir in
        tests/unit/ | tests/sanity/ | tests/output/) ;;
        *) excludes+=(--exclude "$dir") ;;
    esac
done

# --venv: the test commands run in venvs ansible-test makes and fills from its own pinned
# requirements (cached under ~/.ansible/test/venv for sanity, tests/output/.tmp for units),
# never in the project's .venv.
# Both always run, so one run shows every finding.
sanity=0 units=0
SECONDS=0
ansible-test sanity --venv --python "$python_version" "${excludes[@]}" "$@" || sanity=$?
echo "ansible-test sanity: exit $sanity after ${SECONDS}s"
SECONDS=0
ansible-test units --venv --python "$python_version" "$@" || units=$?
echo "ansible-test units: exit $units after ${SECONDS}s"
exit $((sanity || units))
