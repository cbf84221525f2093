"""An unchanged build starts no container (tui.engine.unchanged): history's last build in the
store and the host's reading of the Containerfile and the context decide whether this build
would repeat it; the store's records confirm the image is still there. Builds are recorded into
a real History from synthetic event streams (as tests/unit/test_cache_why.py does); real builds
are in tests/integration/test_unchanged_real.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tui.engine import hostpaths
from tui.engine.config import Config
from tui.engine.events import (
    BaseImages,
    BuildStarted,
    CacheHit,
    Done,
    Event,
    ImageBuilt,
    ImageFact,
    StepDone,
    StepStarted,
    Unchanged,
)
from tui.engine.history import History
from tui.engine.plan import BuildPlan
from tui.engine.runner import BuildRunner
from tui.engine.session import Engine
from tui.engine.unchanged import Candidate, find, plan_key, refusal, replay, verify

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
BASE_ID, OTHER_ID, IMAGE, BUILDER_ID = "e" * 64, "f" * 64, "6" * 64, "b" * 64
TAG = "localhost/buildcage/ctx:latest"
CONTAINERFILE = f"""FROM {BASE}
ARG A=1
RUN echo "$A"
COPY src /src
RUN echo done
"""
STEPS = [f"FROM {BASE}", "ARG A=1", 'RUN echo "$A"', "COPY src /src", "RUN echo done"]

pytestmark = pytest.mark.usefixtures("data_home")


@pytest.fixture
def engine(tmp_path: Path):
    with History(tmp_path / "h.sqlite3") as history:
        yield Engine(config=Config(), history=history)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a\n")
    (root / "Containerfile").write_text(CONTAINERFILE)
    return root


def plan_of(engine: Engine, ctx: Path, **options: Any) -> BuildPlan:
    options.setdefault("profile", "project")
    options.setdefault("project", "p")
    return engine.plan(ctx, **options)


def record(engine: Engine, ctx: Path, *, status: str = "succeeded", image: str = IMAGE,
           bases: dict[str, str] | None = None, cached: bool = False, fail_at: int = 0,
           during: Any = None, **options: Any) -> list[Event]:
    """One build of ``ctx`` as its events would come, recorded in history (the engine's
    recording sink: its plan key, cache record and bases)."""
    plan = plan_of(engine, ctx, **options)
    events: list[Event] = []
    sink = engine.recording(plan, events.append)
    steps = [line for line in (ctx / "Containerfile").read_text().splitlines() if line]
    for number, text in enumerate(steps, 1):
        sink(StepStarted(stage=1, stages=1, step=number, steps=len(steps), instruction=text))
        if number == fail_at:
            break
        layer = "" if text.startswith("FROM") else f"{number:011x}"
        if cached and layer:
            sink(CacheHit(stage=1, step=number, layer_id=layer))
        sink(StepDone(stage=1, step=number, layer_id=layer, duration_s=0.1,
                      cached=cached and bool(layer)))
    if during is not None:
        during()  # while the build runs
    images = bases if bases is not None else {BASE: BASE_ID}
    sink(BaseImages(images=tuple(ImageFact(ref, i, "sha256:" + "4" * 64)
                                 for ref, i in images.items())))
    sink(Done(status=status, image_id=image))  # type: ignore[arg-type]
    return events


def candidate(engine: Engine, ctx: Path, **options: Any) -> Candidate | None:
    plan = plan_of(engine, ctx, **options)
    check = engine.unchanged_check(plan, engine.explainer(plan))
    return None if check is None else check()


# -- find: history and the host's reading ------------------------------------------------------

def test_nothing_changed_repeats_the_last_build(engine: Engine, ctx: Path) -> None:
    record(engine, ctx)
    found = candidate(engine, ctx)
    assert found is not None
    assert (found.image_id, found.bases, found.stages) == (IMAGE, {BASE: BASE_ID}, 1)
    assert [s.instruction for s in found.steps] == STEPS
    assert (found.steps_total, found.cache_hits) == (5, 4)  # FROM is no cache hit


def test_a_touched_file_is_unchanged_as_buildah_sees_it(engine: Engine, ctx: Path) -> None:
    """Buildah keys a COPY on content, mode and owner, not mtime (cache_inputs, measured)."""
    record(engine, ctx)
    os.utime(ctx / "src" / "a.txt", (1, 1))
    assert candidate(engine, ctx) is not None


@pytest.mark.parametrize("change", ["content", "mode", "new file", "instruction", "arg value",
                                    "containerfile", "target"])
def test_any_change_buildah_keys_on_runs_the_build(engine: Engine, ctx: Path,
                                                   change: str) -> None:
    record(engine, ctx)
    options: dict[str, Any] = {}
    if change == "content":
        (ctx / "src" / "a.txt").write_text("b\n")
    elif change == "mode":
        (ctx / "src" / "a.txt").chmod(0o600)
    elif change == "new file":
        (ctx / "src" / "b.txt").write_text("b\n")
    elif change == "instruction":
        (ctx / "Containerfile").write_text(CONTAINERFILE.replace("echo done", "echo fin"))
    elif change == "arg value":
        options["build_args"] = (("A", "2"),)
    elif change == "containerfile":
        (ctx / "Other").write_text(CONTAINERFILE)
        options["containerfile"] = str(ctx / "Other")
    elif change == "target":
        (ctx / "Containerfile").write_text(CONTAINERFILE.replace(f"{BASE}\n", f"{BASE} AS x\n",
                                                                 1))
        options["target_stage"] = "x"
    assert candidate(engine, ctx, **options) is None


@pytest.mark.parametrize("earlier", ["failed", "canceled", "failed push", "no image",
                                     "other base id", "base not recorded", "other store"])
def test_only_a_succeeded_build_in_the_same_store_is_repeated(engine: Engine, ctx: Path,
                                                              earlier: str) -> None:
    if earlier in ("failed", "canceled"):
        record(engine, ctx, status=earlier, fail_at=4, image="")
    elif earlier == "failed push":  # every step built, the image made, then the push failed
        record(engine, ctx, status="failed")
    elif earlier == "no image":
        record(engine, ctx, image="")
    elif earlier == "base not recorded":
        record(engine, ctx, bases={})
    elif earlier == "other store":
        record(engine, ctx, profile="host-ro")
    else:
        record(engine, ctx)
        record(engine, ctx, bases={BASE: OTHER_ID}, cached=True)
        # The newest build read another id; this one will read the store's (verify): the
        # candidate says which id it must find there.
        found = candidate(engine, ctx)
        assert found is not None and found.bases == {BASE: OTHER_ID}
        return
    assert candidate(engine, ctx) is None


def test_a_secret_argument_s_value_changes_the_key_but_is_never_in_it(engine: Engine,
                                                                       ctx: Path) -> None:
    key = engine.history.secret_key()
    one = plan_of(engine, ctx, build_args=(("API_TOKEN", "s3cr3t"),))
    two = plan_of(engine, ctx, build_args=(("API_TOKEN", "other"),))
    assert plan_key(one, key) != plan_key(two, key)
    assert plan_key(one, key) != plan_key(one, b"another history's key")  # an HMAC, not a hash
    record(engine, ctx, build_args=(("API_TOKEN", "s3cr3t"),))
    assert candidate(engine, ctx, build_args=(("API_TOKEN", "s3cr3t"),)) is not None
    assert candidate(engine, ctx, build_args=(("API_TOKEN", "other"),)) is None
    assert b"s3cr3t" not in Path(engine.history.path).read_bytes()


@pytest.mark.parametrize("source", ["link", "url", "variable"])
def test_a_copy_the_host_cannot_read_runs_the_build(engine: Engine, ctx: Path,
                                                    source: str) -> None:
    if source == "link":  # Buildah copies what it points to; the host does not follow links
        (ctx / "target").write_text("one\n")
        (ctx / "link").symlink_to("target")
        text = CONTAINERFILE.replace("COPY src /src", "COPY link /src")
    elif source == "url":
        text = CONTAINERFILE.replace("COPY src /src", "ADD https://example.invalid/x /src")
    else:
        text = CONTAINERFILE.replace("COPY src /src", "COPY ${D}/src /src")
    (ctx / "Containerfile").write_text(text)
    steps = [line for line in text.splitlines() if line]
    plan = plan_of(engine, ctx)
    events: list[Event] = []
    sink = engine.recording(plan, events.append)
    for number, line in enumerate(steps, 1):
        sink(StepStarted(stage=1, stages=1, step=number, steps=len(steps), instruction=line))
        sink(StepDone(stage=1, step=number, layer_id="" if number == 1 else f"{number:011x}",
                      duration_s=0.1))
    sink(BaseImages(images=(ImageFact(BASE, BASE_ID, ""),)))
    sink(Done(status="succeeded", image_id=IMAGE))
    assert candidate(engine, ctx) is None


@pytest.mark.parametrize(("options", "why"), [
    ({"profile": "isolated"}, "fresh store"), ({"no_cache": True}, "--no-cache"),
    ({"push": "127.0.0.1:5000/x/y:1"}, "pushes"), ({"load": True}, "--load"),
    ({"remote": True}, "remote")])
def test_what_a_container_must_do_is_never_skipped(engine: Engine, ctx: Path,
                                                   options: dict[str, Any], why: str) -> None:
    plan = plan_of(engine, ctx, **options)
    assert why in refusal(plan)
    assert engine.unchanged_check(plan, engine.explainer(plan)) is None


def test_a_plan_without_layers_is_never_skipped(engine: Engine, ctx: Path) -> None:
    plan = dataclasses.replace(plan_of(engine, ctx), layers=False)
    assert "layer" in refusal(plan)


def what_find_reads(engine: Engine, ctx: Path) -> tuple[BuildPlan, Any, Any, str]:
    """The plan, the explainer (the host's reading), history's last build there, the key."""
    plan = plan_of(engine, ctx)
    explainer = engine.explainer(plan)
    assert explainer is not None
    earlier = explainer.lookup.previous(explainer.context, explainer.store)
    return plan, explainer, earlier, plan_key(plan, engine.history.secret_key())


def test_a_step_list_that_differs_from_the_earlier_build_s_is_no_candidate(
        engine: Engine, ctx: Path) -> None:
    """The earlier build stopped short of the last step (a record that says succeeded: an
    older buildcage), or Buildah printed a step's text otherwise than the file has it."""
    record(engine, ctx)
    plan, explainer, earlier, key = what_find_reads(engine, ctx)
    assert find(plan, explainer.inputs, earlier, key) is not None
    short = dataclasses.replace(earlier, steps={k: v for k, v in earlier.steps.items()
                                                if k != (1, 5)})
    assert find(plan, explainer.inputs, short, key) is None
    printed = dict(earlier.steps)
    printed[(1, 3)] = dataclasses.replace(printed[(1, 3)], instruction="RUN echo $A")
    assert find(plan, explainer.inputs, dataclasses.replace(earlier, steps=printed), key) is None
    # A RUN keyed on other argument values (ones that only an ARG's default gave, say).
    seen = dict(earlier.steps)
    seen[(1, 3)] = dataclasses.replace(seen[(1, 3)], detail={"args": {"A": "0"}})
    assert find(plan, explainer.inputs, dataclasses.replace(earlier, steps=seen), key) is None
    # A step that failed there left no layer to reuse.
    stopped = dict(earlier.steps)
    stopped[(1, 5)] = dataclasses.replace(stopped[(1, 5)], outcome="failed")
    assert find(plan, explainer.inputs, dataclasses.replace(earlier, steps=stopped),
                key) is None
    assert find(plan, explainer.inputs, None, key) is None
    assert find(plan, explainer.inputs, earlier, "another plan") is None


# -- verify: the store's records ---------------------------------------------------------------

def write_store(root: Path, records: list[dict[str, Any]]) -> None:
    """images.json and each image's manifest, as c/storage keeps them."""
    (root / "overlay-images").mkdir(parents=True, exist_ok=True)
    (root / "overlay").mkdir(exist_ok=True)
    (root / "overlay-images" / "images.json").write_text(json.dumps(records))
    for record in records:
        folder = root / "overlay-images" / record["id"]
        folder.mkdir(exist_ok=True)
        manifest = {"schemaVersion": 2, "config": {"digest": "sha256:" + record["id"]},
                    "layers": [{"size": 2048, "digest": "sha256:" + "1" * 64}]}
        (folder / "manifest").write_text(json.dumps(manifest))
    (root / "overlay" / ".has-mount-program").write_text("false")


def candidate_of(image: str = IMAGE, base: str = BASE_ID) -> Candidate:
    return Candidate(build=1, image_id=image, steps=(), stages=1, bases={BASE: base})


@pytest.fixture(autouse=True)
def host_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's store, as every test here sees it: the base, and the builder image (whose id
    is in the plan key). Not this machine's: the tests must not depend on what it holds."""
    root = tmp_path / "host-store"
    write_store(root, [{"id": BASE_ID, "names": [BASE]},
                       {"id": BUILDER_ID, "names": [Config().builder_image]}])
    monkeypatch.setattr(hostpaths, "HOST_STORE", str(root))
    return root


