"""Why a step missed the cache: the engine's comparison with earlier builds, on synthetic event
streams recorded into a real History (the events are what Buildah's output gives: which steps
ran, which came from cache, their layers). Real rebuilds are in
tests/integration/test_cache_why_real.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from tui.engine.cache_reasons import (
    BuildArgChanged,
    EarlierBuildStopped,
    EarlierStepMissed,
    FilesChanged,
    FreshStore,
    ImageChanged,
    InstructionChanged,
    MissReason,
    NoCache,
    NoEarlierBuild,
    OtherStore,
    Unknown,
)
from tui.engine.config import Config
from tui.engine.events import (
    BaseImages,
    BuildWarning,
    CacheHit,
    CacheMiss,
    Done,
    Event,
    ImageFact,
    StepDone,
    StepStarted,
    event_from_json,
)
from tui.engine.history import History
from tui.engine.session import Engine

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
ID_A, ID_B = "a" * 64, "b" * 64


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def history(tmp_path: Path):
    with History(tmp_path / "h.sqlite3") as opened:
        yield opened


@pytest.fixture
def engine(history: History) -> Engine:
    return Engine(config=Config(), history=history)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a\n")
    (root / "src" / "b.txt").write_text("b\n")
    (root / "notes.md").write_text("notes\n")
    (root / ".containerignore").write_text("*.md\n")
    return root


CONTAINERFILE = f"""FROM {BASE}
ARG A=1
ARG TOKEN
RUN echo "$A"
COPY src /src
COPY . /all
RUN echo done
"""


def containerfile(root: Path, text: str = CONTAINERFILE) -> None:
    (root / "Containerfile").write_text(text)


def layer(n: int) -> str:
    return f"{n:011x}"


class Build:
    """One build of a context, replayed as Buildah's output would give its events."""

    count = 0

    def __init__(self, engine: Engine, ctx: Path, **options: object) -> None:
        options.setdefault("profile", "project")
        options.setdefault("project", "p")
        self.plan = engine.plan(ctx, **options)  # type: ignore[arg-type]  # test options
        self.events: list[Event] = []
        self.sink = engine.recording(self.plan, self.events.append)
        Build.count += 1
        self.serial = Build.count
        self.layers: dict[int, str] = {}
        """Stage 1's layers by step number."""

    def steps(self, instructions: Iterable[str], cached: Iterable[int] = (),
              reuse: Build | None = None, stage: int = 1, stages: int = 1,
              fail_at: int | None = None) -> Build:
        """Steps 1..n of ``stage``; ``cached`` step numbers came from cache, with the layers
        ``reuse`` made for them; the others make new layers of their own."""
        instructions = list(instructions)
        hit = set(cached)
        for number, text in enumerate(instructions, 1):
            self.sink(StepStarted(stage=stage, stages=stages, step=number,
                                  steps=len(instructions), instruction=text))
            if number == fail_at:
                return self
            if text.startswith("FROM"):
                lid = ""
            elif number in hit and reuse is not None:
                lid = reuse.layers[number]
            else:
                lid = layer(self.serial * 100_000 + stage * 1000 + number)
            if stage == 1:
                self.layers[number] = lid
            if number in hit:
                self.sink(CacheHit(stage=stage, step=number, layer_id=lid))
            self.sink(StepDone(stage=stage, step=number, layer_id=lid, duration_s=0.1,
                               cached=number in hit))
        return self

    def bases(self, **ids: str) -> Build:
        self.sink(BaseImages(images=tuple(ImageFact(ref, i, "sha256:" + i[:64])
                                          for ref, i in (ids or {BASE: ID_A}).items())))
        return self

    def done(self, status: str = "succeeded") -> Build:
        self.sink(Done(status=status))  # type: ignore[arg-type]  # test statuses are valid
        return self

    def misses(self) -> dict[str, tuple[MissReason, ...]]:
        return {f"{e.stage}:{e.step}": e.reasons for e in self.events if isinstance(e, CacheMiss)}


