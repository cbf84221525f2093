"""Attacker review of the session builders (branch session2): what another local user, a crash
or a concurrent buildcage process can do to a session between builds. Each test fails on
session2 as reviewed (see the review report); none needs podman."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.plan import DIGEST_FILE, BuildPlan
from tui.engine.planner import make_plan
from tui.engine.session_builder import DATA_LABEL, INBOX_LABEL, Record, Session, sweep
from tui.engine.session_files import SHM, make_inbox, make_session_dir, prepare_snapshot_mounts
from tui.engine.session_plan import PHASES, SESSION_LABEL, all_kwargs, session_plan
from tui.engine.session_runner import SessionRunner

NOBODY = 65534


pytestmark = pytest.mark.usefixtures("data_home")


def _plan(context: Path, **options: Any) -> BuildPlan:
    return make_plan(context, config=Config(), project="p", profile="project", **options)


def _runner_in_session(plan: BuildPlan, inbox: Path) -> tuple[SessionRunner, Session]:
    """A SessionRunner whose session (record, folder, lock) exists as ``acquire`` returns it,
    with ``inbox`` as the record's inbox; podman is never asked."""
    sid = "s" + uuid.uuid4().hex[:11]
    folder = make_session_dir(plan.data_dir, sid)
    splan = session_plan(plan, sid, folder)
    if splan.context_snapshot is not None:
        prepare_snapshot_mounts(splan)
    record = Record(id=sid, profile=plan.profile.name, project=plan.project, created=0.0,
                    idle_timeout=600.0, inbox=str(inbox), kwargs=all_kwargs(splan, inbox),
                    containers={})
    lock = open(folder / "lock", "a")  # noqa: SIM115 - the Session owns it
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    session = Session(object(), record, splan, lock)
    runner = SessionRunner(object(), plan, lambda event: None)  # type: ignore[arg-type]
    runner.session = session
    return runner, session


@pytest.fixture
def foreign_inbox(tmp_path):
    """The inbox path of a session, as another local user re-made it on /dev/shm after a
    reboot emptied /dev/shm (the record in DATA/sessions survives; /dev/shm is 1777 and its
    entries' names are listed to everyone, so the user knew the name)."""
    inbox = SHM / f"buildcage-s{uuid.uuid4().hex[:11]}-{uuid.uuid4().hex[:8]}"
    inbox.mkdir()
    yield inbox
    import shutil

    shutil.rmtree(inbox, ignore_errors=True)


def test_an_inbox_another_user_planted_after_a_reboot_deletes_nothing_through_its_links(
        context, tmp_path, foreign_inbox):
    """(HIGH) ``clear`` follows a planted ``build -> /somewhere`` link: buildcage, as root,
    empties the directory it points to, then writes the build's secrets into it."""
    victim = tmp_path / "victim"  # stands for /etc, /root/.ssh, ...
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    (victim / "sub").mkdir()
    (foreign_inbox / "build").symlink_to(victim)
    for phase in ("fetch", "publish"):
        (foreign_inbox / phase).mkdir()
    os.chown(foreign_inbox, NOBODY, NOBODY)
    runner, _ = _runner_in_session(_plan(context, build_args=(("TOKEN", "s3cret"),)),
                                   foreign_inbox)
    try:
        runner._prepare()  # noqa: SLF001 - the step that fills the inbox
    except Exception:  # noqa: BLE001, S110 - refusing the session is a right answer
        pass
    assert sorted(p.name for p in victim.iterdir()) == ["precious", "sub"]


def test_an_inbox_another_user_owns_gets_neither_the_commands_nor_the_secrets(
        context, tmp_path, foreign_inbox):
    """(HIGH) the inbox is not checked at all: in a directory the user owns, root's 0600 files
    can be renamed away and replaced, so the user's ``.buildcage-command`` runs as root in the
    trusted publish container (host network, the registry credentials next to it)."""
    for phase in PHASES:
        (foreign_inbox / phase).mkdir(mode=0o777)
        os.chown(foreign_inbox / phase, NOBODY, NOBODY)
    os.chown(foreign_inbox, NOBODY, NOBODY)
    os.chmod(foreign_inbox, 0o777)
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"127.0.0.1:5000": {"auth": "c2VjcmV0"}}}')
    import dataclasses

    plan = dataclasses.replace(_plan(context, build_args=(("TOKEN", "s3cret"),)), authfile=auth)
    runner, _ = _runner_in_session(plan, foreign_inbox)
    try:
        runner._prepare()  # noqa: SLF001 - the step that fills the inbox
    except Exception:  # noqa: BLE001, S110 - refusing the session is a right answer
        pass
    written = [str(p.relative_to(foreign_inbox)) for p in foreign_inbox.rglob("*") if p.is_file()]
    assert written == []