def project_store(plan: BuildPlan, records: list[dict[str, Any]]) -> Path:
    assert plan.store_dir is not None
    root = plan.store_dir / "storage"
    write_store(root, records)
    return root


def test_the_store_still_holding_the_image_gives_its_facts(engine: Engine, ctx: Path) -> None:
    plan = plan_of(engine, ctx)
    tag = plan.tag
    project_store(plan, [{"id": BASE_ID, "names": [BASE]}, {"id": IMAGE, "names": [tag]}])
    facts = verify(plan, candidate_of())
    assert facts is not None and facts.image_id == IMAGE and facts.layers == (2048,)
    assert facts.overlay == "kernel" and facts.bases is not None
    assert [(b.ref, b.id) for b in facts.bases] == [(BASE, BASE_ID)]


@pytest.mark.parametrize("store", ["tag elsewhere", "no tag", "base moved", "no base",
                                   "no manifest", "no store"])
def test_a_store_that_moved_on_runs_the_build(engine: Engine, ctx: Path, store: str) -> None:
    plan = plan_of(engine, ctx)
    records = [{"id": BASE_ID, "names": [BASE]}, {"id": IMAGE, "names": [plan.tag]}]
    if store == "tag elsewhere":
        records = [records[0], {"id": IMAGE, "names": []},
                   {"id": OTHER_ID, "names": [plan.tag]}]
    elif store == "no tag":
        records[1]["names"] = []
    elif store == "base moved":
        records[0]["id"] = OTHER_ID
    elif store == "no base":
        records = records[1:]
    if store != "no store":
        root = project_store(plan, records)
        if store == "no manifest":
            (root / "overlay-images" / IMAGE / "manifest").unlink()
    assert verify(plan, candidate_of()) is None


