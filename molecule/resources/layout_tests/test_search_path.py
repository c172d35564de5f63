"""No config option: the cwd's supervisord.conf wins over /etc/supervisor's."""

import pytest

pytestmark = pytest.mark.layout("search_path")


def test_nothing_written_to_the_decoy_config_include_dir(host):
    assert host.run("ls /etc/supervisor/conf.d/").stdout.split() == []


def test_supervisord_has_no_config_option(supervisord_argv):
    assert supervisord_argv == ["/usr/bin/python3", "/usr/bin/supervisord", "-n"]