def test_a_build_reads_no_fact_an_earlier_killed_build_left_in_the_session(context, tmp_path):
    """(MEDIUM-LOW) the session's facts directory is emptied only when a build ends: a build
    killed after its push (during --load, say) leaves its digest; the next build in the session
    whose push fails (or that pushes elsewhere) then reports that digest as its own push."""
    inbox = make_inbox("s" + "a" * 11, PHASES)
    try:
        runner, session = _runner_in_session(_plan(context, push="127.0.0.1:5000/x/y:2"), inbox)
        facts = runner.files_plan.facts_dir
        facts.mkdir(parents=True, exist_ok=True)
        (facts / DIGEST_FILE).write_text("sha256:" + "1" * 64 + "\n")  # the killed build's
        runner._prepare()  # noqa: SLF001 - the step that fills the inbox
        from tui.engine.image_facts import read_facts

        assert read_facts(runner.files_plan).pushed is None
    finally:
        import shutil

        shutil.rmtree(inbox, ignore_errors=True)


class _Running:
    def __init__(self, sid: str, data: Path) -> None:
        self.id = "c-" + sid
        self.attrs = {"State": "running",
                      "Labels": {SESSION_LABEL: sid, DATA_LABEL: str(data), INBOX_LABEL: ""}}
        self.stopped = False

    def stop(self, **_: Any) -> None:
        self.stopped = True

    def kill(self, **_: Any) -> None:
        self.stopped = True

    def wait(self, **_: Any) -> int:
        return 0

    def reload(self) -> None:
        pass

    def remove(self, **_: Any) -> None:
        self.stopped = True


def test_a_sweep_never_stops_a_build_running_in_a_session_whose_data_directory_it_cannot_see(
        tmp_path):
    """(MEDIUM-LOW) "lost" sessions are removed with no lock taken, running or not: a data
    directory this process cannot see (another mount namespace: a PrivateTmp service, a
    container; or another user's 0700 directory) makes another process's running build look
    lost, and the sweep every build starts with stops it."""
    other = tmp_path / "elsewhere" / "data"  # exists for its own process, not for this one
    build = _Running("s" + "b" * 11, other)

    class Containers:
        def list(self, **_: Any) -> list[Any]:
            return [build]

        def get(self, _cid: str) -> Any:
            full = _Running("s" + "b" * 11, other)
            full.attrs["State"] = {"Status": "running"}
            full.stop = build.stop  # type: ignore[method-assign]
            full.kill = build.kill  # type: ignore[method-assign]
            full.remove = build.remove  # type: ignore[method-assign]
            return full

    client = type("Client", (), {"containers": Containers()})()
    sweep(client, tmp_path / "mine", stop_timeout=0.0)
    assert not build.stopped


def test_a_session_being_made_survives_a_concurrent_sweep(context, monkeypatch):
    """(LOW) ``_make`` creates the session directory, then takes its lock: a sweep (every other
    build's start) between the two finds a folder with no record, takes the lock, calls it
    broken and deletes it; ``_make`` then fails its ``assert lock is not None``."""
    from tui.engine import session_builder

    plan = _plan(context)
    real = session_builder.make_staging_dir

    class Containers:
        def list(self, **_: Any) -> list[Any]:
            return []

        def create(self, **_: Any) -> Any:
            return type("C", (), {"id": uuid.uuid4().hex})()

    client = type("Client", (), {"containers": Containers()})()

    def racing(data: Path, sid: str) -> Path:
        folder = real(data, sid)
        sweep(client, data, stop_timeout=0.0)  # another buildcage process starts a build
        return folder

    monkeypatch.setattr(session_builder, "make_staging_dir", racing)
    session = session_builder._make(client, plan, 600.0)
    try:
        assert (session.folder / "record.json").exists()
    finally:
        session.remove(stop_timeout=0.0)


def test_the_idle_clock_is_not_reset_by_a_build_that_could_not_use_the_session(
        context, tmp_path):
    """(LOW) a build whose inbox is gone (a reboot emptied /dev/shm) fails in ``_prepare``; its
    clean-up still touches ``used``, so every retry keeps the broken session from ever going
    idle, and every retry fails the same way."""
    gone = SHM / f"buildcage-s{uuid.uuid4().hex[:11]}-gone"
    runner, session = _runner_in_session(_plan(context), gone)
    then = time.time() - 10_000
    (session.folder / "used").touch()
    os.utime(session.folder / "used", (then, then))
    with pytest.raises(OSError):
        runner._prepare()  # noqa: SLF001 - the step that fills the inbox
    runner._cleanup(None)  # noqa: SLF001 - the step that touches the idle clock
    assert not session.folder.exists() or \
        (session.folder / "used").stat().st_mtime == pytest.approx(then)


