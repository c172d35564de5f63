"""The converge's decisions: desired programs against files, supervisord's loaded config and process states."""

import pytest

from ansible_collections.elms.queue_workers.plugins.module_utils import program_state as ps

OWNER = "elms.queue_workers"
MARK = ps.marker(OWNER) + " Local changes are overwritten.\n"
TEXT = MARK + "[program:w]\ncommand=/bin/sleep 100\n"
NEW_TEXT = MARK + "[program:w]\ncommand=/bin/sleep 200\n"


def file_of(text=TEXT, mode="0644", uid=0, name="w"):
    return {"path": "/etc/supervisor/conf.d/%s.conf" % name, "text": text, "mode": mode, "uid": uid}


def proc(state, group="w", name="w_00", pid=10, spawnerr=""):
    return {"group": group, "name": name, "statename": state, "pid": pid if state == "RUNNING" else 0, "spawnerr": spawnerr}


def loaded(added=(), changed=(), removed=()):
    return {"added": list(added), "changed": list(changed), "removed": list(removed)}


DESIRED = [{"name": "w", "content": TEXT, "state": "started"}]

CASES = [
    pytest.param(DESIRED, {"w": file_of()}, loaded(), [proc("RUNNING")], "unchanged", (False, False, [], []),
                 id="nothing-to-do"),
    pytest.param(DESIRED, {}, loaded(), [], "added", (True, True, [], []), id="new-file"),
    pytest.param([dict(DESIRED[0], content=NEW_TEXT)], {"w": file_of()}, loaded(), [proc("RUNNING")], "changed",
                 (True, True, [], []), id="text-differs"),
    pytest.param(DESIRED, {"w": file_of(mode="0666")}, loaded(), [proc("RUNNING")], "changed", (True, True, [], []),
                 id="mode-differs"),
    pytest.param(DESIRED, {"w": file_of(uid=33)}, loaded(), [proc("RUNNING")], "changed", (True, True, [], []),
                 id="owner-differs"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(changed=["w"]), [proc("RUNNING")], "pending", (False, True, [], []),
                 id="written-earlier-never-applied"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(added=["w"]), [], "pending", (False, True, [], []),
                 id="written-earlier-never-added"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(), [proc("STOPPED")], "started", (False, False, ["w:w_00"], []),
                 id="stopped-by-an-admin"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(), [proc("FATAL", spawnerr="Exited too quickly")], "started",
                 (False, False, ["w:w_00"], []), id="fatal"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(), [proc("EXITED")], "started", (False, False, ["w:w_00"], []),
                 id="exited"),
    pytest.param(DESIRED, {"w": file_of()}, loaded(), [proc("BACKOFF")], "unchanged", (False, False, [], []),
                 id="backoff-is-supervisors-own-retry"),
    pytest.param([dict(DESIRED[0], state="stopped")], {"w": file_of()}, loaded(), [proc("RUNNING")], "stopped",
                 (False, False, [], ["w:w_00"]), id="kept-stopped-on-purpose"),
    pytest.param([dict(DESIRED[0], state="stopped")], {"w": file_of()}, loaded(), [proc("STOPPED")], "unchanged",
                 (False, False, [], []), id="stopped-and-should-be"),
    pytest.param([{"name": "w", "state": "absent"}], {"w": file_of()}, loaded(), [proc("RUNNING")], "removed",
                 (False, True, [], []), id="absent"),
    pytest.param([{"name": "w", "state": "absent"}], {}, loaded(), [], "unchanged", (False, False, [], []),
                 id="absent-and-gone"),
]


@pytest.mark.parametrize("desired, files, reread, processes, action, expected", CASES)
def test_each_program_gets_what_it_needs(desired, files, reread, processes, action, expected):
    planned = ps.plan(desired, files, reread, processes, OWNER)
    assert planned["errors"] == []
    entry = planned["programs"]["w"]
    assert entry["action"] == action
    assert (entry["write"], entry["apply"], entry["start"], entry["stop"]) == expected
    assert ps.needs_apply(planned) is (action != "unchanged")


