"""The session inbox's checks (``session_files.open_inbox``), the sweep of inboxes whose session
is gone, and a kept session whose builder image was re-provisioned. No podman needed."""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

import pytest

from tui.engine import session_runner
from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.session_builder import Record, Session, sweep
from tui.engine.session_files import (
    SessionFileError,
    check_inbox,
    fill_inbox,
    inbox_identity,
    make_inbox,
    make_session_dir,
    session_dir,
)
from tui.engine.session_plan import PHASES, all_kwargs, session_plan
from tui.engine.session_runner import SessionRunner

NOBODY = 65534


pytestmark = pytest.mark.usefixtures("data_home")


@pytest.fixture
def inbox(tmp_path):
    made = make_inbox("s" + uuid.uuid4().hex[:11], PHASES, tmp_path / "data")
    yield made
    shutil.rmtree(made, ignore_errors=True)


def test_an_inbox_of_ours_as_made_is_filled(inbox):
    identity = inbox_identity(inbox)
    check_inbox(inbox, identity, PHASES)
    fill_inbox(inbox, identity, "build", {"a": b"1"})
    fill_inbox(inbox, identity, "build", {"b": b"2"})  # emptied first
    assert [p.name for p in (inbox / "build").iterdir()] == ["b"]
    assert (inbox / "build" / "b").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("spoil", ["phase-owner", "phase-mode", "phase-link", "root-mode",
                                   "root-replaced"])
def test_an_inbox_that_is_not_plainly_the_one_made_is_refused(inbox, tmp_path, spoil):
    identity = inbox_identity(inbox)
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    (target / "keep").write_text("x")
    if spoil == "phase-owner":
        os.chown(inbox / "build", NOBODY, NOBODY)
    elif spoil == "phase-mode":
        os.chmod(inbox / "build", 0o777)
    elif spoil == "phase-link":
        (inbox / "build").rmdir()
        (inbox / "build").symlink_to(target)
    elif spoil == "root-mode":
        os.chmod(inbox, 0o755)
    else:  # removed and made again under the same name (by root: same owner and mode)
        shutil.rmtree(inbox)
        inbox.mkdir(mode=0o700)
        for phase in PHASES:
            (inbox / phase).mkdir(mode=0o700)
    with pytest.raises(SessionFileError):
        check_inbox(inbox, identity, PHASES)
    with pytest.raises(SessionFileError):
        fill_inbox(inbox, identity, "build", {"secret": b"s3cret"})
    assert [p.name for p in target.iterdir()] == ["keep"]
    assert not any(p.name == "secret" for p in inbox.rglob("*"))


def test_only_inboxes_on_dev_shm_are_used(tmp_path):
    elsewhere = tmp_path / "buildcage-s0123456789a-x"
    for phase in PHASES:
        (elsewhere / phase).mkdir(parents=True, mode=0o700)
    elsewhere.chmod(0o700)
    with pytest.raises(SessionFileError, match="not where"):
        check_inbox(elsewhere, inbox_identity(elsewhere), PHASES)


class _NoContainers:
    def list(self, **_: Any) -> list[Any]:
        return []


def test_a_sweep_removes_an_inbox_whose_session_is_gone_and_no_other(tmp_path):
    """A process killed in ``_make`` after ``make_inbox`` leaves an inbox and no session."""
    data = tmp_path / "data"
    orphan_sid, live_sid, other_sid = ("s" + uuid.uuid4().hex[:11] for _ in range(3))
    orphan = make_inbox(orphan_sid, PHASES, data)
    live = make_inbox(live_sid, PHASES, data)
    other = make_inbox(other_sid, PHASES, tmp_path / "other-data")  # another data directory's
    make_session_dir(data, live_sid)  # being made: no record yet, its lock held
    try:
        import fcntl

        with open(session_dir(data, live_sid) / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            client = type("Client", (), {"containers": _NoContainers()})()
            removed, left = sweep(client, data, stop_timeout=0.0)
        assert removed == [f"inbox {orphan} (its session is gone)"] and left == []
        assert not orphan.exists() and live.exists() and other.exists()
    finally:
        for made in (orphan, live, other):
            shutil.rmtree(made, ignore_errors=True)


class _Kept:
    def __init__(self, image: str) -> None:
        self.attrs = {"Image": image, "State": {"Status": "exited"}}
        self.removed = False

    def remove(self, **_: Any) -> None:
        self.removed = True


def test_a_session_whose_builder_image_was_replaced_is_ended_and_made_again(tmp_path,
                                                                           monkeypatch):
    """The session's key names the builder image; its containers keep the image they were
    made from. A re-provisioned builder must reach the next build."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\n")
    plan = make_plan(ctx, config=Config(), project="p", profile="project")
    made: list[Session] = []

    def acquire(*_: Any, **__: Any) -> Session:
        sid = "s" + uuid.uuid4().hex[:11]
        folder = make_session_dir(plan.data_dir, sid)
        splan = session_plan(plan, sid, folder)
        inbox = make_inbox(sid, PHASES, plan.data_dir)
        record = Record(id=sid, profile="project", project="p", created=0.0,
                        idle_timeout=600.0, inbox=str(inbox), kwargs=all_kwargs(splan, inbox),
                        containers={p: f"{sid}-{p}" for p in PHASES},
                        inbox_id=inbox_identity(inbox))
        image = "old" if not made else "new"
        session = Session(Client(image), record, splan, open(folder / "lock", "a"))  # noqa: SIM115
        made.append(session)
        return session

    class Client:
        def __init__(self, image: str = "new") -> None:
            self.image = image
            self.containers = self
            self.images = self

        def get(self, name: str) -> Any:
            if name == plan.builder_image:
                return type("Image", (), {"id": "sha256:new"})()
            return _Kept(self.image)

    monkeypatch.setattr(session_runner, "acquire", acquire)
    monkeypatch.setattr(session_runner.BuildRunner, "_lock_store", lambda self: None)
    warnings: list[str] = []
    runner = SessionRunner(Client(), plan, lambda event: None)  # type: ignore[arg-type]
    runner._warn = warnings.append  # type: ignore[method-assign]  # noqa: SLF001
    try:
        both = runner._lock_store()  # noqa: SLF001 - the step that finds the session
        assert len(made) == 2 and made[0].removed and not made[1].removed
        assert both is not None and both.session is made[1]
        assert "was replaced" in warnings[0]
    finally:
        for session in made:
            shutil.rmtree(session.inbox, ignore_errors=True)
            session.release()
