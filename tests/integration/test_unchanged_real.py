"""An unchanged build starts no container, on real builds: the rebuild of an unchanged context
reports the earlier image with every step from the cache and runs no phase; any change Buildah
keys on (a copied file, the base image's id, the target of a link a COPY names) runs the build,
and the image then is the one Buildah makes. In a session builder too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from podman_helpers import Recorder, build

from tui.engine.events import BuildStarted, PhaseDone, StepDone, Unchanged
from tui.engine.session import Engine

REGISTRY_BASE = "127.0.0.1:5000/buildcage/busybox:latest"
BUILDER_IMAGE = "localhost/buildcage/builder:latest"


def point(tag: str, image: str) -> str:
    """Tags ``image`` (in the host store) as ``tag``; its id (a tag: see test_cache_why_real)."""
    subprocess.run(["podman", "tag", image, tag], check=True)
    return subprocess.run(["podman", "image", "inspect", "-f", "{{.Id}}", tag], check=True,
                          capture_output=True, text=True).stdout.strip()


def unchanged(rec: Recorder) -> bool:
    """An unchanged build: said so, no phase ran, no container started, succeeded."""
    said = rec.of(Unchanged)
    if not said:
        assert rec.of(PhaseDone), "a build that ran reports its phases"
        return False
    assert rec.of(PhaseDone) == [] and rec.of(BuildStarted)[0].container_id == ""
    assert rec.done.status == "succeeded" and rec.done.image_id == said[0].image_id
    return True


@pytest.fixture
def context(tmp_path: Path, run_id: str) -> tuple[Path, str]:
    base = f"localhost/buildcage-it/unchanged-base:{run_id}"
    point(base, REGISTRY_BASE)
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    (ctx / "app" / "a.txt").write_text("a\n")
    (ctx / "Containerfile").write_text(f"FROM {base}\nRUN echo one > /one\nCOPY app /app\n"
                                       "RUN cat /app/a.txt > /copy\n")
    return ctx, base


@pytest.mark.parametrize("profile", ["host-ro", "project"])
def test_an_unchanged_rebuild_runs_nothing_and_a_change_runs_again(
        engine: Engine, context: tuple[Path, str], run_id: str, profile: str) -> None:
    ctx, base = context
    project = f"unchanged-{profile}-{run_id}"
    if profile == "project":  # its store sees no host image: the registry's base, pulled
        text = (ctx / "Containerfile").read_text()
        (ctx / "Containerfile").write_text(text.replace(base, REGISTRY_BASE))
    first = build(engine, ctx, profile=profile, project=project)
    assert first.done.status == "succeeded" and not unchanged(first)
    again = build(engine, ctx, profile=profile, project=project)
    assert unchanged(again)
    assert again.done.image_id == first.done.image_id
    assert (again.done.steps_total, again.done.cache_hits) == (4, 3)
    assert all(e.cached for e in again.of(StepDone)[1:])
    # A copied file's content: Buildah runs the COPY and what follows; so does buildcage.
    (ctx / "app" / "a.txt").write_text("b\n")
    edited = build(engine, ctx, profile=profile, project=project)
    assert not unchanged(edited) and edited.done.status == "succeeded"
    assert edited.done.image_id != first.done.image_id
    assert build(engine, ctx, profile=profile, project=project).done.image_id == \
        edited.done.image_id
    if profile == "project":
        return  # (its base is the registry's, which other tests share)
    # The base image's tag moved (same name, another id: the builder image, which the host
    # has; no `podman build` here, see point): Buildah starts over.
    point(base, BUILDER_IMAGE)
    moved = build(engine, ctx, profile=profile, project=project)
    assert not unchanged(moved) and moved.done.status == "succeeded"
    assert moved.done.image_id != edited.done.image_id
    assert unchanged(build(engine, ctx, profile=profile, project=project))


def test_a_linked_source_always_runs_and_follows_its_target(
        engine: Engine, context: tuple[Path, str], run_id: str) -> None:
    """Buildah copies what a source link points to; buildcage cannot see that without
    following it, so such a build is never taken as unchanged."""
    ctx, base = context
    (ctx / "target.txt").write_text("one\n")
    (ctx / "link").symlink_to("target.txt")
    (ctx / "Containerfile").write_text(f"FROM {base}\nCOPY link /x\n")
    project = f"unchanged-link-{run_id}"
    first = build(engine, ctx, profile="host-ro", project=project)
    again = build(engine, ctx, profile="host-ro", project=project)
    assert not unchanged(again) and again.done.image_id == first.done.image_id
    (ctx / "target.txt").write_text("two\n")
    changed = build(engine, ctx, profile="host-ro", project=project)
    assert not unchanged(changed) and changed.done.image_id != first.done.image_id


def test_in_a_session_builder_nothing_starts(engine: Engine, context: tuple[Path, str],
                                             run_id: str) -> None:
    ctx, _ = context
    project = f"unchanged-session-{run_id}"
    try:
        first = build(engine, ctx, session=True, profile="host-ro", project=project)
        assert first.done.status == "succeeded" and not unchanged(first)
        again = build(engine, ctx, session=True, profile="host-ro", project=project)
        assert unchanged(again) and again.done.image_id == first.done.image_id
        (ctx / "app" / "a.txt").write_text("c\n")
        edited = build(engine, ctx, session=True, profile="host-ro", project=project)
        assert not unchanged(edited) and edited.done.status == "succeeded"
    finally:
        assert engine.end_sessions() == []