def test_a_file_of_this_owner_no_longer_listed_is_removed_and_others_never():
    files = {"w": file_of(), "old": file_of(name="old"), "admin": file_of(text="[program:admin]\n", name="admin"),
             "other-team": file_of(text=ps.marker("acme.reports") + "\n[program:other-team]\n", name="other-team")}
    planned = ps.plan(DESIRED, files, loaded(), [proc("RUNNING")], OWNER)
    assert sorted(planned["programs"]) == ["old", "w"]
    assert planned["programs"]["old"]["remove"] and planned["programs"]["old"]["action"] == "removed"
    assert "old" not in ps.plan(DESIRED, files, loaded(), [proc("RUNNING")], OWNER, purge=False)["programs"]


@pytest.mark.parametrize("files, processes, take_over, words", [
    pytest.param({"w": file_of(text="[program:w]\ncommand=/bin/true\n")}, [], False, "of someone else", id="foreign-file"),
    pytest.param({}, [proc("RUNNING")], False, "outside the include directory", id="foreign-group"),
    pytest.param({"w": file_of(text=ps.marker("acme") + "\n")}, [], False, "already belongs to acme", id="other-owner"),
    # take_over is for files without a marker: another owner's program is never taken.
    pytest.param({"w": file_of(text=ps.marker("acme") + "\n")}, [], True, "already belongs to acme",
                 id="other-owner-even-with-take-over"),
])
def test_a_name_of_someone_else_is_refused(files, processes, take_over, words):
    planned = ps.plan(DESIRED, files, loaded(), processes, OWNER, take_over=take_over)
    assert len(planned["errors"]) == 1 and words in planned["errors"][0]
    assert "w" not in planned["programs"]


def test_take_over_replaces_a_foreign_file():
    planned = ps.plan(DESIRED, {"w": file_of(text="[program:w]\n")}, loaded(), [], OWNER, take_over=True)
    assert planned["errors"] == [] and planned["programs"]["w"]["action"] == "changed"


def test_a_supervisord_that_does_not_run_only_compares_files():
    planned = ps.plan(DESIRED, {"w": file_of()}, None, [], OWNER, running=False)
    assert planned["programs"]["w"]["action"] == "unchanged"
    assert ps.needs_apply(planned, supervisord_running=False) is True


def test_a_group_whose_file_an_interrupted_run_removed_is_applied():
    planned = ps.plan([], {}, loaded(removed=["old"]), [proc("RUNNING", group="old")], OWNER, backed_up=["old"])
    assert planned["programs"]["old"]["action"] == "removed" and planned["programs"]["old"]["apply"]
    # Without a kept copy of ours, a group that lost its file is someone else's business.
    assert ps.plan([], {}, loaded(removed=["old"]), [proc("RUNNING", group="old")], OWNER)["programs"] == {}


def test_orphans_need_the_handler():
    planned = ps.plan(DESIRED, {"w": file_of()}, loaded(), [proc("RUNNING")], OWNER)
    assert ps.needs_apply(planned, orphans=[{"pid": 5}]) is True


@pytest.mark.parametrize("text, hidden", [
    ("environment=API_KEY=\"s3cret\",B='x'\ncommand=x\n", "environment= (values hidden)\ncommand=x\n"),
    ("command=x\n", "command=x\n"),
])
def test_masked_hides_environment_values(text, hidden):
    assert ps.masked(text) == hidden


# Several apps: each app's programs carry its own owner (OWNER/APP).
APP_A, APP_B = OWNER + "/a", OWNER + "/b"


def text_of(owner, name):
    return ps.marker(owner) + " Local changes are overwritten.\n[program:%s]\ncommand=/bin/sleep 1\n" % name


def test_owner_of_reads_the_marker_line():
    assert ps.owner_of(text_of(APP_A, "w")) == APP_A
    assert ps.owner_of(TEXT) == OWNER
    assert ps.owner_of("[program:w]\n") is None
    assert ps.owner_of("; a comment\n" + TEXT) is None