def test_a_step_s_layer_gone_from_the_store_runs_the_build(engine: Engine, ctx: Path) -> None:
    """Buildah would run that step again: replaying it as a cache hit would be false."""
    record(engine, ctx)
    found = candidate(engine, ctx)
    assert found is not None
    plan = plan_of(engine, ctx)
    kept = [{"id": BASE_ID, "names": [BASE]}, {"id": IMAGE, "names": [plan.tag]}]
    project_store(plan, [*kept, *layers(2, 3, 4, 5)])
    assert verify(plan, found) is not None
    project_store(plan, [*kept, *layers(2, 4, 5)])
    assert verify(plan, found) is None


def test_host_ro_finds_a_base_in_the_host_store_after_its_own(engine: Engine, ctx: Path,
                                                             host_store: Path) -> None:
    plan = plan_of(engine, ctx, profile="host-ro")
    project_store(plan, [{"id": IMAGE, "names": [plan.tag]}])
    facts = verify(plan, candidate_of())
    assert facts is not None and facts.bases is not None
    assert [(b.ref, b.id) for b in facts.bases] == [(BASE, BASE_ID)]
    # The writable store's own image of that name comes first, as c/storage looks.
    project_store(plan, [{"id": IMAGE, "names": [plan.tag]}, {"id": OTHER_ID, "names": [BASE]}])
    assert verify(plan, candidate_of()) is None
    assert verify(plan, candidate_of(base=OTHER_ID)) is not None