STEPS = [f"FROM {BASE}", "ARG A=1", "ARG TOKEN", 'RUN echo "$A"', "COPY src /src", "COPY . /all",
         "RUN echo done"]


def first_build(engine: Engine, ctx: Path, **options: object) -> Build:
    containerfile(ctx)
    return Build(engine, ctx, **options).steps(STEPS).bases().done()


def warm(engine: Engine, ctx: Path, reuse: Build, missed_from: int, **options: object
         ) -> Build:
    """A rebuild where Buildah reused steps 2..missed_from-1 (``reuse``'s layers)."""
    return Build(engine, ctx, **options).steps(STEPS, cached=range(2, missed_from), reuse=reuse)


def test_the_first_build_has_nothing_to_compare_with(engine, ctx) -> None:
    build = first_build(engine, ctx)
    misses = build.misses()
    assert misses["1:2"] == (NoEarlierBuild(store="the store of project p (profile project)"),)
    # The first miss is the cause; the rest follow from it, named.
    assert misses["1:3"] == (EarlierStepMissed(stage=1, step=2, instruction="ARG A=1"),)
    assert set(misses) == {f"1:{n}" for n in range(2, 8)}  # FROM is never a miss


def test_a_rebuild_with_every_step_cached_explains_nothing(engine, ctx) -> None:
    first = first_build(engine, ctx)
    build = warm(engine, ctx, first, missed_from=8).bases().done()
    assert build.misses() == {}


def test_a_changed_instruction_shows_old_and_new(engine, ctx) -> None:
    first = first_build(engine, ctx)
    containerfile(ctx, CONTAINERFILE.replace("RUN echo done", "RUN echo finished"))
    steps = [*STEPS[:-1], "RUN echo finished"]
    build = Build(engine, ctx).steps(steps, cached=range(2, 7), reuse=first).bases().done()
    build_id = first_id(first, engine)
    assert build.misses() == {"1:7": (InstructionChanged(old="RUN echo done",
                                                         new="RUN echo finished",
                                                         build=build_id),)}
    miss = next(e for e in build.events if isinstance(e, CacheMiss))
    assert miss.compared_with == build_id


def first_id(first: Build, engine: Engine) -> int:
    record = engine.history.last_build(str(first.plan.context))
    assert record is not None and record.id is not None
    records = engine.history.recent()
    return min(r.id for r in records if r.id is not None) if records else record.id


def test_a_changed_build_argument_shows_old_and_new(engine, ctx) -> None:
    first = first_build(engine, ctx)
    build = warm(engine, ctx, first, 4, build_args=(("A", "2"),)).bases().done()
    misses = build.misses()
    assert misses["1:4"] == (BuildArgChanged(name="A", old="1", new="2", build=1),)
    assert misses["1:5"] == (EarlierStepMissed(stage=1, step=4, instruction='RUN echo "$A"'),)


def test_a_secret_build_argument_says_changed_and_never_its_value(engine, ctx, tmp_path) -> None:
    first = first_build(engine, ctx, build_args=(("TOKEN", "hunter2-old"),))
    build = warm(engine, ctx, first, 4, build_args=(("TOKEN", "hunter2-new"),)).bases().done()
    assert build.misses()["1:4"] == (BuildArgChanged(name="TOKEN", secret=True, build=1),)
    shown = "\n".join(e.to_json() for e in build.events)
    # What this feature stores: the cache record and the reasons, read back raw. (The builds
    # table's build_args column keeps every argument as it did before, for "rebuild".)
    import sqlite3

    db = sqlite3.connect(engine.history.path)
    stored = json.dumps([db.execute(f"SELECT * FROM {table}").fetchall()
                         for table in ("cache_steps", "cache_misses")])
    db.close()
    for value in ("hunter2-old", "hunter2-new"):
        assert value not in shown and value not in stored
    assert "hmac-sha256:" in stored


