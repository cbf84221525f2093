"""A host-ro project store outlives the host images its cache hits named (tui.engine.store_heal).

When every step of a host-ro build hits the cache from a host image, Buildah's tag of the
result makes containers/storage record, in the project's private ``images.json``, an image
whose top layer lives only in the host's store. Once the host removes that image, every later
cached build in that store failed for good: "checking if cached image exists from a previous
build: getting top layer info: layer not known".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from podman_helpers import build

from tui.engine.events import BuildWarning, Failed

BASE = "127.0.0.1:5000/buildcage/busybox:latest"


def test_a_host_ro_store_survives_the_host_removing_the_image_its_cache_hit_named(
        engine, run_id, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(f"FROM {BASE}\nRUN echo heal-{run_id} > /heal\n")
    context.chmod(0o755)
    native = f"localhost/buildcage/heal-native-{run_id}:latest"
    project = f"heal-{run_id}"
    tag = f"localhost/buildcage/heal-{run_id}:latest"
    made = subprocess.run(["podman", "build", "-q", "--network=none", "-t", native,
                           str(context)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    try:
        first = build(engine, context, profile="host-ro", project=project, tag=tag)
        assert first.done.status == "succeeded", first.events[-6:]
        # The premise: the host's image served the whole build from its cache.
        native_id = made.stdout.strip().splitlines()[-1]
        assert first.done.image_id == native_id, first.done
    finally:
        gone = subprocess.run(["podman", "rmi", native], capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    again = build(engine, context, profile="host-ro", project=project, tag=tag)
    warnings = [w.message for w in again.of(BuildWarning)]
    failed = [e.message for e in again.of(Failed)]
    assert again.done.status == "succeeded", (failed, warnings)
    assert any("1 image records whose layers the host removed" in w and native_id[:12] in w
               for w in warnings), warnings
