"""Role READMEs are generated from the argument specs and must be up to date."""

import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "role_readmes.py")


def test_role_readmes_match_the_argument_specs():
    done = subprocess.run([sys.executable, TOOL, "--check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout
