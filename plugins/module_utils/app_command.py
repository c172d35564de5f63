# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a command in an app as its user, from a module (diagnosis, canary)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import shlex

C_ENV = {"LC_ALL": "C"}


def as_user_prefix(module, user):
    """argv prefix that runs a command as the worker user, or None when this cannot be done."""
    if pwd.getpwuid(os.geteuid()).pw_name == user:
        return []
    if os.geteuid() != 0:
        return None
    runuser = module.get_bin_path("runuser")
    if runuser:
        return [runuser, "-u", user, "--"]
    return ["su", "-s", "/bin/sh", user, "-c", '"$0" "$@"']


def run_as(module, prefix, argv, cwd=None, timeout=90):
    """Run argv with the prefix of as_user_prefix(), killed after timeout seconds; (rc, out, err)."""
    limit = module.get_bin_path("timeout")
    argv = ([limit, str(timeout)] if limit else []) + list(argv)
    if prefix and prefix[0] == "su":
        argv = prefix[:-1] + [" ".join(shlex.quote(a) for a in argv)]
    else:
        argv = (prefix or []) + argv
    return module.run_command(argv, cwd=cwd, environ_update=C_ENV)
