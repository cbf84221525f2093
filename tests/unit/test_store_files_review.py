"""Review of the store reader (tui.engine.store_files) and its callers: hostile JSON that is
neither too big nor a link, yet makes Python's json raise something other than ValueError
(RecursionError on deep nesting), and a 'created' stamp whose digits float() refuses. Each of
these must be "no facts" / "no strays", never an exception out of the reader: the cancel sweep
runs in BuildRunner.run's ``finally``, before the clean-up and the store lock's release."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.blocking import in_time
from tui.engine import store_files
from tui.engine.config import Config
from tui.engine.plan import BuildPlan
from tui.engine.planner import make_plan
from tui.engine.stores import HostState, store_image_names, stray_working_containers

pytestmark = pytest.mark.usefixtures("data_home")

TAG = "localhost/buildcage/ctx:latest"
IMAGE = "6" * 64
BOMB = b"[" * 200_000  # 200 kB: far below MAX_BYTES, far above the interpreter's recursion limit


def plan_of(context: Path) -> BuildPlan:
    return make_plan(context, config=Config(), profile="project", project="p")


def store_of(plan: BuildPlan) -> Path:
    assert plan.store_dir is not None
    root = plan.store_dir / "storage"
    for part in ("overlay-images", "overlay", "overlay-containers"):
        (root / part).mkdir(parents=True)
    return root


def test_a_nesting_bomb_in_images_json_is_no_image_not_an_exception(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-images" / "images.json").write_bytes(BOMB)
    assert store_image_names(plan) == []
    assert store_files.read_store_facts(plan, {}).image_id == ""


def test_a_nesting_bomb_in_the_manifest_is_no_sizes_not_an_exception(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": IMAGE, "names": [TAG]}]))
    (root / "overlay-images" / IMAGE).mkdir()
    (root / "overlay-images" / IMAGE / "manifest").write_bytes(b'{"layers":' + BOMB)
    facts = store_files.read_store_facts(plan, {})
    # (An image only with a readable manifest naming it: see the manifest test below.)
    assert facts.image_id == "" and facts.layers is None


@pytest.mark.parametrize("content", [
    BOMB,
    # str.isdigit() is True for a superscript two, float("0.²") raises ValueError
    json.dumps([{"id": "c" * 64, "names": ["x-working-container"],
                 "created": "2030-01-01T00:00:00.\u00b2Z"}]).encode(),
], ids=["nesting-bomb", "superscript-digit"])
def test_stray_working_containers_of_a_hostile_store_are_none(context: Path,
                                                             content: bytes) -> None:
    root = store_of(plan_of(context))
    (root / "overlay-containers" / "containers.json").write_bytes(content)
    assert stray_working_containers(root, 0) == []


def test_a_failed_build_on_a_hostile_store_still_cleans_up_and_unlocks(
        context: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run(): the cancel/failure sweep reads containers.json in ``finally``; an exception there
    skipped ``_cleanup`` (pins, secrets, containers, per-build files) and the lock's release,
    and left run() with a RecursionError instead of a Done."""
    from tui.engine.runner import BuildRunner

    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-containers" / "containers.json").write_bytes(BOMB)
    done: list[str] = []

    class Lock:
        def close(self) -> None:
            done.append("unlocked")

    class Runner(BuildRunner):
        def _lock_store(self) -> Any:
            return Lock()

        def _heal_store(self) -> None:
            pass

        def _prepare(self) -> HostState:
            return HostState()

        def _run_phases(self, state: HostState) -> int:
            self._container_started = 1.0  # a build phase ran, and failed (a RUN step: exit 1)
            return 1

        def _cleanup(self, state: Any) -> list[str]:
            done.append("cleaned")
            return []

        def _sweep_sessions(self) -> None:
            pass

    monkeypatch.setattr("tui.engine.runner.collect_on_start", lambda client, warn: None)
    result = Runner(None, plan, lambda event: None).run()  # type: ignore[arg-type]
    assert done == ["cleaned", "unlocked"]
    assert result.status == "failed"


