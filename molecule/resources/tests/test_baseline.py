"""The host as the converge and idempotence runs left it, against prepare's baseline (before_changes: these run
before any test that changes the host on purpose): supervisord neither restarted nor reloaded, every program that
ran before under its pid, the files of others byte for byte.

Every deploying scenario runs them, on every host. Where no supervisord ran before the first deploy (the roles
install it), the host must declare so (elms_test_supervisord_before: false): the checks then skip, saying why; a
host that declares nothing and has no supervisord fails, so that a prepare that missed it cannot pass unseen.
"""

import pytest

from conftest import host_vars


@pytest.fixture(scope="module")
def before(host, baseline):
    """prepare's snapshot; a skip only where the host declares that no supervisord ran before the first deploy."""
    if not baseline["supervisord_ran"]:
        declared = host_vars(host).get("elms_test_supervisord_before")
        assert declared is False, (
            "%s: prepare saw no supervisord before the first deploy (%s), and the scenario does not declare it "
            "(elms_test_supervisord_before: false)" % (host.backend.get_hostname(), baseline["reason"]))
        pytest.skip("declared: %s" % baseline["reason"])
    return baseline["snapshot"]


@pytest.mark.before_changes
def test_supervisord_was_never_restarted(before, after_deploy):
    # Same pid and same start time: not restarted, not even to the same pid.
    assert after_deploy["supervisord"] == before["supervisord"]


@pytest.mark.before_changes
def test_supervisord_was_never_reloaded(before, after_deploy):
    # A reload keeps supervisord's pid but restarts every program: someone else's keeps its own.
    assert before["programs"]["zz-someone-else"]["pid"]
    assert after_deploy["programs"].get("zz-someone-else") == before["programs"]["zz-someone-else"]


@pytest.mark.before_changes
def test_every_program_that_ran_before_keeps_its_process_id(before, after_deploy):
    assert {name: after_deploy["programs"].get(name) for name in before["programs"]} == before["programs"]


@pytest.mark.before_changes
def test_files_of_others_in_the_include_globs_are_untouched(before, after_deploy):
    # The same files, byte for byte, and no new one without the marker line (a backup or
    # a temporary file left there would be loaded by supervisord).
    assert after_deploy["files"] == before["files"]


@pytest.mark.before_changes
def test_someone_elses_program_file_is_untouched(host, baseline, before, after_deploy):
    someone_else = baseline["someone_else"]
    if someone_else["in_config"]:
        # supervisord's config file is the role's to change when it has no [include]
        # yet: only the program's own lines must stay.
        assert someone_else["text"] in host.file(someone_else["file"]).content_string
    else:
        assert after_deploy["files"].get(someone_else["file"]) == before["files"][someone_else["file"]]
