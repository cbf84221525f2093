"""What each layer holds, from real builds: known files with known sizes added, overwritten and
deleted layer by layer, and dive's measures checked exactly.

host-ro keeps its store: the layers are read afterwards by a short-lived container on the same
mounts (``buildcage layers``). isolated's store is a volume removed with the build: its trusted
publish phase writes the layers into the per-build facts directory and buildcage keeps the
report. The base layer's numbers are read independently, from ``podman image save``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from podman_helpers import REGISTRY, ROOT, build

from tui.engine.events import BuildStarted, ImageInfo, PhaseDone
from tui.engine.layers import LayerReport
from tui.engine.session import Engine

BASE = f"{REGISTRY}/buildcage/busybox:latest"
ESC_NAME = "/data/esc\x1b]0;t\x07"
RUN_FILES = {"/etc/hostname": 0, "/etc/hosts": 0, "/etc/resolv.conf": 0}
"""Empty files Buildah's first RUN step leaves in its layer (the mount points of the RUN's own
hosts, hostname and resolv.conf), when the base image has none."""

LAYERED = f"""FROM {BASE}
COPY a.bin /data/a.bin
RUN head -c 3000 /dev/zero > /data/b.bin && head -c 500 /dev/zero > /data/c.bin
ENV X=1
RUN head -c 2000 /dev/zero > /data/a.bin && rm /data/b.bin && \\
    touch "/data/$(printf 'esc\\033]0;t\\007')"
"""


@dataclass(frozen=True)
class Base:
    files: dict[str, int]
    """Every non-directory path of the base's one layer, with its size."""

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


@pytest.fixture(scope="module")
def base(provisioned, tmp_path_factory) -> Base:
    """The base layer read by podman and Python's tarfile: not by buildcage's reader."""
    archive = tmp_path_factory.mktemp("base") / "base.tar"
    subprocess.run(["podman", "image", "save", "--format", "docker-archive", "-o", str(archive),
                    BASE], check=True, capture_output=True)
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        (layer_name,) = manifest[0]["Layers"]
        layer = outer.extractfile(layer_name).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        files = {"/" + m.name.removeprefix("./").strip("/"): (m.size if m.isreg() else 0)
                 for m in inner if not m.isdir()}
    assert not set(RUN_FILES) & set(files), "the base has the files Buildah's RUN adds"
    return Base(files)


def cli(*args: str, data_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(data_home)}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def changes(report: LayerReport, index: int, kind: str) -> dict[str, int]:
    return {c.path: c.size for c in report.layers[index].changes
            if c.kind == kind and not (c.is_dir and kind == "added")}


@pytest.fixture(scope="module")
def layered(provisioned, data_home, engine: Engine,
            tmp_path_factory) -> tuple[str, str, str]:
    """A host-ro build of LAYERED, pushed to the local registry (isolated builds FROM it).
    Returns (image id, pushed reference, the overlay the build says its store used)."""
    ctx = tmp_path_factory.mktemp("layered")
    (ctx / "a.bin").write_bytes(os.urandom(1000))
    (ctx / "Containerfile").write_text(LAYERED)
    ref = f"{REGISTRY}/buildcage-test/layers-{os.getpid()}:1"
    rec = build(engine, ctx, profile="host-ro", project=f"layers-{os.getpid()}", push=ref)
    assert rec.done.status == "succeeded", rec.events[-5:]
    info = rec.of(ImageInfo)
    assert info, rec.events[-5:]
    return rec.done.image_id, ref, info[-1].overlay


def test_host_ro_layers_are_read_from_its_store_exactly(layered, base: Base,
                                                         data_home: Path) -> None:
    image_id, _, overlay = layered
    out = cli("layers", image_id, "--json", data_home=data_home)
    assert out.returncode == 0, out.stderr
    report = LayerReport.from_dict(json.loads(out.stdout))
    assert report.image_id == image_id and len(report.layers) == 4
    assert report.layers[0].size == base.bytes
    assert changes(report, 0, "added") == base.files
    assert changes(report, 1, "added") == {"/data/a.bin": 1000}
    assert changes(report, 2, "added") == {"/data/b.bin": 3000, "/data/c.bin": 500, **RUN_FILES}
    assert changes(report, 3, "added") == {ESC_NAME: 0}
    assert changes(report, 3, "changed") == {"/data/a.bin": 2000}
    assert changes(report, 3, "removed") == {"/data/b.bin": 3000}
    assert [changes(report, i, k) for i in (0, 1, 2) for k in ("changed", "removed")] == \
        [{}] * 6
    assert [layer.size for layer in report.layers] == [base.bytes, 1000, 3500, 2000]
    assert report.layers[1].instruction.startswith("COPY ")
    assert report.layers[2].instruction == ("RUN head -c 3000 /dev/zero > /data/b.bin && "
                                            "head -c 500 /dev/zero > /data/c.bin")
    assert report.layers[3].folded == ("ENV X=1",)
    # dive: a.bin twice (1000 + 2000), b.bin added then deleted (3000 + 0)
    assert report.wasted_bytes == 6000 and report.user_size == 6500
    assert report.efficiency == pytest.approx((base.bytes + 1000 + 500) / (base.bytes + 6500),
                                              abs=1e-12)
    # With the kernel's overlay the commit is a native diff (the layer is the upper directory as
    # it is): each RUN layer also holds the empty /run Buildah's runner copied up, as native
    # podman's RUN layers do here; a naive diff (fuse-overlayfs) leaves an unchanged one out.
    # dive counts an empty directory as a leaf: the base's /run and the two RUN layers'.
    run = [("/run", 3, 0)] if overlay == "kernel" else []
    assert [(w.path, w.count, w.size) for w in report.inefficiencies] == [
        ("/data/a.bin", 2, 3000), ("/data/b.bin", 2, 3000), *run]
    # The short-lived reader is gone.
    names = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], check=True,
                           capture_output=True, text=True).stdout.split()
    assert not [n for n in names if n.endswith("-layers")]

    human = cli("layers", image_id, data_home=data_home)
    assert human.returncode == 0
    assert "esc\\x1b]0;t\\x07" in human.stdout and "\x1b" not in human.stdout


