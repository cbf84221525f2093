"""A build with nothing to publish (no push, no --load) runs no publish container: its facts are
read here from the project store (tui.engine.store_files), and they are the facts the publish
phase's ``buildah inspect`` writes for the same image (a pushing build of the same context, whose
publish phase runs, is the reference). In a session too. (A store's hostile records:
tests/unit/test_store_files.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from podman_helpers import REGISTRY, build

from tui.engine.events import BaseImages, Failed, ImageBuilt, ImageInfo, PhaseDone
from tui.engine.session import Engine

BASE = f"{REGISTRY}/buildcage/busybox:latest"


def facts(rec) -> tuple[str, tuple[int, ...], tuple]:
    (built,) = rec.of(ImageBuilt)
    (info,) = rec.of(ImageInfo)
    (bases,) = rec.of(BaseImages)
    return built.image_id, tuple(info.layers), tuple(bases.images)


# Each profile once, each way once: host-ro's bases come from its pins, project's from its store.
@pytest.mark.parametrize(("profile", "session"), [("project", False), ("host-ro", True)],
                         ids=["project-one-shot", "host-ro-session"])
def test_facts_read_here_are_the_publish_phases(engine: Engine, tmp_path: Path, run_id: str,
                                                profile: str, session: bool) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text(run_id)
    (ctx / "Containerfile").write_text(f"FROM {BASE}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n")
    project = f"facts-{profile}-{run_id}"
    here = build(engine, ctx, session=session, profile=profile, project=project)
    assert here.done.status == "succeeded", here.of(Failed)
    assert [e.phase for e in here.of(PhaseDone)] in (["build"], ["fetch", "build"])
    pushed = build(engine, ctx, session=session, profile=profile, project=project,
                   push=f"{REGISTRY}/it/facts-{run_id}:latest")
    assert pushed.done.status == "succeeded", pushed.of(Failed)
    assert [e.phase for e in pushed.of(PhaseDone)][-1] == "publish"
    assert facts(here) == facts(pushed)
    assert here.done.image_id == facts(here)[0]
    assert [i.ref for i in facts(here)[2]] == [BASE]
    if session:
        engine.end_sessions()