def test_a_base_the_host_no_longer_names_runs_the_build(engine: Engine, ctx: Path,
                                                        host_store: Path) -> None:
    plan = plan_of(engine, ctx, profile="host-ro")
    project_store(plan, [{"id": IMAGE, "names": [plan.tag]}])
    write_store(host_store, [{"id": OTHER_ID, "names": [BASE]}])
    assert verify(plan, candidate_of()) is None


# -- the runner: no container, the events of a build from cache ------------------------------

class NoContainers:
    """podman, as far as an unchanged build asks it: nothing running, nothing to make."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        nothing = SimpleNamespace(list=lambda **kw: [])
        self.pods = self.volumes = self.secrets = self.images = nothing
        self.containers = SimpleNamespace(list=lambda **kw: [], create=self._create)

    def _create(self, **kwargs: Any) -> None:
        self.calls.append(kwargs.get("name", ""))
        raise AssertionError("an unchanged build made a container")


def layers(*numbers: int) -> list[dict[str, Any]]:
    """The intermediate images ``record``'s steps made (ids starting with their layer ids)."""
    return [{"id": f"{n:011x}".ljust(64, "0")} for n in numbers]


def test_the_runner_reports_the_earlier_image_and_starts_nothing(engine: Engine,
                                                                 ctx: Path) -> None:
    record(engine, ctx)
    plan = plan_of(engine, ctx)
    project_store(plan, [{"id": BASE_ID, "names": [BASE]}, *layers(2, 3, 4, 5),
                         {"id": IMAGE, "names": [plan.tag]}])
    client = NoContainers()
    events: list[Event] = []
    runner = BuildRunner(client, plan, engine.recording(plan, events.append))  # type: ignore[arg-type]
    runner.unchanged = engine.unchanged_check(plan, engine.explainer(plan))
    done = runner.run()
    assert client.calls == []
    assert (done.status, done.image_id, done.steps_total, done.cache_hits) == (
        "succeeded", IMAGE, 5, 4)
    started = next(e for e in events if isinstance(e, BuildStarted))
    assert started.container_id == ""
    said = next(e for e in events if isinstance(e, Unchanged))
    first = engine.history.recent()[-1]
    assert (said.build, said.image_id) == (first.id, IMAGE)
    assert [e.layer_id for e in events if isinstance(e, CacheHit)] == [
        f"{n:011x}" for n in range(2, 6)]
    assert any(isinstance(e, ImageBuilt) and e.image_id == IMAGE for e in events)
    # History has it as a build whose every step came from the cache, with its key: the
    # next unchanged build compares with it.
    newest = engine.history.recent()[0]
    assert (newest.status, newest.cache_hits, newest.image_id) == ("succeeded", 4, IMAGE)
    assert newest.plan_key == first.plan_key != ""
    again = candidate(engine, ctx)
    assert again is not None and again.build == newest.id