def test_changed_added_and_removed_files_are_named(engine, ctx) -> None:
    first = first_build(engine, ctx)
    (ctx / "src" / "a.txt").write_text("A\n")
    (ctx / "src" / "b.txt").unlink()
    (ctx / "src" / "c.txt").write_text("c\n")
    os.chmod(ctx / "src" / "a.txt", 0o600)
    build = warm(engine, ctx, first, 5).bases().done()
    (reason,) = build.misses()["1:5"]
    assert isinstance(reason, FilesChanged)
    assert reason.added == ("src/c.txt",) and reason.removed == ("src/b.txt",)
    assert [(c.path, c.what) for c in reason.changed] == [("src/a.txt", ("content", "mode"))]
    assert "a.txt (content, mode)" in reason.full()


def test_a_file_the_ignore_file_excludes_does_not_count(engine, ctx) -> None:
    first = first_build(engine, ctx)
    (ctx / "notes.md").write_text("edited\n")  # *.md is ignored
    (ctx / "extra.md").write_text("new\n")
    # Had Buildah still run COPY . /all, nothing buildcage checks would explain it:
    build = warm(engine, ctx, first, 6).bases().done()
    (reason,) = build.misses()["1:6"]
    assert isinstance(reason, Unknown)
    assert any("files it copies: the same" in line for line in reason.checked)
    assert any("may have been removed" in line for line in reason.checked)
    assert reason.full().startswith("reason unknown; checked: ")


def test_a_touched_file_is_not_a_change(engine, ctx) -> None:
    first = first_build(engine, ctx)
    os.utime(ctx / "src" / "a.txt", (1, 1))  # Buildah's key ignores mtimes (measured)
    (reason,) = warm(engine, ctx, first, 5).bases().done().misses()["1:5"]
    assert isinstance(reason, Unknown)


def test_a_changed_base_image_is_named_with_both_ids(engine, ctx) -> None:
    first_build(engine, ctx)
    build = Build(engine, ctx).steps(STEPS)
    # The first step after FROM waits for the publish phase's facts...
    assert "1:2" not in build.misses()
    assert build.misses()["1:3"][0] == EarlierStepMissed(stage=1, step=2, instruction="ARG A=1")
    build.bases(**{BASE: ID_B}).done()
    (reason,) = build.misses()["1:2"]
    assert reason == ImageChanged(ref=BASE, old_id=ID_A, new_id=ID_B,
                                  old_digest="sha256:" + ID_A, new_digest="sha256:" + ID_B,
                                  build=1)
    assert "aaaaaaaaaaaa" in reason.full() and "bbbbbbbbbbbb" in reason.full()


def test_a_build_that_never_published_cannot_say_its_base_changed(engine, ctx) -> None:
    first_build(engine, ctx)
    build = Build(engine, ctx).steps(STEPS).done(status="failed")  # no BaseImages
    (reason,) = build.misses()["1:2"]
    assert isinstance(reason, Unknown)
    assert any("not recorded for this build" in line for line in reason.checked)


def test_no_cache_and_a_fresh_store_explain_every_step(engine, ctx) -> None:
    first_build(engine, ctx)
    no_cache = Build(engine, ctx, no_cache=True).steps(STEPS).bases().done().misses()
    assert set(no_cache.values()) == {(NoCache(),)} and len(no_cache) == 6
    fresh = Build(engine, ctx, profile="isolated").steps(STEPS).bases().done().misses()
    assert set(fresh.values()) == {(FreshStore(profile="isolated"),)} and len(fresh) == 6


def test_the_last_build_in_another_store_is_named(engine, ctx) -> None:
    first_build(engine, ctx, project="one")
    build = Build(engine, ctx, project="two").steps(STEPS).bases().done()
    assert build.misses()["1:2"] == (OtherStore(
        build=1, store="the store of project two (profile project)",
        previous_store="the store of project one (profile project)",
        previous_profile="project"),)


