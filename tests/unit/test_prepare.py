"""The one build path: Engine.prepare checks a BuildRequest and writes its plan files,
Engine.start gives its Runner; every error meant for people is a UserError."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.replay import ReplayEngine
from tui.engine.config import ConfigError
from tui.engine.containerfile import ContainerfileError
from tui.engine.errors import UserError
from tui.engine.events import BuildWarning, Done, Event
from tui.engine.history import History, HistoryError
from tui.engine.planner import PlanError
from tui.engine.podman_api import PodmanUnavailable, connect
from tui.engine.profiles import ProfileError
from tui.engine.registry import BadReference
from tui.engine.request import BuildRequest, PreparedBuild

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


class Reach:
    def __init__(self, answers: bool) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, host: str, tls_verify: bool) -> tuple[bool, str]:
        self.calls.append((host, tls_verify))
        return self.answers, f"{host} {'answered' if self.answers else 'refused the connection'}"


def engine(tmp_path: Path, reach: Reach | None = None) -> ReplayEngine:
    return ReplayEngine(History(tmp_path / "h.sqlite3"), reach=reach or Reach(True))


def test_every_error_for_people_is_a_user_error():
    for error in (PlanError, ConfigError, ProfileError, BadReference, PodmanUnavailable,
                  ContainerfileError, HistoryError):
        assert issubclass(error, UserError), error


def test_prepare_checks_and_writes_the_plan_files(tmp_path):
    reach = Reach(True)
    prepared = engine(tmp_path, reach).prepare(
        BuildRequest(HELLO, "project", push="127.0.0.1:5000/demo/hello:1"))
    assert isinstance(prepared, PreparedBuild) and prepared.on == "local"
    assert reach.calls == [("127.0.0.1:5000", False)]
    files = prepared.plan.files()
    assert files and all(path.read_text() == text for path, text in files.items())
    assert prepared.plan.store_dir is not None and prepared.plan.store_dir.is_dir()


def test_prepare_refuses_a_push_target_that_does_not_answer(tmp_path):
    reach = Reach(False)
    with pytest.raises(PlanError, match="push target '127.0.0.1:5999/x:1': 127.0.0.1:5999 "
                                        "refused the connection"):
        engine(tmp_path, reach).prepare(BuildRequest(HELLO, push="127.0.0.1:5999/x:1"))
    # Printing a plan needs no registry; an OCI directory is no registry.
    engine(tmp_path, reach).prepare(BuildRequest(HELLO, push="127.0.0.1:5999/x:1"),
                                    check_push=False)
    engine(tmp_path, reach).prepare(BuildRequest(HELLO, push=f"oci:{tmp_path}/oci:1"))
    assert len(reach.calls) == 1


def test_prepare_asks_for_confirmation_and_reads_the_containerfile(tmp_path):
    with pytest.raises(PlanError, match="--allow-host-rw"):
        engine(tmp_path).prepare(BuildRequest(HELLO, "host-rw"))
    engine(tmp_path).prepare(BuildRequest(HELLO, "host-rw"), confirmed=True)
    ctx = tmp_path / "bad"
    ctx.mkdir()
    (ctx / "Containerfile").write_bytes(b"FROM scratch\n\nRUN echo \xff\n")
    with pytest.raises(ContainerfileError, match="line 3, column 10: byte 0xff is not UTF-8"):
        engine(tmp_path).prepare(BuildRequest(ctx, "isolated"))


def test_unwritable_data_home_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "/dev/null")
    with pytest.raises(PlanError, match="cannot write the build's files under /dev/null"):
        engine(tmp_path).prepare(BuildRequest(HELLO, "project"))


def test_a_build_whose_history_cannot_be_written_still_succeeds(tmp_path, data_home):
    (data_home / "buildcage" / "history.sqlite3").mkdir(parents=True)  # not a database
    replay = ReplayEngine(None, stream="warm-push")  # type: ignore[arg-type] - opened lazily
    seen: list[Event] = []
    done = replay.start(replay.prepare(BuildRequest(HELLO)), seen.append).run()
    assert done.status == "succeeded" and seen[-1] == done
    warning = seen[-2]
    assert isinstance(warning, BuildWarning) and "not recorded in history" in warning.message
    assert isinstance(seen[-1], Done)


@pytest.mark.parametrize("url", ["garbage", "http://", "unix://", "ftp://x"])
def test_a_malformed_podman_url_is_named(url):
    with pytest.raises(PodmanUnavailable, match="is not a podman service address"):
        connect(url)


def test_a_build_prepared_and_never_run_leaves_no_build_directory(tmp_path, data_home):
    """`buildcage plan`, the compare and session screens prepare builds they never run. Each
    left DATA/builds/ID/facts with no owner, kept a day by gc and scanned by every build's
    start meanwhile (262 of them here after a day: 86 ms of each build's start)."""
    for request in (BuildRequest(HELLO, "project"), BuildRequest(HELLO, "isolated", load=True)):
        prepared = engine(tmp_path).prepare(request)
        assert prepared.plan.build_id
    builds = data_home / "buildcage" / "builds"
    assert not builds.exists() or list(builds.iterdir()) == []


@pytest.mark.parametrize("load", [False, True])
def test_a_build_that_runs_has_its_folders_and_its_owner_first(tmp_path, data_home, load):
    """The folders its phases bind are made when it runs (``stores.prepare``), after its owner
    is written: a process killed from there on leaves them to gc."""
    from types import SimpleNamespace

    from tui.engine.build_dirs import OWNER_FILE
    from tui.engine.stores import prepare, release

    plan = engine(tmp_path).prepare(BuildRequest(HELLO, "project", load=load)).plan
    from tui.engine.orphans import owned

    plan = owned(plan.without_snapshot())  # as the runner runs it
    assert not plan.build_dir.exists()
    client = SimpleNamespace(api=SimpleNamespace(base_url="http+unix://%2Frun%2Fpodman.sock"))
    state = prepare(client, plan, pin=False, make_secrets=lambda client, plan: [])
    try:
        assert (plan.build_dir / OWNER_FILE).read_text() == plan.owner != ""
        assert plan.facts_dir.is_dir() and plan.output_dir.is_dir() == load
    finally:
        release(client, state)
    assert not plan.build_dir.exists()