# -- the store's lock file: in the directory the build phase has at /var/lib/containers ---------
def test_a_planted_lock_link_truncates_no_host_file(context: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A RUN step (as root in the builder, which has the project's store directory at
    /var/lib/containers read-write) replaces ``.buildcage.lock`` with a link; the next build's
    host process opened it with "w": the link's target, any host file, truncated (measured in
    a real build: a root-owned file outside the data directory went to 0 bytes)."""
    from tui.engine.runner import BuildRunner

    plan = plan_of(context)
    assert plan.store_dir is not None
    plan.store_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (plan.store_dir / ".buildcage.lock").symlink_to(victim)
    monkeypatch.setattr("tui.engine.runner.claim_store", lambda *args: None)
    lock = BuildRunner(None, plan, lambda event: None)._lock_store()  # type: ignore[arg-type]  # noqa: SLF001
    if lock is not None:
        lock.close()
    assert victim.read_text() == "precious"


def test_a_planted_lock_fifo_hangs_no_build(context: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """open(..., "w") of a FIFO waits for a reader: forever, before the cancel flag is looked
    at. orphans.store_lock ("a", every build's collection of orphans) alike."""
    import os

    from tui.engine.orphans import store_lock
    from tui.engine.runner import BuildRunner

    plan = plan_of(context)
    assert plan.store_dir is not None
    plan.store_dir.mkdir(parents=True)
    os.mkfifo(plan.store_dir / ".buildcage.lock")

    def orphan_collection() -> bool:
        with store_lock(plan.store_dir / ".buildcage.lock") as ours:  # type: ignore[operator]
            return ours

    in_time(orphan_collection)
    monkeypatch.setattr("tui.engine.runner.claim_store", lambda *args: None)
    runner = BuildRunner(None, plan, lambda event: None)  # type: ignore[arg-type]
    in_time(runner._lock_store)  # noqa: SLF001


# -- facts the publish phase's buildah inspect would not have given ---------------------------
def test_an_image_record_without_its_manifest_names_no_image(context: Path) -> None:
    """Measured in a real build: a process a RUN step left (escaped from the chroot, alive
    until Buildah exits) rewrote the tag's record after COMMIT to an id with no image data.
    The publish phase's ``buildah inspect`` then fails ("locating item named manifest ... file
    does not exist": the build fails); read here, the build "succeeded" with image ffffffffffff.
    A record counts only if its manifest is there and names the id as its config (an image's
    id is its config's digest, for pulled and built images alike: checked on this machine)."""
    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": "f" * 64, "names": [TAG]}]))
    assert store_files.read_store_facts(plan, {}).image_id == ""
    (root / "overlay-images" / ("f" * 64)).mkdir()
    manifest = {"schemaVersion": 2, "config": {"digest": "sha256:" + IMAGE, "size": 2},
                "layers": [{"size": 1, "digest": "sha256:" + "1" * 64}]}
    (root / "overlay-images" / ("f" * 64) / "manifest").write_text(json.dumps(manifest))
    assert store_files.read_store_facts(plan, {}).image_id == ""  # another image's manifest


def test_an_untagged_base_is_the_one_the_project_store_holds_as_latest(context: Path) -> None:
    """Measured in host-ro: FROM 127.0.0.1:5000/it/review-sf-base (no tag), the project store
    holding :latest as image Y (pulled when the host lacked it), the host later pulling a newer
    :latest, image X. The build used Y (a RUN step printed Y's marker: c/storage looks in the
    writable store first), the publish phase's inspect reported Y, the facts read here X: the
    literal name matched no project record, so the host pin answered."""
    from tui.engine.events import ImageFact

    ref = "127.0.0.1:5000/it/base"
    (context / "Containerfile").write_text(f"FROM {ref}\nRUN true\n")
    plan = make_plan(context, config=Config(), profile="host-ro", project="p")
    root = store_of(plan)
    used, host = "1" * 64, "2" * 64
    (root / "overlay-images" / "images.json").write_text(json.dumps(
        [{"id": used, "names": [f"{ref}:latest"]}]))
    (root / "overlay-images" / used).mkdir()
    (root / "overlay-images" / used / "manifest").write_text(json.dumps(
        {"config": {"digest": f"sha256:{used}"}, "layers": []}))
    facts = store_files.read_store_facts(plan, {ref: ImageFact(ref=ref, id=host, digest="")})
    assert facts.bases is not None and [b.id for b in facts.bases] == [used]


@pytest.mark.parametrize(("tag", "recorded"), [
    ("myimg", "docker.io/library/myimg:latest"),
    ("docker.io/app:1", "docker.io/library/app:1"),
])
def test_a_tag_buildah_normalises_is_found(context: Path, tag: str, recorded: str) -> None:
    """Measured: ``buildcage build --tag myimg --profile project`` (no push): the plan's tag is
    docker.io/myimg:latest, Buildah records docker.io/library/myimg:latest ("Successfully
    tagged docker.io/library/myimg:latest"); read here, no record has the plan's spelling and
    the build FAILED ("the builder exited without building an image"). At 3e1e768 (publish
    phase, whose buildah inspect normalises the name) the same build succeeded."""
    plan = make_plan(context, config=Config(), profile="project", project="p", tag=tag)
    assert plan.facts_read_here
    root = store_of(plan)
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": IMAGE, "names": [recorded]}]))
    (root / "overlay-images" / IMAGE).mkdir()
    manifest = {"schemaVersion": 2, "config": {"digest": "sha256:" + IMAGE, "size": 2},
                "layers": [{"size": 1, "digest": "sha256:" + "1" * 64}]}
    (root / "overlay-images" / IMAGE / "manifest").write_text(json.dumps(manifest))
    assert store_files.read_store_facts(plan, {}).image_id == IMAGE
