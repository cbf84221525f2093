"""Security facts and storage behaviour of every profile, on real builder containers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, build

from tui.engine.events import BuildWarning, PullStarted, StepDone
from tui.engine.planner import selinux_enabled
from tui.engine.renderings import create_kwargs
from tui.engine.stores import leftovers, prepare, release

PROFILES = ["host-ro", "isolated", "project", "host-rw"]
HOST_STORE_PATH = Path("/var/lib/containers/storage")


@pytest.mark.parametrize("name", PROFILES)
def test_facts_read_from_the_created_container(engine, name):
    plan = engine.plan(EXAMPLES / "hello", profile=name, confirmed=True)
    facts = engine.summary(plan).facts
    targets = {m.target: m for m in facts.mounts}
    assert not facts.privileged
    assert facts.engine_sockets == ()
    assert "SYS_ADMIN" not in facts.effective_caps
    assert facts.pids_limit == plan.limits.pids
    assert "nofile=1024:1024" in facts.ulimits
    # The kernel's overlay (where this host's probe saw it) needs no device; fuse-overlayfs
    # (host-rw's, or where the kernel's failed) needs /dev/fuse.
    kernel = engine.probed(plan).overlay == "kernel"
    assert facts.overlay == ("kernel overlay" if kernel
                             else "fuse-overlayfs (/usr/bin/fuse-overlayfs)")
    assert facts.devices == (() if kernel else ("/dev/fuse",))
    assert kernel == (name != "host-rw")
    # The card shows the container that runs the Containerfile's steps: no network at all.
    assert facts.network == "none"
    assert targets["/context"].read_only
    expected_host = {"host-ro": "read-only", "host-rw": "read-write"}.get(name, "none")
    assert facts.host_store == expected_host
    if name == "host-ro":
        for part in ("overlay", "overlay-images", "overlay-layers"):
            assert targets[f"/var/lib/shared/{part}"].read_only
        assert not targets["/var/lib/containers"].read_only
    if name == "isolated":
        assert facts.userns.startswith("0:") and facts.userns != "host (none)"
        assert targets["/var/lib/containers"].kind == "volume"
    else:
        assert facts.userns == "host (none)"
    if name == "host-rw":
        # Without SELinux on the host podman records no label at all: the fact says "off".
        assert facts.selinux == ("disabled" if selinux_enabled() else "off")
        assert not targets["/var/lib/containers/storage"].read_only
    # The probe container and the fresh volume are gone again.
    assert leftovers(engine.client(), plan.build_id) == []


def test_host_ro_cannot_write_the_shared_store(engine, run_id):
    plan = engine.plan(EXAMPLES / "hello", profile="host-ro")
    client = engine.client()
    state = prepare(client, plan, pin=False)
    kwargs = create_kwargs(plan)
    name = f"planted-{run_id}"
    # The store's directories are overlays: a write lands in the builder's own upper layer.
    # They used to be one read-only bind whose submount (the host's overlay directory is a
    # mount point of its own) stayed writable: a builder could change any host image's files.
    kwargs["command"] = ["sh", "-c", "for d in overlay overlay-images overlay-layers; do "
                         f"touch /var/lib/shared/$d/{name} && echo WROTE; done; exit 0"]
    container = client.containers.create(**kwargs)
    try:
        container.start()
        container.wait()
        output = b"".join(container.logs()).decode()
    finally:
        container.remove(force=True)
        release(client, state)
    planted = [p for p in (HOST_STORE_PATH / d / name for d in
                           ("overlay", "overlay-images", "overlay-layers")) if p.exists()]
    for path in planted:
        path.unlink()
    assert planted == []
    assert output.count("WROTE") == 3  # in the builder's own upper layers only


def test_host_ro_uses_the_host_image_without_a_pull(engine, run_id):
    rec = build(engine, EXAMPLES / "hello", profile="host-ro", project=f"noput-{run_id}")
    assert rec.done.status == "succeeded", rec.of(type(rec.done))
    assert rec.of(PullStarted) == []


def test_isolated_pulls_and_leaves_no_store_behind(engine):
    rec = build(engine, EXAMPLES / "hello", profile="isolated")
    assert rec.done.status == "succeeded"
    assert [p.ref for p in rec.of(PullStarted)] == ["127.0.0.1:5000/buildcage/busybox:latest"]
    assert any("deleted with the fresh store" in w.message for w in rec.of(BuildWarning))
    build_id = rec.build_id
    client = engine.client()
    assert leftovers(client, build_id) == []
    assert not client.volumes.exists(f"buildcage-store-{build_id}")


def test_project_keeps_its_cache_and_other_projects_cannot_see_it(engine, run_id):
    first = build(engine, EXAMPLES / "hello", profile="project", project=f"a-{run_id}")
    second = build(engine, EXAMPLES / "hello", profile="project", project=f"a-{run_id}")
    other = build(engine, EXAMPLES / "hello", profile="project", project=f"b-{run_id}")
    assert first.done.cache_hits == 0
    layered = [e for e in second.of(StepDone) if e.layer_id]
    assert second.done.cache_hits == len(layered) == 3
    assert other.done.cache_hits == 0
    # Project b had to fetch its own base image: it cannot read a's store.
    assert len(other.of(PullStarted)) == 1


def test_host_rw_leaves_the_host_store_settings_alone(engine):
    record = HOST_STORE_PATH / "overlay" / ".has-mount-program"
    before = record.read_text() if record.exists() else None
    rec = build(engine, EXAMPLES / "hello", profile="host-rw", confirmed=True)
    assert rec.done.status == "succeeded"
    after = record.read_text() if record.exists() else None
    assert after == before
    # The host's own user-namespaced containers still start (they broke when it changed).
    out = subprocess.run(["podman", "run", "--rm", "--userns=auto:size=65536", "--network=none",
                          "localhost/buildcage/busybox:latest", "cat", "/proc/self/uid_map"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