def test_a_step_that_failed_last_time_and_was_edited(engine, ctx) -> None:
    containerfile(ctx)
    failed = Build(engine, ctx).steps(STEPS, fail_at=7).done(status="failed")
    containerfile(ctx, CONTAINERFILE.replace("RUN echo done", "RUN echo fixed"))
    steps = [*STEPS[:-1], "RUN echo fixed"]
    build = Build(engine, ctx).steps(steps, cached=range(2, 7), reuse=failed).bases().done()
    assert build.misses()["1:7"] == (
        InstructionChanged(old="RUN echo done", new="RUN echo fixed", build=1),
        EarlierBuildStopped(build=1, outcome="failed"))


def test_the_failing_step_itself_is_explained_at_the_end(engine, ctx) -> None:
    first = first_build(engine, ctx)
    (ctx / "src" / "a.txt").write_text("changed\n")
    build = warm(engine, ctx, first, 5)
    build.sink(StepStarted(stage=1, stages=1, step=5, steps=7, instruction="COPY src /src"))
    build.done(status="failed")
    assert isinstance(build.misses()["1:5"][0], FilesChanged)


def test_the_build_whose_layers_were_reused_is_the_one_compared(engine, ctx) -> None:
    """A=1, then A=2, then A=1 with a file changed: the last build reused build 1's layers
    for steps 2-4, so its step 5 is compared with build 1's, not with build 2 (the latest)."""
    first = first_build(engine, ctx)
    warm(engine, ctx, first, 4, build_args=(("A", "2"),)).bases().done()
    (ctx / "src" / "a.txt").write_text("changed\n")
    build = warm(engine, ctx, first, 5).bases().done()
    (reason,) = build.misses()["1:5"]
    assert isinstance(reason, FilesChanged) and reason.build == 1


def test_a_stage_after_a_rebuilt_stage_names_that_stage(engine, ctx) -> None:
    text = (f"FROM {BASE} AS base\nRUN echo one\nFROM base\nCOPY --from=base /x /y\n"
            "RUN echo two\n")
    containerfile(ctx, text)
    first = Build(engine, ctx)
    first.steps([f"FROM {BASE} AS base", "RUN echo one"], stage=1, stages=2)
    first.steps(["FROM " + "c" * 64, "COPY --from=base /x /y", "RUN echo two"], stage=2,
                stages=2)
    misses = first.bases().done().misses()
    assert misses["2:2"] == (EarlierStepMissed(stage=1, step=2, instruction="RUN echo one",
                                               via="base stage"),)


def test_every_reason_survives_json_and_history(engine, ctx) -> None:
    first = first_build(engine, ctx)
    (ctx / "src" / "a.txt").write_text("A\n")
    build = warm(engine, ctx, first, 4, build_args=(("A", "2"),)).bases(**{BASE: ID_B}).done()
    for event in build.events:
        if isinstance(event, CacheMiss):
            assert event_from_json(event.to_json()) == event
            assert json.loads(event.to_json())["reasons"][0]["kind"]
    stored = engine.history.cache_misses(2)
    assert [(m.stage, m.step) for m in stored] == sorted(
        (e.stage, e.step) for e in build.events if isinstance(e, CacheMiss))


def test_a_failing_explainer_warns_and_the_build_goes_on(engine, ctx, monkeypatch) -> None:
    from tui.engine import cache_why

    def broken(self, ran):
        raise RuntimeError("boom")

    monkeypatch.setattr(cache_why.CacheExplainer, "reasons", broken)
    build = first_build(engine, ctx)
    warnings = [e.message for e in build.events if isinstance(e, BuildWarning)]
    assert warnings == ["cache explanations stopped: RuntimeError: boom"]
    assert isinstance(build.events[-1], Done)
    assert engine.history.recent()[0].status == "succeeded"


def test_a_step_added_at_the_end_is_a_new_step(engine, ctx) -> None:
    first = first_build(engine, ctx)
    containerfile(ctx, CONTAINERFILE + "RUN echo more\n")
    build = Build(engine, ctx).steps([*STEPS, "RUN echo more"], cached=range(2, 8),
                                     reuse=first).bases().done()
    (reason,) = build.misses()["1:8"]
    assert reason == InstructionChanged(old="", new="RUN echo more", build=1)
    assert reason.short() == "new step" and "did not have" in reason.full()
