"""supervisor_programs' tool id, against the ffmpeg role's stamp: the same id from ldd, from the
role's list of libraries, and from the role's own shell pipeline; and a replaced library changes it.

Runs the real ldd on a real binary of this machine (python's own, which links libc at least)."""

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.elms.queue_workers.plugins.modules import supervisor_programs

LDD = shutil.which("ldd")
pytestmark = pytest.mark.skipif(LDD is None, reason="no ldd on this machine (not glibc)")

# The ffmpeg role's pipeline (roles/ffmpeg/tasks/verify.yml), with $real and $stamp as arguments.
ROLE_STAMP = r"""
set -eo pipefail
real=$1; stamp=$2
(ldd "$real" 2>/dev/null || true) | { grep -o '/[^ ]*' || true; } | LC_ALL=C sort -u | xargs -r readlink -f \
  > "$stamp.libs"
libs=$(xargs -r stat -c '%n:%s:%Y' < "$stamp.libs" | sha256sum | cut -c1-16)
printf '%s:%s:%s;%s' "$real" "$(stat -c %s "$real")" "$(stat -c %Y "$real")" "$libs" > "$stamp"
"""


class Module:
    """What tool_id uses of AnsibleModule, for real: PATH look-ups and commands run."""

    def __init__(self):
        self.commands = []

    def get_bin_path(self, name):
        return shutil.which(name)

    def run_command(self, argv, environ_update=None):
        self.commands.append(argv)
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=dict(os.environ, **(environ_update or {})), check=False)
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def binary(tmp_path):
    """A copy of python's binary, whose mtime the test may change."""
    real = os.path.realpath(sys.executable)
    copy = tmp_path / "tool"
    shutil.copy2(real, copy)
    return str(copy)


def role_stamp(binary, tmp_path):
    stamp = tmp_path / "stamp"
    subprocess.run(["bash", "-c", ROLE_STAMP, "stamp", binary, str(stamp)], check=True)
    return stamp.read_text(), str(stamp) + ".libs"


def test_the_listed_libraries_give_the_roles_id_without_running_ldd(binary, tmp_path):
    stamp, listed = role_stamp(binary, tmp_path)
    assert any(line.startswith("/") for line in open(listed).read().splitlines()), "ldd listed no library"
    from_ldd = Module()
    assert supervisor_programs.tool_id(from_ldd, binary) == stamp
    assert from_ldd.commands and from_ldd.commands[0][0] == LDD
    from_list = Module()
    assert supervisor_programs.tool_id(from_list, binary, listed) == stamp
    assert from_list.commands == []


def test_a_stamp_without_a_list_falls_back_to_ldd(binary, tmp_path):
    stamp, listed = role_stamp(binary, tmp_path)
    os.unlink(listed)
    module = Module()
    assert supervisor_programs.tool_id(module, binary, listed) == stamp
    assert module.commands, "ldd was not run"


def test_a_replaced_library_or_binary_changes_the_id(binary, tmp_path):
    stamp, listed = role_stamp(binary, tmp_path)
    # A listed library that is replaced (an upgraded libavcodec): a copy of the first one stands in for it.
    libraries = [line for line in open(listed).read().splitlines() if line.startswith("/")]
    fake = tmp_path / "libfake.so"
    shutil.copy2(libraries[0], fake)
    with open(listed, "w") as out:
        out.write("\n".join([str(fake)] + libraries[1:]) + "\n")
    before = supervisor_programs.tool_id(Module(), binary, listed)
    with open(fake, "ab") as out:
        out.write(b"\0")
    assert supervisor_programs.tool_id(Module(), binary, listed) != before
    # The binary itself.
    os.utime(binary, (1, 1))
    assert supervisor_programs.tool_id(Module(), binary, listed).split(";")[0] != stamp.split(";")[0]