def test_a_purge_removes_only_the_programs_of_the_owners_it_speaks_for():
    files = {"a-old": file_of(text=text_of(APP_A, "a-old"), name="a-old"),
             "b-w": file_of(text=text_of(APP_B, "b-w"), name="b-w"),
             "admin": file_of(text="[program:admin]\n", name="admin")}
    desired = [{"name": "a-w", "content": text_of(APP_A, "a-w"), "owner": APP_A}]
    planned = ps.plan(desired, files, loaded(), [], OWNER, owners=[APP_A])
    assert planned["errors"] == []
    assert sorted(planned["programs"]) == ["a-old", "a-w"]
    assert planned["programs"]["a-old"]["action"] == "removed"


def test_an_app_with_no_program_left_loses_all_of_its_own():
    files = {"a-w": file_of(text=text_of(APP_A, "a-w"), name="a-w"),
             "b-w": file_of(text=text_of(APP_B, "b-w"), name="b-w")}
    planned = ps.plan([], files, loaded(), [], OWNER, owners=[APP_A])
    assert sorted(planned["programs"]) == ["a-w"] and planned["programs"]["a-w"]["remove"]


def test_a_name_another_app_owns_is_refused_and_its_absent_is_left_alone():
    files = {"w": file_of(text=text_of(APP_B, "w"))}
    planned = ps.plan([{"name": "w", "content": text_of(APP_A, "w"), "owner": APP_A}], files, loaded(), [], OWNER,
                      take_over=True)
    assert len(planned["errors"]) == 1 and "already belongs to %s" % APP_B in planned["errors"][0]
    planned = ps.plan([{"name": "w", "state": "absent", "owner": APP_A}], files, loaded(), [proc("RUNNING")], OWNER)
    assert planned["errors"] == [] and planned["programs"]["w"]["action"] == "unchanged"
    assert not planned["programs"]["w"]["remove"] and not ps.needs_apply(planned)


def test_an_earlier_marker_is_adopted_for_listed_names_only():
    files = {"w": file_of(), "gone": file_of(text=MARK + "[program:gone]\n", name="gone")}
    desired = [{"name": "w", "content": text_of(APP_A, "w"), "owner": APP_A}]
    planned = ps.plan(desired, files, loaded(), [proc("RUNNING")], APP_A, owners=[APP_A], adopt=[OWNER])
    assert planned["errors"] == []
    assert planned["programs"]["w"]["action"] == "changed" and planned["programs"]["w"]["write"]
    # Not listed: not this app's to remove (it may be another app's from before apps existed).
    assert "gone" not in planned["programs"]


VIDEO = ("; Managed by Ansible (elms.queue_workers/elms).\n[program:elms-video-worker]\n"
         "command=/usr/bin/nice -n 10 /usr/bin/ionice -c 2 -n 7 /usr/bin/php /var/www/html/artisan queue:work "
         "--queue=video --sleep=10\n")


@pytest.mark.parametrize("argvs, ours", [
    # nice and ionice exec php: /proc shows php's own command line.
    ([["/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=video", "--sleep=10"]], True),
    # The program changed since (other options): still this app's program.
    ([["/usr/bin/php", "/var/www/html/artisan", "queue:work", "--queue=video", "--sleep=3"]], True),
    # Another app's artisan, or another binary: not ours to write back.
    ([["/usr/bin/php", "/srv/shop/current/artisan", "queue:work", "--queue=video"]], False),
    ([["/usr/local/bin/other-daemon", "--serve"]], False),
    # Nothing runs: nothing to tell it by, and nothing to lose.
    ([None], True),
], ids=["same", "changed-options", "other-app", "other-binary", "not-running"])
def test_a_vanished_group_is_this_program_when_it_runs_the_same_binary_and_script(argvs, ours):
    assert ps.runs_this_program(argvs, VIDEO, "elms-video-worker") is ours