def test_the_runner_builds_when_the_store_moved_on(engine: Engine, ctx: Path) -> None:
    record(engine, ctx)
    plan = plan_of(engine, ctx)
    project_store(plan, [{"id": BASE_ID, "names": [BASE]}, {"id": OTHER_ID, "names": [plan.tag]}])
    client = NoContainers()
    runner = BuildRunner(client, plan, lambda event: None)  # type: ignore[arg-type]
    runner.unchanged = engine.unchanged_check(plan, engine.explainer(plan))
    done = runner.run()
    assert client.calls and done.status == "failed"  # it went on to make its containers


def test_a_fault_in_the_check_is_said_and_the_build_runs(engine: Engine, ctx: Path) -> None:
    plan = plan_of(engine, ctx)
    client = NoContainers()
    events: list[Event] = []
    runner = BuildRunner(client, plan, events.append)  # type: ignore[arg-type]

    def broken() -> Candidate | None:
        raise ValueError("a bug")

    runner.unchanged = broken
    runner.run()
    assert client.calls  # it built
    assert any("could not tell whether anything changed" in getattr(e, "message", "")
               for e in events)


def test_replay_is_a_build_whose_every_step_came_from_the_cache(engine: Engine,
                                                                ctx: Path) -> None:
    record(engine, ctx)
    found = candidate(engine, ctx)
    assert found is not None
    events = replay(found, 5.0)
    assert all(e.time == 5.0 for e in events)
    started = [e for e in events if isinstance(e, StepStarted)]
    assert [(e.step, e.steps, e.instruction) for e in started] == [
        (n, 5, text) for n, text in enumerate(STEPS, 1)]
    done = [e for e in events if isinstance(e, StepDone)]
    assert [e.cached for e in done] == [False, True, True, True, True]
    assert all(e.duration_s == 0.0 for e in done)


# -- what an attacker's read found (session 10): each a false "unchanged" before ------------

def rebuild_after(engine: Engine, ctx: Path, text: str, change: Any, trusted: bool = True,
                  **options: Any) -> None:
    """Records a build of ``text`` (every step of it, as Buildah would print them), makes
    ``change``, and asserts the next build is not taken as unchanged; ``trusted``: whether the
    same build again, before the change, is (the host's reading is exact)."""
    (ctx / "Containerfile").write_text(text)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("FROM"))
    steps = [line for line in lines[first:] if line]  # an ARG before FROM is no step
    plan = plan_of(engine, ctx, **options)
    sink = engine.recording(plan, lambda event: None)
    stage = 0
    numbers: dict[int, int] = {}
    for line in steps:
        if line.startswith("FROM"):
            stage += 1
        numbers[stage] = numbers.get(stage, 0) + 1
    stage, step = 0, 0
    for line in steps:
        if line.startswith("FROM"):
            stage, step = stage + 1, 0
        step += 1
        sink(StepStarted(stage=stage, stages=max(numbers), step=step, steps=numbers[stage],
                         instruction=line))
        sink(StepDone(stage=stage, step=step, duration_s=0.1,
                      layer_id="" if line.startswith("FROM") else f"{stage}{step:010x}"))
    sink(BaseImages(images=(ImageFact(BASE, BASE_ID, ""),)))
    sink(Done(status="succeeded", image_id=IMAGE))
    assert (candidate(engine, ctx, **options) is not None) is trusted, \
        "the same build again is unchanged when the reading is exact"
    change()
    assert candidate(engine, ctx, **options) is None