def test_max_waste_gate(layered, data_home: Path) -> None:
    image_id, _, _ = layered
    for limit, code in (("5999", 3), ("6000", 0), ("92%", 3), ("93%", 0)):
        out = cli("layers", image_id, "--max-waste", limit, data_home=data_home)
        assert out.returncode == code, (limit, out.stderr)
    out = cli("layers", image_id, "--max-waste", "5999", data_home=data_home)
    assert "6000 bytes wasted" in out.stderr


ISOLATED = """FROM {base}
COPY d.bin /data/d.bin
RUN head -c 700 /dev/zero > /data/a.bin && rm /data/c.bin
"""


@pytest.mark.parametrize("cache", [True, False], ids=["registry-cache", "no-cache"])
def test_isolated_layers_are_kept_after_the_build(layered, base: Base, engine: Engine,
                                                  data_home: Path, tmp_path: Path, cache: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With the registry cache, the publish phase pushes it and writes the layers' layout;
    without, nothing is published and the layers are read from the fresh volume's records
    before it goes (tui.engine.store_layers): the same report either way."""
    _, ref, _ = layered
    (tmp_path / "d.bin").write_bytes(os.urandom(400))
    (tmp_path / "Containerfile").write_text(ISOLATED.format(base=ref))
    os.chmod(tmp_path, 0o755)
    if not cache:
        # isolated without its registry layer cache (the engine is the session's: undone after)
        monkeypatch.setattr(engine.config, "cache_registry", "")
    rec = build(engine, tmp_path, profile="isolated", project=f"layers-{uuid.uuid4().hex[:8]}")
    assert rec.done.status == "succeeded", rec.events[-5:]
    (started,) = rec.of(BuildStarted)
    assert ([e.phase for e in rec.of(PhaseDone)][-1] == "publish") == cache
    volume = subprocess.run(["podman", "volume", "exists", f"buildcage-store-{started.build_id}"])
    assert volume.returncode == 1  # the store is gone ...
    source = engine.layer_source(rec.done.image_id)
    report = engine.layers(source)  # ... its layers were kept
    assert changes(report, 0, "added") == base.files
    assert changes(report, 3, "changed") == {"/data/a.bin": 2000}
    run = "RUN head -c 700 /dev/zero > /data/a.bin && rm /data/c.bin"
    if cache:
        # The registry cache pushes every step, so a fresh store commits per step too.
        assert len(report.layers) == 6
        assert changes(report, 4, "added") == {"/data/d.bin": 400}
        assert report.layers[4].instruction.startswith("COPY")
        last = report.layers[5]
        assert last.folded == ()
    else:
        # A fresh store without a cache commits once: the COPY's file is in the RUN's layer.
        assert len(report.layers) == 5
        last = report.layers[4]
        assert {c.path: c.size for c in last.changes if c.kind == "added" and not c.is_dir} \
            == {"/data/d.bin": 400}
        assert len(last.folded) == 1 and last.folded[0].startswith("COPY")
    assert {c.path: c.size for c in last.changes if c.kind == "changed"} == {"/data/a.bin": 700}
    assert {c.path: c.size for c in last.changes if c.kind == "removed"} == {"/data/c.bin": 500}
    assert last.instruction == run
    # a.bin three times (1000 + 2000 + 700), b.bin (3000 + 0), c.bin (500 + 0)
    assert report.wasted_bytes == 7200 and report.user_size == 7600
    assert report.efficiency == pytest.approx((base.bytes + 700 + 400) / (base.bytes + 7600),
                                              abs=1e-12)
    for limit, code in (("94%", 3), ("95%", 0), ("7199", 3), ("7200", 0)):
        out = cli("layers", rec.done.image_id, "--max-waste", limit, data_home=data_home)
        assert out.returncode == code, (limit, out.stderr)
