# -*- coding: utf-8 -*-
# Copyright: (c) 2026, eLMS infrastructure team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client of supervisord's XML-RPC API, reached the way `supervisorctl -c CONFIG` does.

supervisorctl is itself a client of this API on the same socket; calling it directly gives
structured states and fault codes instead of text to parse. Standard library only, so it
runs under any interpreter on the host (no supervisor import needed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import http.client
import os
import re
import socket
import xmlrpc.client
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout

# Fault codes, as in supervisor/xmlrpc.py (class Faults).
SHUTDOWN_STATE = 6
BAD_NAME = 10
NO_FILE = 20
NOT_EXECUTABLE = 21
FAILED = 30
ABNORMAL_TERMINATION = 40
SPAWN_ERROR = 50
ALREADY_STARTED = 60
NOT_RUNNING = 70
SUCCESS = 80
ALREADY_ADDED = 90
STILL_RUNNING = 91
CANT_REREAD = 92

# supervisord sends log text as is; control characters (ANSI colours) are not allowed in
# XML 1.0 and would make the whole answer unreadable, so they become U+FFFD.
_XML_INVALID = re.compile(b"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_KEEP = object()


class RPCError(Exception):
    """A fault from supervisord (code = fault code), or code None when it could not be reached."""

    def __init__(self, code, message):
        super(RPCError, self).__init__(message)
        self.code = code
        self.message = message


class _ServerError(RPCError):
    """supervisord answered HTTP 500: the method itself crashed."""


def endpoint(parser, config_path, env=None):
    """Where and as whom supervisorctl -c config_path connects.

    Credentials are [supervisorctl] username/password (supervisorctl sends them only
    when both are set). When that section sets neither, the server section's pair is
    used instead: supervisorctl would be refused there, but whoever reads this file
    (root) may use them. A {SHA} hashed server password cannot be sent, so none is.
    Raises supervisor_layout.LayoutError for values supervisorctl could not use.
    """
    url = supervisor_layout.server_url(parser, config_path, env)
    here = os.path.dirname(os.path.abspath(config_path))
    username, password = _credentials(parser, "supervisorctl", here, env)
    if username is None and password is None:
        section = "unix_http_server" if url.startswith("unix://") else "inet_http_server"
        username, password = _credentials(parser, section, here, env)
        if username is None or password is None or password.startswith("{SHA}"):
            username = password = None
    result = {"url": url, "socket": None, "host": None, "port": None, "username": username, "password": password}
    if url.startswith("unix://"):
        result["socket"] = url[len("unix://"):]
    elif url.startswith("http://"):
        parts = urlsplit(url)
        try:
            result["host"], result["port"] = parts.hostname or "localhost", parts.port or 80
        except ValueError as exc:
            raise supervisor_layout.LayoutError("serverurl %s has a bad port: %s" % (url, exc))
    else:
        raise supervisor_layout.LayoutError("serverurl %s: supervisorctl only knows unix:// and http:// URLs" % url)
    return result


def _credentials(parser, section, here, env):
    values = []
    for option in ("username", "password"):
        value = None
        if parser.has_option(section, option):
            value = supervisor_layout.expand(parser.get(section, option), here, env, "", "[%s] %s" % (section, option))
        values.append(value)
    return tuple(values)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super(_UnixHTTPConnection, self).__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(xmlrpc.client.Transport):
    """HTTP over the unix socket or TCP, with basic auth and a socket timeout (None = none)."""

    def __init__(self, where, timeout):
        headers = []
        if where["username"] is not None and where["password"] is not None:
            pair = ("%s:%s" % (where["username"], where["password"])).encode("utf-8")
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
        super(_Transport, self).__init__(headers=headers)
        self.where = where
        self.timeout = timeout

    def make_connection(self, host):
        if self.where["socket"]:
            conn = _UnixHTTPConnection(self.where["socket"], self.timeout)
        else:
            conn = http.client.HTTPConnection(self.where["host"], self.where["port"], timeout=self.timeout)
        self._connection = host, conn
        return conn

    def parse_response(self, response):
        parser, unmarshaller = self.getparser()
        parser.feed(_XML_INVALID.sub(u"\ufffd".encode("utf-8"), response.read()))
        parser.close()
        return unmarshaller.close()


class Client:
    """supervisord's API as small methods; every failure is an RPCError."""

    def __init__(self, where, timeout=30):
        self.endpoint = where
        self.timeout = timeout

    def call(self, method, *args, timeout=_KEEP):
        """Call supervisor.METHOD(*args); timeout=None waits as long as supervisord takes."""
        timeout = self.timeout if timeout is _KEEP else timeout
        url = self.endpoint["url"]
        transport = _Transport(self.endpoint, timeout)
        proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)
        try:
            return getattr(proxy, "supervisor." + method)(*args)
        except xmlrpc.client.Fault as exc:
            raise RPCError(exc.faultCode, exc.faultString)
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                sent = "without credentials"
                if self.endpoint["username"] is not None and self.endpoint["password"] is not None:
                    sent = "with username %r" % self.endpoint["username"]
                raise RPCError(None, "supervisord at %s refused the login %s (401 Unauthorized): set [supervisorctl] "
                               "username/password to the ones of the server section" % (url, sent))
            error = _ServerError if exc.errcode == 500 else RPCError
            raise error(None, "supervisord at %s answered %s() with HTTP %s %s" % (url, method, exc.errcode, exc.errmsg))
        except FileNotFoundError:
            raise RPCError(None, "cannot reach supervisord: socket %s does not exist (is supervisord running with "
                           "this config? is [supervisorctl] serverurl right?)" % self.endpoint["socket"])
        except ConnectionRefusedError:
            raise RPCError(None, "cannot reach supervisord at %s: connection refused (is supervisord running? "
                           "is [supervisorctl] serverurl right?)" % url)
        except PermissionError:
            raise RPCError(None, "cannot reach supervisord at %s: permission denied (run as root, or check "
                           "[unix_http_server] chmod/chown)" % url)
        except socket.timeout:
            raise RPCError(None, "supervisord at %s did not answer %s() within %s seconds" % (url, method, timeout))
        except (OSError, http.client.HTTPException, ExpatError) as exc:
            raise RPCError(None, "cannot talk to supervisord at %s (%s() failed: %s)" % (url, method, exc))
        finally:
            transport.close()

    def state(self):
        return self.call("getState")["statename"]

    def processes(self):
        return self.call("getAllProcessInfo")

    def reload_config(self):
        """(added, changed, removed) group names, what `supervisorctl reread` prints."""
        added, changed, removed = self.call("reloadConfig")[0]
        return added, changed, removed

    def add_group(self, name):
        return self.call("addProcessGroup", name)

    def remove_group(self, name):
        return self.call("removeProcessGroup", name)

    # Waiting calls last as long as supervisord takes (a worker finishing a long job
    # before it stops, startsecs before RUNNING), so they have no socket timeout.
    def stop_group(self, name, wait=True):
        return self.call("stopProcessGroup", name, wait, timeout=None if wait else _KEEP)

    def start_group(self, name, wait=False):
        return self.call("startProcessGroup", name, wait, timeout=None if wait else _KEEP)

    def start_process(self, name, wait=False):
        return self.call("startProcess", name, wait, timeout=None if wait else _KEEP)

    def stop_process(self, name, wait=True):
        return self.call("stopProcess", name, wait, timeout=None if wait else _KEEP)

    def log_tail(self, name, length=2000):
        """The last `length` bytes of the process's stdout log as text ('' without a log).

        supervisord decodes the bytes as UTF-8 and fails (HTTP 500) when the cut splits a
        character, so up to three bytes less are asked for before giving up.
        """
        trim = 0
        while True:
            try:
                return self.call("readProcessStdoutLog", name, -max(length - trim, 1), 0)
            except _ServerError as exc:
                if trim == 3:
                    raise RPCError(None, "%s (the log of %s is probably not UTF-8 text)" % (exc.message, name))
                trim += 1
            except RPCError as exc:
                if exc.code == NO_FILE:
                    return ""
                raise

    def pid(self):
        return self.call("getPID")


def connect(config_path, env=None, timeout=30):
    """A Client for supervisorctl -c config_path; env (default os.environ) expands %(ENV_X)s."""
    try:
        with open(config_path) as handle:
            text = handle.read()
    except OSError as exc:
        raise RPCError(None, "cannot read %s to find supervisord: %s" % (config_path, exc))
    parser = supervisor_layout.parse_config(text, config_path)
    return Client(endpoint(parser, config_path, dict(os.environ) if env is None else env), timeout)