def test_a_bracket_glob_is_read_as_go_reads_it_or_not_trusted(engine: Engine, ctx: Path
                                                               ) -> None:
    """Go's ``[^a]`` is a negated class; Python's fnmatch takes ``^`` as a character."""
    (ctx / "fa").write_text("a")
    (ctx / "fb").write_text("b")
    text = f"FROM {BASE}\nCOPY f[^a] /d/\n"
    (ctx / "Containerfile").write_text(text)
    plan = plan_of(engine, ctx)
    explainer = engine.explainer(plan)
    assert explainer is not None and explainer.inputs.step(1, 2).inexact
    assert engine.unchanged_check(plan, explainer)() is None


def test_an_ignore_file_that_takes_paths_back_in_is_not_trusted(engine: Engine, ctx: Path
                                                                ) -> None:
    (ctx / "src" / "dir").mkdir()
    (ctx / "src" / "dir" / "keep").write_text("k")
    (ctx / ".dockerignore").write_text("src/dir\n!src/dir/keep\n")
    rebuild_after(engine, ctx, CONTAINERFILE,
                  lambda: (ctx / "src" / "dir" / "keep").write_text("changed"), trusted=False)


def test_an_ignore_file_beside_the_containerfile_is_not_followed(engine: Engine, ctx: Path
                                                                 ) -> None:
    (ctx / ".dockerignore").write_text("src/b.txt\n")
    (ctx / "src" / "b.txt").write_text("b")
    (ctx / "Containerfile.dockerignore").write_text("zzz\n")  # Buildah reads this one
    record(engine, ctx)
    (ctx / "src" / "b.txt").write_text("changed")
    assert candidate(engine, ctx) is None
    plan = plan_of(engine, ctx)
    explainer = engine.explainer(plan)
    assert explainer is not None
    copy = explainer.inputs.step(1, 4)
    assert copy.files is None and "Containerfile.dockerignore" in copy.files_note


def test_a_source_named_by_a_variable_env_may_shadow_is_not_trusted(engine: Engine,
                                                                   ctx: Path) -> None:
    (ctx / "a").write_text("a")
    (ctx / "b").write_text("b")
    rebuild_after(engine, ctx, f"FROM {BASE}\nARG SRC=a\nENV SRC=b\nCOPY $SRC /x\n",
                  lambda: (ctx / "b").write_text("changed"), trusted=False)


@pytest.mark.parametrize("edit", ["global arg", "platform", "stage"])
def test_the_containerfile_s_whole_text_counts(engine: Engine, ctx: Path, edit: str) -> None:
    (ctx / "a").write_text("a")
    if edit == "global arg":
        text = f"ARG U=1000\nFROM {BASE}\nARG U\nCOPY --chown=$U a /a\n"
        new = text.replace("U=1000", "U=2000")
    elif edit == "platform":
        text = f"FROM --platform=linux/amd64 {BASE}\nCOPY a /a\n"
        new = text.replace("amd64", "arm64")
    else:
        text = (f"FROM {BASE} AS s1\nRUN echo 1\nFROM {BASE} AS s2\nRUN echo 2\n"
                f"FROM s1\nCOPY --from=s2 /etc/hostname /h\n")
        new = text.replace("FROM s1", "FROM s2").replace("--from=s2", "--from=s1")
    rebuild_after(engine, ctx, text, lambda: (ctx / "Containerfile").write_text(new))


def test_xattrs_count_as_buildah_copies_them(engine: Engine, ctx: Path) -> None:
    target = ctx / "src" / "a.txt"
    try:
        os.setxattr(target, "user.tag", b"1")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    rebuild_after(engine, ctx, CONTAINERFILE, lambda: os.setxattr(target, "user.tag", b"2"))


def test_a_special_file_s_type_counts(engine: Engine, ctx: Path) -> None:
    import socket

    node = ctx / "src" / "node"
    os.mkfifo(node, 0o644)

    def to_socket() -> None:
        node.unlink()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(node))
        node.chmod(0o644)

    rebuild_after(engine, ctx, CONTAINERFILE, to_socket)