def test_a_sweep_empties_the_inbox_of_a_session_nobody_builds_in(tmp_path):
    """(LOW-MEDIUM) a build killed between phases or during --load (no container running)
    leaves its secrets and credentials in the inbox on /dev/shm; the sweeps that follow keep
    the session (not idle yet, nothing running) and leave them there until the next build *in
    that session* or the idle timeout at some later command; README says "until the next
    buildcage command". Nobody holds the lock: nobody needs the inbox's contents."""
    data = tmp_path / "data"
    sid = "s" + "c" * 11
    inbox = make_inbox(sid, PHASES)
    try:
        folder = make_session_dir(data, sid)
        record = Record(id=sid, profile="project", project="p", created=0.0,
                        idle_timeout=600.0, inbox=str(inbox), kwargs={},
                        containers={"build": "c-" + sid})
        import dataclasses
        import json

        (folder / "record.json").write_text(json.dumps(dataclasses.asdict(record)))
        (folder / "used").touch()
        (inbox / "publish" / "auth.json").write_bytes(b"eyJhdXRocyI6e319")  # the killed build's
        stopped = _Running(sid, data)
        stopped.attrs["State"] = "exited"

        class Containers:
            def list(self, **_: Any) -> list[Any]:
                return [stopped]

        client = type("Client", (), {"containers": Containers()})()
        sweep(client, data, stop_timeout=0.0)
        assert list((inbox / "publish").iterdir()) == []
    finally:
        import shutil

        shutil.rmtree(inbox, ignore_errors=True)


@pytest.mark.parametrize("exited, asked", [({"B"}, []), (set(), ["build"])])
def test_the_end_of_a_build_asks_podman_only_about_what_it_started_and_did_not_see_exit(
        context, monkeypatch, exited, asked):
    """A container this build saw exit (conmon's exit file) is stopped; asking podman about it
    at once waits for podman's clean-up of it (about 50 ms). One it did not start was stopped
    when the build took the session, and nobody starts it without the session's lock. The
    build's own container, not seen to exit, is still checked and stopped."""
    from tui.engine import session_runner

    plan = _plan(context)
    sid = "s" + uuid.uuid4().hex[:11]
    inbox = make_inbox(sid, PHASES)
    runner, session = _runner_in_session(plan, inbox)
    try:
        session.record.containers.update(fetch="A", build="B", publish="C")
        runner._containers = [type("Started", (), {"id": "B", "name": "b"})()]  # noqa: SLF001
        runner._exited = set(exited)  # noqa: SLF001
        looked: list[str] = []
        stopped: list[str] = []

        def container(phase: str) -> Any:
            looked.append(phase)
            return type("Running", (), {"attrs": {"State": {"Status": "running"}}, "id": phase})()

        monkeypatch.setattr(session, "container", container)
        monkeypatch.setattr(session_runner, "stop_gracefully",
                            lambda c, timeout: stopped.append(c.id))
        assert runner._cleanup(None) == []  # noqa: SLF001
        assert looked == asked and stopped == asked
    finally:
        session.remove(stop_timeout=0.0)


def test_a_build_does_not_take_a_session_whose_running_container_would_not_stop(
        context, monkeypatch):
    """An earlier build's container still running when a build takes the session (its build's
    process was killed after the sweep looked) is stopped; the end of a build looks only at
    what it started itself, so one that would not stop must not be left running beside it."""
    from tui.engine import session_runner

    plan = _plan(context)
    sid = "s" + uuid.uuid4().hex[:11]
    inbox = make_inbox(sid, PHASES)
    runner, session = _runner_in_session(plan, inbox)
    ended: list[str] = []
    try:
        class Stuck:
            id = "stuck"
            attrs: dict[str, Any] = {"State": {"Status": "running"}}

            def reload(self) -> None:
                pass

        monkeypatch.setattr(session_runner, "acquire", lambda *a, **k: session)
        monkeypatch.setattr(session_runner, "drift", lambda *a: "")
        monkeypatch.setattr(session_runner, "_stale_image", lambda *a: "")
        monkeypatch.setattr(session_runner, "stop_gracefully", lambda c, timeout: None)
        monkeypatch.setattr(session, "container", lambda phase: Stuck())
        monkeypatch.setattr(session, "remove", lambda timeout: ended.append("removed"))
        with pytest.raises(session_runner.SessionError, match="could not be stopped"):
            runner._lock_store()  # noqa: SLF001
        assert ended == ["removed"]  # ended as broken: a new session next time
    finally:
        Session.remove(session, stop_timeout=0.0)
