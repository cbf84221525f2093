"""The kernel's overlay in real builders: the probe sees it, an isolated build mounts it (read
from inside a RUN step), the card says so, and where the probe said no, or a store was made
with fuse-overlayfs, builds use fuse-overlayfs and succeed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman_helpers import build

from tui.engine import overlay
from tui.engine.config import data_dir
from tui.engine.events import ImageInfo, LogLine
from tui.engine.overlay import Answer, ProbeRecord, ensure_probe

RUN_FSTYPE = ('FROM 127.0.0.1:5000/buildcage/busybox:latest\n'
              'RUN grep " / " /proc/mounts | cut -d" " -f3 | sed "s/^/root-fstype=/"\n')


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "fstype"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(RUN_FSTYPE)
    return ctx


def root_fstype(rec) -> str:
    """The file system type of ``/`` a RUN step saw (what Buildah really mounted), checked
    against the build's own fact (containers/storage's record, read by the publish phase)."""
    seen = [e.line.split("=", 1)[1] for e in rec.of(LogLine)
            if e.line.startswith("root-fstype=")]
    assert seen, [e.line for e in rec.of(LogLine)]
    info = rec.of(ImageInfo)
    assert info and info[-1].overlay == {"overlay": "kernel",
                                         "fuse.fuse-overlayfs": "fuse"}[seen[-1]]
    return seen[-1]


@pytest.fixture(scope="module")
def probed(engine) -> ProbeRecord:
    """This host's answer, probed now (whatever was recorded)."""
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    record = ensure_probe(engine.client(), engine.config.builder_image, data_dir(),
                          again=True)
    assert record is not None, "the probe builders could not run"
    if (major, minor) < (5, 11):
        pytest.skip(f"kernel {os.uname().release}: overlay in a user namespace needs 5.11")
    return record


@pytest.fixture
def said_no(probed: ProbeRecord) -> Iterator[None]:
    """The recorded probe says the kernel's overlay failed (as on an older kernel); the real
    answer is recorded again afterwards."""
    no = Answer(False, "", "made to fail by the test")
    overlay.write_record(data_dir(), dataclasses.replace(probed, answers={"userns": no,
                                                                         "host": no}))
    try:
        yield
    finally:
        overlay.write_record(data_dir(), probed)


def test_the_probe_sees_the_kernel_overlay_in_both_kinds_of_builder(probed):
    assert probed.answers["userns"].fstype == "overlay", probed.answers
    assert probed.answers["host"].fstype == "overlay", probed.answers
    assert probed.kernel == os.uname().release
    assert overlay.current_record(data_dir()) == probed


def test_an_isolated_build_mounts_the_kernel_overlay(engine, probed, context):
    plan = engine.probed(engine.plan(context, profile="isolated", no_cache=True))
    assert plan.overlay == "kernel"
    summary = engine.summary(plan)
    assert summary.facts.overlay == "kernel overlay"
    assert summary.facts.devices == ()  # no /dev/fuse: nothing uses it
    assert "SYS_ADMIN" not in summary.facts.effective_caps  # no capability is needed
    rec = build(engine, context, profile="isolated", no_cache=True)
    assert rec.done.status == "succeeded"
    assert root_fstype(rec) == "overlay"


def test_where_the_probe_said_no_builds_use_fuse_overlayfs(engine, said_no, context):
    plan = engine.probed(engine.plan(context, profile="isolated", no_cache=True))
    assert plan.overlay == "fuse"
    assert "failed its probe" in plan.overlay_reason
    summary = engine.summary(plan)
    assert summary.facts.overlay == "fuse-overlayfs (/usr/bin/fuse-overlayfs)"
    assert summary.facts.devices == ("/dev/fuse",)
    rec = build(engine, context, profile="isolated", no_cache=True)
    assert rec.done.status == "succeeded"
    assert root_fstype(rec) == "fuse.fuse-overlayfs"


def test_a_project_store_made_with_fuse_overlayfs_keeps_it(engine, probed, context, run_id):
    """containers/storage goes on mounting such a store with fuse-overlayfs whatever
    storage.conf says: the plan says so too, and why."""
    project = f"fuse-made-{run_id}"
    no = Answer(False, "", "made to fail by the test")
    overlay.write_record(data_dir(), dataclasses.replace(probed, answers={"host": no}))
    try:
        first = build(engine, context, profile="project", project=project, no_cache=True)
    finally:
        overlay.write_record(data_dir(), probed)
    assert first.done.status == "succeeded" and root_fstype(first) == "fuse.fuse-overlayfs"
    plan = engine.probed(engine.plan(context, profile="project", project=project))
    assert plan.overlay == "fuse" and "remove the store" in plan.overlay_reason
    summary = engine.summary(plan)
    assert summary.facts.overlay == "fuse-overlayfs (/usr/bin/fuse-overlayfs)"
    assert any("remove the store for the kernel's overlay" in r for r in summary.speed.reasons)
    again = build(engine, context, profile="project", project=project, no_cache=True)
    assert again.done.status == "succeeded" and root_fstype(again) == "fuse.fuse-overlayfs"
    fresh = build(engine, context, profile="project", project=f"new-{run_id}", no_cache=True)
    assert fresh.done.status == "succeeded" and root_fstype(fresh) == "overlay"


def test_a_host_ro_build_mounts_host_layers_with_the_kernel_overlay(engine, probed, tmp_path,
                                                                    run_id):
    """host-ro reads the host store through podman overlay volumes (tui.engine.hostview): the
    kernel's overlay takes the host's layers through them as its lower directories."""
    ctx = tmp_path / "host-ro-fstype"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(
        RUN_FSTYPE + 'RUN grep " / " /proc/mounts | grep -o "lowerdir=[^,]*" | cut -d= -f2 '
                     '| tr ":" "\\n" | sed "s/^/lower=/"\n')
    plan = engine.probed(engine.plan(ctx, profile="host-ro", project=f"host-ro-kernel-{run_id}",
                                     no_cache=True))
    assert plan.overlay == "kernel"
    assert any(m.kind == "overlay" for m in plan.store_mounts())
    rec = build(engine, ctx, profile="host-ro", project=f"host-ro-kernel-{run_id}", no_cache=True)
    assert rec.done.status == "succeeded", [e.line for e in rec.of(LogLine)][-5:]
    assert root_fstype(rec) == "overlay"
    lowers = [e.line.removeprefix("lower=") for e in rec.of(LogLine)
              if e.line.startswith("lower=")]
    # The base image's layers are the host's, read through the overlay volume.
    assert any(low.startswith("/var/lib/shared/overlay/") for low in lowers), lowers