def test_a_broken_hard_link_counts(engine: Engine, ctx: Path) -> None:
    os.link(ctx / "src" / "a.txt", ctx / "src" / "b.txt")

    def unlink() -> None:
        (ctx / "src" / "b.txt").unlink()
        (ctx / "src" / "b.txt").write_text("a\n")  # the same content, its own inode

    rebuild_after(engine, ctx, CONTAINERFILE, unlink)


def test_a_file_changed_during_the_build_leaves_no_digest_to_trust(engine: Engine,
                                                                   ctx: Path) -> None:
    """Written while the build ran (Buildah may have copied that), restored after: the host's
    reading before the build says nothing of what was copied."""
    target = ctx / "src" / "a.txt"
    record(engine, ctx, during=lambda: target.write_text("written meanwhile\n"))
    target.write_text("a\n")
    assert candidate(engine, ctx) is None
    record(engine, ctx)  # a build that ran with nothing changing under it
    assert candidate(engine, ctx) is not None


def test_another_builder_image_under_the_same_name_changes_the_key(
        engine: Engine, ctx: Path, host_store: Path) -> None:
    plan = plan_of(engine, ctx)
    key = engine.history.secret_key()
    write_store(host_store, [{"id": BASE_ID, "names": [plan.builder_image]}])
    before = plan_key(plan, key)
    write_store(host_store, [{"id": OTHER_ID, "names": [plan.builder_image]}])
    assert plan_key(plan, key) != before



# -- a second attacker's read (session 10) -------------------------------------------------

@pytest.mark.parametrize("where", ["a copied directory", "the context (COPY .)"])
def test_a_file_added_while_the_build_ran_leaves_no_digest_to_trust(
        engine: Engine, ctx: Path, where: str) -> None:
    """An editor's swap file made while Buildah copied, gone after: what was copied held it."""
    if where != "a copied directory":
        (ctx / "Containerfile").write_text(CONTAINERFILE.replace("COPY src /src", "COPY . /src"))
    folder = ctx / "src" if where == "a copied directory" else ctx
    swap = folder / ".a.txt.swp"
    record(engine, ctx, during=lambda: swap.write_text("meanwhile"))
    swap.unlink()
    assert candidate(engine, ctx) is None


def test_a_containerfile_edited_while_the_build_ran_keeps_no_key(engine: Engine,
                                                                 ctx: Path) -> None:
    """Buildah may have read it before or after the edit; undone since, it reads as before."""
    cf = ctx / "Containerfile"
    record(engine, ctx, during=lambda: cf.write_text(CONTAINERFILE + "LABEL x=1\n"))
    cf.write_text(CONTAINERFILE)
    assert engine.history.recent(limit=1)[0].plan_key == ""
    assert candidate(engine, ctx) is None


def test_a_snapshot_of_the_context_is_another_plan(engine: Engine, ctx: Path) -> None:
    """A snapshot keeps no hard link, xattr or special file and gives every file root."""
    plan = plan_of(engine, ctx)
    key = engine.history.secret_key()
    snap = dataclasses.replace(plan, context_snapshot=ctx.parent / "snapshot")
    assert plan_key(snap, key) != plan_key(plan, key)


