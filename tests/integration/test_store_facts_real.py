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


def copy_context(tmp_path: Path, run_id: str, base: str) -> Path:
    """A context whose one step copies a file unique to the run (FROM ``base``)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text(run_id)
    (ctx / "Containerfile").write_text(f"FROM {base}\nCOPY a.txt /a.txt\n")
    return ctx


def facts(rec) -> tuple[str, tuple[int, ...], tuple]:
    (built,) = rec.of(ImageBuilt)
    (info,) = rec.of(ImageInfo)
    (bases,) = rec.of(BaseImages)
    return built.image_id, tuple(info.layers), tuple(bases.images)


# Each profile once, each way once: host-ro's bases come from its pins, project's from its
# store, host-rw's from the host's store (its overlay from the builder's own record).
@pytest.mark.parametrize(("profile", "session"),
                         [("project", False), ("host-ro", True), ("host-rw", False)],
                         ids=["project-one-shot", "host-ro-session", "host-rw-one-shot"])
def test_facts_read_here_are_the_publish_phases(engine: Engine, tmp_path: Path, run_id: str,
                                                profile: str, session: bool) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text(run_id)
    (ctx / "Containerfile").write_text(f"FROM {BASE}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n")
    project = f"facts-{profile}-{run_id}"
    if profile == "host-rw":  # its own tag: the host store is shared with other tests' builds
        ctx_tag = {"confirmed": True, "tag": f"localhost/it/facts-{run_id}:latest"}
    else:
        ctx_tag = {}
    here = build(engine, ctx, session=session, profile=profile, project=project, **ctx_tag)
    assert here.done.status == "succeeded", here.of(Failed)
    assert [e.phase for e in here.of(PhaseDone)] in (["build"], ["fetch", "build"])
    pushed = build(engine, ctx, session=session, profile=profile, project=project,
                   push=f"{REGISTRY}/it/facts-{run_id}:latest", **ctx_tag)
    assert pushed.done.status == "succeeded", pushed.of(Failed)
    assert [e.phase for e in pushed.of(PhaseDone)][-1] == "publish"
    assert facts(here) == facts(pushed)
    assert here.done.image_id == facts(here)[0]
    overlays = [rec.of(ImageInfo)[0].overlay for rec in (here, pushed)]
    assert overlays[0] == overlays[1] != ""
    if profile == "host-rw":
        assert overlays[0] == "fuse"  # always, for the host's store (README)
        engine.client().images.remove(ctx_tag["tag"])
    assert [i.ref for i in facts(here)[2]] == [BASE]
    if session:
        engine.end_sessions()



def test_an_isolated_build_with_nothing_to_publish_reads_its_layers_from_its_volume(
        engine: Engine, tmp_path: Path, run_id: str, data_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """isolated's store goes with the build, so the publish phase wrote the layers' layout
    (buildah push dir:) only for the report. Read from the fresh volume's tar-split records
    instead: the same report, to the byte, for the same image (the reference build runs its
    publish phase and is read both ways); and a build with nothing to publish runs no publish
    container at all and keeps that report, from a volume no later container could read."""
    import dataclasses

    from podman_helpers import Recorder

    from tui.engine.layer_reader import read_layout, saved_report
    from tui.engine.plan import BuildPlan
    from tui.engine.runner import BuildRunner
    from tui.engine.store_layers import read_store_layers
    from tui.engine.stores import leftovers

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text(run_id)
    (ctx / "Containerfile").write_text(
        f"FROM {BASE}\nCOPY a.txt /a.txt\nRUN mkdir -p /d && echo {run_id} > /d/f && rm /a.txt\n")
    data = data_home / "buildcage"

    def plan() -> BuildPlan:
        made = engine.plan(ctx, profile="isolated", project=f"isofacts-{run_id}")
        return dataclasses.replace(made, cache_repo="")  # (the cache would need its push)

    compared: list[tuple[object, object]] = []
    keep = BuildRunner._keep_layers  # noqa: SLF001 - the reference reads both ways

    def both_ways(self: BuildRunner, store_root: str | None = None) -> None:
        layout = read_layout(self.plan.facts_dir / "layers")
        compared.append((layout.to_dict(),
                         read_store_layers(str(self._store_root()), self.facts.image_id)
                         .to_dict()))
        keep(self, store_root)

    with monkeypatch.context() as patch:
        patch.setattr(BuildPlan, "facts_read_here", property(lambda self: False))
        patch.setattr(BuildRunner, "_keep_layers", both_ways)
        reference = Recorder()
        engine.runner(plan(), reference).run()
    assert reference.done.status == "succeeded", reference.of(Failed)
    assert [e.phase for e in reference.of(PhaseDone)][-1] == "publish"
    ((layout, here),) = compared
    assert layout == here

    rec = Recorder()
    read_here = plan()
    assert read_here.facts_read_here
    engine.runner(read_here, rec).run()
    assert rec.done.status == "succeeded", rec.of(Failed)
    assert [e.phase for e in rec.of(PhaseDone)] == ["fetch", "build"]  # no publish container
    image_id, layers, bases = facts(rec)
    assert [i.ref for i in bases] == [BASE]
    report = saved_report(data, image_id)
    assert report is not None and report.image_id == image_id
    assert report.source.startswith("the build's store")
    # The same steps made the same files (only times and so digests differ from the reference).
    assert [(x.instruction, x.entries, x.size, x.tar_size) for x in report.layers] == \
        [(x["instruction"], x["entries"], x["size"], x["tar_size"])
         for x in layout["layers"]]  # type: ignore[index]
    assert tuple(x.tar_size for x in report.layers) == layers
    assert leftovers(engine.client(), rec.build_id) == []
    assert not engine.client().volumes.exists(read_here.store_volume)


def test_records_that_cannot_be_read_here_leave_it_to_the_publish_phase(
        engine: Engine, tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose image records are beyond what is read here (16 MiB: a host store of about
    10,000 images, a reviewer found) is no failed build: the publish container runs and its
    Buildah reads them, as before they were read here."""
    import tui.engine.store_files as store_files

    def too_large(root: str) -> list:
        raise store_files.StoreFileError("overlay-images/images.json is larger than 16777216 "
                                         "bytes")

    ctx = copy_context(tmp_path, run_id, BASE)
    project = f"facts-big-{run_id}"
    read_here = build(engine, ctx, profile="project", project=project)
    assert read_here.done.status == "succeeded", read_here.of(Failed)
    monkeypatch.setattr(store_files, "read_images", too_large)
    fallback = build(engine, ctx, profile="project", project=project)
    assert fallback.done.status == "succeeded", fallback.of(Failed)
    assert [e.phase for e in fallback.of(PhaseDone)][-1] == "publish"
    assert facts(fallback)[:2] == facts(read_here)[:2]
