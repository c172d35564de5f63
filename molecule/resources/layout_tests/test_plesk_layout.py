"""The guide's Plesk layout: nothing lands in Debian's conf.d, which is not included."""

import pytest

pytestmark = pytest.mark.layout("plesk")


def test_nothing_written_to_the_directory_that_is_not_included(host):
    assert host.run("ls /etc/supervisor/conf.d/").stdout.split() == []
