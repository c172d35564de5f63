# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolve a supervisord's config file and include layout the way supervisord does.

Everything here is pure: callers hand in command lines, file texts, working
directories and environments read from the live system, and get plain data back.
The rules mirror supervisor/options.py (4.x): getopt parsing of the command line,
the default search path, RawConfigParser with inline ';'/'#' comments, and the
[include] expansion (%(here)s, %(host_node_name)s, %(ENV_X)s, relative globs joined
to the config's directory).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import fnmatch
import getopt
import os
import re

# supervisord's own option table (ServerOptions.__init__), so that getopt splits a
# command line exactly as supervisord did: clustered flags (-nc FILE), glued values
# (-cFILE) and unambiguous long-option prefixes (--conf FILE) included.
SUPERVISORD_SHORT_OPTIONS = "h?c:vnu:m:d:l:y:z:e:j:i:q:a:kts"
SUPERVISORD_LONG_OPTIONS = [
    "help", "configuration=", "version", "nodaemon", "user=", "umask=",
    "directory=", "logfile=", "logfile_maxbytes=", "logfile_backups=",
    "loglevel=", "pidfile=", "identifier=", "childlogdir=", "minfds=",
    "minprocs=", "nocleanup", "strip_ansi", "profile_options=", "silent",
]
SUPERVISORD_NAMES = ("supervisord", "supervisord.py")
SUPERVISORD_MODULE = "supervisor.supervisord"
DEFAULT_SERVER_URL = "http://localhost:9001"

# Python interpreter options that take a value in the next argument.
_PYTHON_OPTIONS_WITH_VALUE = ("-W", "-X", "-Q")
_INTERPRETER_RE = re.compile(r"^(python|pypy)[0-9.]*$")
_GLOB_CHARS = re.compile(r"[*?\[]")
_INCLUDE_PATTERN = re.compile(r"^\*\.([^*?\[\]/]+)$")

# Directory prefixes that identify a platform's layout, most specific first.
_PLATFORM_INCLUDE_DIRS = (
    ("aapanel", "/www/server/panel/"),
    ("debian", "/etc/supervisor/conf.d"),
    ("rhel", "/etc/supervisord.d"),
    ("alpine", "/etc/supervisor.d"),
    ("plesk", "/etc/supervisord/conf.d"),
)
_SYSTEM_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")


class LayoutError(Exception):
    """A config or command line that supervisord itself would reject."""


def split_cmdline(raw):
    """Split the bytes of /proc/PID/cmdline into argv (NUL separated)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "surrogateescape")
    parts = raw.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_environ(raw):
    """Parse /proc/PID/environ into a dict."""
    env = {}
    for item in split_cmdline(raw):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return env


def supervisord_invocation(argv):
    """Recognise a supervisord command line.

    Returns None for any other process, else a dict with ``script`` (the path
    supervisord saw as sys.argv[0], None when run as ``python -m``),
    ``interpreter`` (or None) and ``args`` (supervisord's own arguments).
    """
    if not argv:
        return None
    first = os.path.basename(argv[0])
    if first in SUPERVISORD_NAMES:
        return {"script": argv[0], "interpreter": None, "args": list(argv[1:])}
    if not _INTERPRETER_RE.match(first):
        return None
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "-m":
            if index + 1 < len(argv) and argv[index + 1] == SUPERVISORD_MODULE:
                return {"script": None, "interpreter": argv[0], "args": list(argv[index + 2:])}
            return None
        if arg in ("-c", "-"):
            return None  # python -c CODE, or a script read from stdin
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        if os.path.basename(arg) in SUPERVISORD_NAMES:
            return {"script": arg, "interpreter": argv[0], "args": list(argv[index + 1:])}
        return None
    return None


def parse_supervisord_args(args):
    """Return supervisord's options as a dict of long name -> last value given."""
    try:
        opts, positional = getopt.getopt(list(args), SUPERVISORD_SHORT_OPTIONS, SUPERVISORD_LONG_OPTIONS)
    except getopt.GetoptError as exc:
        raise LayoutError("supervisord would reject its own command line: %s" % exc)
    short_to_long = {"-c": "configuration", "-d": "directory", "-n": "nodaemon", "-u": "user"}
    parsed = {}
    for name, value in opts:
        key = short_to_long.get(name, name.lstrip("-"))
        parsed[key] = value
    parsed["_positional"] = positional
    return parsed


def absolute(path, cwd):
    """Resolve a path the way the process saw it (relative to its working directory)."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    if not cwd:
        return None
    return os.path.normpath(os.path.join(cwd, path))


def search_paths(script, cwd):
    """supervisord's default config search order, as absolute paths.

    The first two entries depend on the script's location (sys.argv[0]); the
    next two on the working directory. Entries that cannot be resolved (a
    ``python -m`` start, an unknown cwd) are left out.
    """
    paths = []
    script_abs = absolute(script, cwd) if script else None
    if script_abs:
        prefix = os.path.dirname(os.path.dirname(script_abs))
        paths += [os.path.join(prefix, "etc", "supervisord.conf"), os.path.join(prefix, "supervisord.conf")]
    if cwd:
        paths += [os.path.join(cwd, "supervisord.conf"), os.path.join(cwd, "etc", "supervisord.conf")]
    paths += ["/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"]
    seen = []
    for path in paths:
        path = os.path.normpath(path)
        if path not in seen:
            seen.append(path)
    return seen


def first_existing(paths, exists):
    """The first path for which exists(path) is true, or None."""
    for path in paths:
        if exists(path):
            return path
    return None


def parse_config(text, source="<config>"):
    """Parse a supervisor config text with supervisor's own parser settings."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        raise LayoutError("%s cannot be parsed the way supervisord parses it: %s" % (source, exc))
    return parser


def _expansions(here, env, host_node_name):
    expansions = {"here": here, "host_node_name": host_node_name or ""}
    for key, value in (env or {}).items():
        expansions["ENV_%s" % key] = value
    return expansions


def expand(value, here, env, host_node_name, name):
    """Apply supervisor's %(name)s expansion to one option value."""
    value = value.replace("%(here)s", here)
    try:
        return value % _expansions(here, env, host_node_name)
    except KeyError as exc:
        raise LayoutError(
            "%s = %r names %s, which supervisord cannot expand (only %%(here)s, %%(host_node_name)s "
            "and %%(ENV_X)s of its own environment are known)" % (name, value, exc))
    except (ValueError, TypeError) as exc:
        raise LayoutError("%s = %r is badly formatted: %s" % (name, value, exc))


def include_globs(parser, config_path, env=None, host_node_name=""):
    """The [include] files globs, expanded and made absolute, in file order."""
    if not parser.has_section("include"):
        return []
    if not parser.has_option("include", "files"):
        raise LayoutError("%s has an [include] section but no 'files' setting" % config_path)
    here = os.path.dirname(os.path.abspath(config_path))
    value = expand(parser.get("include", "files"), here, env, host_node_name, "[include] files")
    return [os.path.normpath(os.path.join(here, pattern)) for pattern in value.split()]


def split_include_glob(pattern):
    """(directory, extension) for a glob of the form DIR/*.EXT, else None."""
    directory, base = os.path.split(pattern)
    match = _INCLUDE_PATTERN.match(base)
    if not match or not directory or _GLOB_CHARS.search(directory):
        return None
    return directory, "." + match.group(1)


def choose_include(globs, include_dir=None, include_extension=None):
    """Pick where program files go: the first DIR/*.EXT glob, or a checked override.

    Returns (directory, extension, error). An override must be a place supervisord
    actually loads, i.e. DIR/anything.EXT must match one of the globs.
    """
    if include_dir or include_extension:
        if not (include_dir and include_extension):
            return None, None, "include_dir and include_extension must be given together"
        if not include_extension.startswith("."):
            include_extension = "." + include_extension
        probe = os.path.join(os.path.normpath(include_dir), "elms-probe" + include_extension)
        if any(fnmatch.fnmatchcase(probe, pattern) for pattern in globs):
            return os.path.normpath(include_dir), include_extension, None
        return None, None, (
            "%s/*%s is not loaded by this supervisord: its [include] files are %s"
            % (include_dir, include_extension, " ".join(globs) or "(none)"))
    for pattern in globs:
        found = split_include_glob(pattern)
        if found:
            return found[0], found[1], None
    if not globs:
        return None, None, "the config has no [include] section, so supervisord loads no program files from a directory"
    return None, None, "no [include] glob has the form DIR/*.EXT (found: %s)" % " ".join(globs)


def server_url(parser, config_path, env=None):
    """The URL supervisorctl uses with this config ([supervisorctl] serverurl).

    Falls back to the server supervisord itself listens on when the config has no
    serverurl, so a report can still say where to connect.
    """
    here = os.path.dirname(os.path.abspath(config_path))
    if parser.has_option("supervisorctl", "serverurl"):
        url = expand(parser.get("supervisorctl", "serverurl"), here, env, "", "[supervisorctl] serverurl")
        if url.startswith("unix://"):
            url = "unix://" + os.path.normpath(os.path.join(here, url[len("unix://"):]))
        return url
    if parser.has_option("unix_http_server", "file"):
        path = expand(parser.get("unix_http_server", "file"), here, env, "", "[unix_http_server] file")
        return "unix://" + os.path.normpath(os.path.join(here, path))
    if parser.has_option("inet_http_server", "port"):
        port = parser.get("inet_http_server", "port").strip()
        host, _sep, number = port.rpartition(":")
        return "http://%s:%s" % (host if host and host != "*" else "localhost", number)
    return DEFAULT_SERVER_URL


def guess_platform(supervisord_path, include_dir, globs):
    """Name the layout: from where the program files go, then from the binary."""
    places = [supervisord_path or "", include_dir or ""] + list(globs or [])
    if any(place.startswith("/www/server/panel/") for place in places):
        return "aapanel"
    for name, prefix in _PLATFORM_INCLUDE_DIRS[1:]:
        if include_dir and (include_dir == prefix or include_dir.startswith(prefix + "/")):
            return name
    if supervisord_path and os.path.dirname(supervisord_path) not in _SYSTEM_BIN_DIRS:
        return "pip"
    return "unknown"


def systemd_unit(cgroup_text):
    """The systemd service a process belongs to, from /proc/PID/cgroup, or None."""
    for line in (cgroup_text or "").splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith(".service"):
                return part[:-len(".service")]
    return None


def parse_version(text):
    """The first version number in supervisord/supervisorctl output (stdout only)."""
    for line in (text or "").splitlines():
        match = re.match(r"^\s*(\d+\.\d+(?:\.\d+)?(?:[a-z0-9.+-]*)?)\s*$", line)
        if match:
            return match.group(1)
    return None
