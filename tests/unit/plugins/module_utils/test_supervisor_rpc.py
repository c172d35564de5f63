"""supervisor_rpc reaches supervisord's XML-RPC API the way `supervisorctl -c CONFIG` does.

Endpoint resolution is checked on config texts; everything else against a real supervisord
(the one pinned in requirements-dev.txt), started on a unix socket in a temporary directory.
"""

import os
import socket
import time

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_layout as layout
from ansible_collections.elms.queue_workers.plugins.module_utils import supervisor_rpc as rpc

CONFIG = "/etc/supervisor/supervisord.conf"


def resolve(text, env=None):
    return rpc.endpoint(layout.parse_config(text), CONFIG, env)


# --- where and as whom supervisorctl connects -----------------------------------------

def unix(path, username=None, password=None):
    return {"url": "unix://" + path, "socket": path, "host": None, "port": None,
            "username": username, "password": password}


def inet(host, port, username=None, password=None):
    return {"url": "http://%s:%s" % (host, port), "socket": None, "host": host, "port": port,
            "username": username, "password": password}


@pytest.mark.parametrize("text, env, expected", [
    pytest.param("[unix_http_server]\nfile=%(here)s/run/supervisor.sock\n[supervisorctl]\n", None,
                 unix("/etc/supervisor/run/supervisor.sock"), id="unix-socket-relative-to-here"),
    pytest.param("[unix_http_server]\nfile=/run/a.sock\n[supervisorctl]\nserverurl=unix://%(here)s/../b.sock\n", None,
                 unix("/etc/b.sock"), id="supervisorctl-serverurl-wins"),
    pytest.param("[inet_http_server]\nport=127.0.0.1:9002\n[supervisorctl]\nserverurl=http://127.0.0.1:9002\n", None,
                 inet("127.0.0.1", 9002), id="inet-without-credentials"),
    pytest.param("[inet_http_server]\nport=*:9003\nusername=u\npassword=p\n"
                 "[supervisorctl]\nserverurl=http://localhost:9003\nusername=u\npassword=p\n", None,
                 inet("localhost", 9003, "u", "p"), id="inet-with-credentials"),
    pytest.param("[supervisorctl]\n", None, inet("localhost", 9001), id="supervisorctl-default-url"),
    pytest.param("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword=srvpw\n"
                 "[supervisorctl]\nusername=ctl\npassword=ctlpw ; comment\n", None,
                 unix("/run/s.sock", "ctl", "ctlpw"), id="supervisorctl-credentials-win"),
    pytest.param("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword=srvpw\n[supervisorctl]\n", None,
                 unix("/run/s.sock", "srv", "srvpw"), id="unix-server-credentials-as-fallback"),
    pytest.param("[inet_http_server]\nport=:9004\nusername=srv\npassword=srvpw\n[supervisorctl]\n", None,
                 inet("localhost", 9004, "srv", "srvpw"), id="inet-server-credentials-as-fallback"),
    pytest.param("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword={SHA}0123abcd\n[supervisorctl]\n", None,
                 unix("/run/s.sock"), id="hashed-server-password-not-sent"),
    pytest.param("[unix_http_server]\nfile=/run/s.sock\nusername=srv\npassword=srvpw\n[supervisorctl]\nusername=ctl\n", None,
                 unix("/run/s.sock", "ctl", None), id="half-supervisorctl-pair-kept-no-fallback"),
    pytest.param("[unix_http_server]\nfile=%(ENV_RUN)s/s.sock\n[supervisorctl]\nusername=%(ENV_SV_USER)s\n"
                 "password=%(ENV_SV_PASS)s\n", {"RUN": "/var/run", "SV_USER": "ops", "SV_PASS": "pw%"},
                 unix("/var/run/s.sock", "ops", "pw%"), id="env-expansion"),
])
def test_endpoint(text, env, expected):
    assert resolve(text, env) == expected


@pytest.mark.parametrize("text, words", [
    pytest.param("[supervisorctl]\nserverurl=https://host:9001\n", "unix:// and http://", id="https-unknown"),
    pytest.param("[supervisorctl]\nserverurl=http://host:port\n", "bad port", id="bad-port"),
    pytest.param("[unix_http_server]\nfile=/s.sock\n[supervisorctl]\npassword=%(ENV_NOPE)s\n", "ENV_NOPE", id="unknown-env"),
])
def test_endpoint_rejects(text, words):
    with pytest.raises(layout.LayoutError, match=words):
        resolve(text)


def test_missing_socket_names_the_path(tmp_path):
    path = str(tmp_path / "absent.sock")
    with pytest.raises(rpc.RPCError) as caught:
        rpc.Client(unix(path)).state()
    assert caught.value.code is None
    assert path in caught.value.message and "is supervisord running" in caught.value.message


def test_refused_inet_connection():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(rpc.RPCError) as caught:
        rpc.Client(inet("127.0.0.1", port)).state()
    assert caught.value.code is None
    assert "http://127.0.0.1:%s" % port in caught.value.message and "refused" in caught.value.message