def test_an_ignore_pattern_go_reads_otherwise_is_not_trusted(engine: Engine, ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("secret.txt\x1f\n")
    (ctx / "src" / "secret.txt").write_text("s")
    rebuild_after(engine, ctx, CONTAINERFILE,
                  lambda: (ctx / "src" / "secret.txt").write_text("changed"), trusted=False)


def test_hard_link_groups_are_counted_once_per_inode(engine: Engine, ctx: Path) -> None:
    from tui.engine.cache_inputs import FileEntry, StepInput

    def listing(groups: list[int]) -> StepInput:
        files = {f"f{i}": FileEntry("f", 0o100644, 0, 0, 1, "d", ino=ino)
                 for i, ino in enumerate(groups)}
        return StepInput(1, 2, "COPY . /", "COPY", files=files)

    assert listing([1, 2, 3]).files_digest() != listing([1, 1, 3]).files_digest()
    assert listing([1, 1, 3]).files_digest() != listing([1, 3, 3]).files_digest()
    assert listing([5, 5, 7]).files_digest() == listing([8, 8, 9]).files_digest()


def test_a_file_changed_after_the_reading_and_before_the_check_runs_the_build(
        engine: Engine, ctx: Path) -> None:
    """The inputs are read when the runner is made; the check comes under the store's lock,
    maybe after a wait for another build: what changed meanwhile is not taken as read."""
    record(engine, ctx)
    plan = plan_of(engine, ctx)
    check = engine.unchanged_check(plan, engine.explainer(plan))
    assert check is not None
    (ctx / "src" / "a.txt").write_text("b\n")
    assert check() is None



# -- a third read (session 10) ------------------------------------------------------------

@pytest.mark.parametrize("edit", ["Containerfile", "ignore file"])
def test_an_edit_while_the_build_waits_for_the_store_runs_it(engine: Engine, ctx: Path,
                                                            edit: str) -> None:
    record(engine, ctx)
    plan = plan_of(engine, ctx)
    check = engine.unchanged_check(plan, engine.explainer(plan))
    assert check is not None
    if edit == "Containerfile":
        (ctx / "Containerfile").write_text(CONTAINERFILE.replace("echo done", "echo TWO"))
    else:
        (ctx / ".containerignore").write_text("nothing\n")
    assert check() is None


def test_bases_history_did_not_write_are_not_recorded_ones(engine: Engine, ctx: Path) -> None:
    record(engine, ctx)
    plan, explainer, earlier, key = what_find_reads(engine, ctx)
    odd = dataclasses.replace(earlier, record=dataclasses.replace(earlier.record, bases=[]))
    assert find(plan, explainer.inputs, odd, key) is None


def test_a_file_list_history_did_not_write_is_no_listing(engine: Engine, ctx: Path) -> None:
    """A cache record whose file list is not an object (no buildcage writes one) is read as
    none kept: the build goes on, the files are read again (it ended in a traceback before)."""
    from tui.engine.cache_why import Lookup, earlier_files
    from tui.engine.history import BuildRecord, CacheStep

    engine.history.add(BuildRecord(started_at=1.0, profile="project", context=str(ctx),
                                   status="succeeded", store="project:project:p"),
                       cache=[CacheStep(1, 2, "COPY src /src", "l", "built", {},
                                        [1])])  # type: ignore[arg-type]
    assert earlier_files(Lookup(engine.history), str(ctx), "project:project:p") == {}


def test_a_containerfile_broken_after_its_check_costs_the_key_not_the_build_s_message(
        engine: Engine, ctx: Path) -> None:
    """Checked when the build was prepared, broken before it starts: no key (so nothing is
    taken as unchanged), and the runner is still made (the build says what is wrong)."""
    plan = plan_of(engine, ctx)
    (ctx / "Containerfile").write_bytes(b"FROM \xff\n")
    assert engine.plan_key(plan) == ""



# -- a code reader's findings (session 10) ------------------------------------------------

def test_a_containerfile_past_a_mebibyte_is_read_whole(engine: Engine, ctx: Path) -> None:
    padding = "# " + "x" * 1_200_000 + "\n"
    (ctx / "Containerfile").write_text(padding + f"FROM --platform=linux/amd64 {BASE}\n")
    plan = plan_of(engine, ctx)
    key = plan_key(plan, b"k")
    (ctx / "Containerfile").write_text(padding + f"FROM --platform=linux/arm64 {BASE}\n")
    assert plan_key(plan, b"k") != key


def test_an_ignore_file_made_beside_the_containerfile_while_waiting_runs_the_build(
        engine: Engine, ctx: Path) -> None:
    record(engine, ctx)
    plan = plan_of(engine, ctx)
    check = engine.unchanged_check(plan, engine.explainer(plan))
    assert check is not None
    (ctx / "Containerfile.dockerignore").write_text("src/a.txt\n")
    assert check() is None


def test_a_builder_whose_id_cannot_be_read_gives_no_key(engine: Engine, ctx: Path,
                                                        host_store: Path) -> None:
    write_store(host_store, [{"id": BASE_ID, "names": [BASE]}])
    plan = plan_of(engine, ctx)
    assert plan_key(plan, b"k") == ""
    assert engine.unchanged_check(plan, engine.explainer(plan)) is None


def test_a_build_that_failed_after_its_unchanged_event_is_not_marked_unchanged(
        engine: Engine, ctx: Path) -> None:
    plan = plan_of(engine, ctx)
    sink = engine.recording(plan, lambda event: None)
    sink(Unchanged(build=1, image_id=IMAGE))
    sink(Done(status="failed", image_id=IMAGE))
    assert not engine.history.recent(limit=1)[0].unchanged