def test_silent_server_times_out(tmp_path):
    path = str(tmp_path / "mute.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        started = time.monotonic()
        with pytest.raises(rpc.RPCError) as caught:
            rpc.Client(unix(path), timeout=0.5).state()
    assert caught.value.code is None and "within 0.5 seconds" in caught.value.message
    assert time.monotonic() - started < 5


def test_connect_reports_unreadable_config(tmp_path):
    with pytest.raises(rpc.RPCError, match="cannot read"):
        rpc.connect(str(tmp_path / "none.conf"))


# --- against a real supervisord -------------------------------------------------------

# The programs of the test supervisord (tests/unit/conftest.py: with a password, including conf.d/*.conf).
PROGRAMS = """
[program:sleeper]
command=/bin/sleep 1000

[program:dies]
command=/bin/false
autostart=false
startretries=0
stdout_logfile=NONE

[program:talker]
command=/bin/sh %(here)s/talker.sh

[program:slowstop]
command=/bin/sh %(here)s/slowstop.sh
stopwaitsecs=20
"""

# The last line ends in a two-byte character, so a tail of 3 bytes splits it.
TALKER = r"""printf 'hello from talker\n'
printf 'colour \033[32mgreen\033[0m\n'
printf 'caf\303\251!\n'
exec /bin/sleep 1000
"""

# Takes 2 seconds to stop, like a worker finishing its job.
SLOWSTOP = """trap 'sleep 2; exit 0' TERM
while :; do sleep 0.1; done
"""


def wait_for(check, seconds=20):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(supervisord_type):
    started = supervisord_type(PROGRAMS, files={"talker.sh": TALKER, "slowstop.sh": SLOWSTOP}, auth=True,
                               include="conf.d/*.conf", prefix="elms-rpc-").start()
    try:
        yield {"here": started.here, "config": started.config, "process": started.process}
    finally:
        started.remove()


@pytest.fixture
def client(server):
    return rpc.connect(server["config"])


def info(client, name):
    return {p["name"]: p for p in client.processes()}.get(name)


def write_program(server, name, command):
    with open(os.path.join(server["here"], "conf.d", name + ".conf"), "w") as handle:
        handle.write("[program:%s]\ncommand=%s\n" % (name, command))


def test_connect_uses_the_supervisorctl_section(server, client):
    assert client.endpoint == unix(os.path.join(server["here"], "supervisor.sock"), "admin", "s3cret")
    assert client.state() == "RUNNING"
    assert client.pid() == server["process"].pid


def test_processes_show_sleeper_running(client):
    sleeper = wait_for(lambda: (info(client, "sleeper") or {}).get("statename") == "RUNNING" and info(client, "sleeper"))
    assert sleeper and sleeper["group"] == "sleeper" and sleeper["pid"] > 0
    os.kill(sleeper["pid"], 0)  # a live process
    assert info(client, "dies")["statename"] == "STOPPED"


def test_reload_reports_added_changed_removed(server, client):
    write_program(server, "extra", "/bin/sleep 1000")
    assert client.reload_config() == (["extra"], [], [])
    assert client.add_group("extra") is True
    assert wait_for(lambda: info(client, "extra")["statename"] == "RUNNING")

    write_program(server, "extra", "/bin/sleep 999")
    assert client.reload_config() == ([], ["extra"], [])

    os.remove(os.path.join(server["here"], "conf.d", "extra.conf"))
    assert client.reload_config() == ([], [], ["extra"])
    client.stop_group("extra")
    assert info(client, "extra")["statename"] == "STOPPED"
    assert client.remove_group("extra") is True
    assert info(client, "extra") is None
    assert client.reload_config() == ([], [], [])


def test_broken_include_cannot_be_reread(server, client):
    broken = os.path.join(server["here"], "conf.d", "broken.conf")
    with open(broken, "w") as handle:
        handle.write("[program:broken]\nthis line is no option\n")
    try:
        with pytest.raises(rpc.RPCError) as caught:
            client.reload_config()
    finally:
        os.remove(broken)
    assert caught.value.code == rpc.CANT_REREAD
    assert broken in caught.value.message


def test_failing_program_reports_why(client):
    with pytest.raises(rpc.RPCError) as caught:
        client.start_process("dies", wait=True)
    assert caught.value.code in (rpc.SPAWN_ERROR, rpc.ABNORMAL_TERMINATION)
    dies = wait_for(lambda: info(client, "dies")["statename"] == "FATAL" and info(client, "dies"))
    assert dies and dies["spawnerr"]


def test_unknown_name_is_a_bad_name_fault(client):
    with pytest.raises(rpc.RPCError) as caught:
        client.start_process("nosuch")
    assert caught.value.code == rpc.BAD_NAME and "nosuch" in caught.value.message


def test_log_tail_returns_what_the_program_printed(client):
    assert wait_for(lambda: client.log_tail("talker").endswith(u"caf\u00e9!\n"))
    text = client.log_tail("talker")
    assert "hello from talker\n" in text
    assert u"colour \ufffd[32mgreen\ufffd[0m\n" in text  # control characters would break the XML
    assert client.log_tail("talker", 3) == "!\n"  # 3 bytes split the 'é'; supervisord fails on that
    assert client.log_tail("dies") == ""  # stdout_logfile=NONE


def test_waiting_stop_outlasts_the_client_timeout(server):
    client = rpc.connect(server["config"], timeout=1)
    assert wait_for(lambda: info(client, "slowstop")["statename"] == "RUNNING")
    started = time.monotonic()
    assert client.stop_process("slowstop") is True
    assert time.monotonic() - started >= 1.5
    assert info(client, "slowstop")["statename"] == "STOPPED"
    assert client.start_group("slowstop", wait=True)[0]["description"] == "OK"


@pytest.mark.parametrize("username, password, words", [
    pytest.param("admin", "wrong", "with username 'admin'", id="wrong-password"),
    pytest.param(None, None, "without credentials", id="no-credentials"),
    pytest.param("admin", None, "without credentials", id="half-pair-not-sent"),
])
def test_refused_login(client, username, password, words):
    where = dict(client.endpoint, username=username, password=password)
    with pytest.raises(rpc.RPCError) as caught:
        rpc.Client(where).state()
    assert caught.value.code is None
    assert "401" in caught.value.message and words in caught.value.message
    assert "[supervisorctl] username/password" in caught.value.message
