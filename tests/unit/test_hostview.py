"""The host store as a host-ro builder sees it (tui.engine.hostview): three overlays, never the
store's root, and every phase's own copy of the lists and lock files before Buildah runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.replay import ReplayEngine
from tui.engine.config import Config
from tui.engine.facts import facts_from_inspect
from tui.engine.history import History
from tui.engine.hostview import LISTS, LOCKS, prelude
from tui.engine.planner import make_plan
from tui.engine.renderings import NoPodForm, create_kwargs, kube_manifest, podman_run
from tui.engine.request import BuildRequest

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
INSPECT = Path(__file__).resolve().parents[1] / "data" / "inspect"


pytestmark = pytest.mark.usefixtures("data_home")


def host_ro():
    return make_plan(HELLO, config=Config(), profile="host-ro")


def test_host_ro_reads_three_directories_of_the_host_store_through_overlays():
    plan = host_ro()
    host = [m for m in plan.mounts() if m.source.startswith("/var/lib/containers/storage")]
    # Not the store's root: its storage.lock, libpod's database, volumes and secrets stay out.
    assert [(m.source, m.target, m.kind) for m in host] == [
        (f"/var/lib/containers/storage/{part}", f"/var/lib/shared/{part}", "overlay")
        for part in ("overlay", "overlay-images", "overlay-layers")]
    assert create_kwargs(plan)["overlay_volumes"] == [
        {"destination": m.target, "source": m.source, "options": []} for m in host]
    assert all(f"--volume={m.source}:{m.target}:O" in podman_run(plan) for m in host)


@pytest.mark.parametrize("phase", ["fetch", "build", "publish"])
def test_every_phase_takes_its_own_lists_and_lock_files_before_buildah(phase):
    script = host_ro().phase(phase).command[2]
    first_buildah = script.index("buildah ")
    layers = script.index("cp /var/lib/shared/overlay-layers/layers.json")
    images = script.index("cp /var/lib/shared/overlay-images/images.json")
    assert layers < images < first_buildah  # layers first: see hostview's docstring
    for lock in LOCKS:
        assert script.index(f"printf %064d 0 > /var/lib/shared/{lock}") < first_buildah
    assert "/var/lib/shared" not in make_plan(HELLO, config=Config(),
                                              profile="project").phase(phase).command[-1]


def test_the_prelude_makes_private_copies_of_the_lists_and_64_byte_lock_files(tmp_path):
    """Run on plain directories: the copies replace the names (in a builder they land in the
    overlay's upper layer, the host's files untouched)."""
    shared = tmp_path / "shared"
    originals = {}
    for rel in (*LISTS, *LOCKS):
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_text(json.dumps([rel]))
        originals[rel] = (shared / rel).stat().st_ino
    subprocess.run(["sh", "-ec", "; ".join(prelude(str(shared)))], check=True)
    for rel in LISTS:
        assert (shared / rel).read_text() == json.dumps([rel])
        assert (shared / rel).stat().st_ino != originals[rel]  # a new file, not the host's
    for rel in LOCKS:
        # c/storage compares 64 bytes of "last writer" with what it saw last: a record that
        # never changes means Buildah reads the lists once and never follows the host's writes.
        assert (shared / rel).read_bytes() == b"0" * 64
    # A store without lists yet (a host that never stored an image) is no error.
    empty = tmp_path / "empty"
    for part in ("overlay-images", "overlay-layers"):
        (empty / part).mkdir(parents=True)
    subprocess.run(["sh", "-ec", "; ".join(prelude(str(empty)))], check=True)
    assert not (empty / LISTS[0]).exists()


def test_host_ro_has_no_pod_form_and_a_kube_build_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(NoPodForm, match="--profile project or isolated"):
        kube_manifest(host_ro())
    engine = ReplayEngine(History(tmp_path / "h.sqlite3"))
    with pytest.raises(NoPodForm):
        engine.prepare(BuildRequest(HELLO, "host-ro", on="kube"))
    assert not (tmp_path / "data" / "buildcage" / "conf").exists()
    assert engine.prepare(BuildRequest(HELLO, "project", on="kube")).on == "kube"


def test_the_overlays_show_in_the_facts_as_read_only_access_to_the_host_store():
    kwargs = create_kwargs(host_ro())
    # podman 4.3's inspect has no trace of an overlay volume: the facts take them as asked for.
    attrs = json.loads((INSPECT / "project.json").read_text())
    facts = facts_from_inspect(attrs, overlay_volumes=kwargs["overlay_volumes"])
    assert facts.host_store == "read-only"
    assert facts.host_store_via == ("/var/lib/shared/overlay", "/var/lib/shared/overlay-images",
                                    "/var/lib/shared/overlay-layers")
    assert {(m.kind, m.read_only) for m in facts.mounts if m.target.startswith("/var/lib/sh")
            } == {("overlay", True)}


def test_containers_outside_the_phases_take_the_same_copies_first():
    """The sweeper, the load's export and the layer reader run Buildah on the same mounts."""
    argv = ["buildah", "rm", "abc"]
    wrapped = host_ro().on_store(argv)
    assert wrapped[:2] == ["sh", "-ec"]
    assert wrapped[2].startswith("if [ -e /var/lib/shared/overlay-layers/layers.json ]")
    assert wrapped[2].endswith("; exec buildah rm abc")
    assert make_plan(HELLO, config=Config(), profile="project").on_store(argv) == argv
    # The debug shell's container (and its sweep) too: its buildah from may read a host image.
    shell = ["sh", "-ec", "buildah from --pull=never x\nbuildah run x -- /bin/sh"]
    assert list(host_ro().debug_phase(shell).command) == host_ro().on_store(shell)
    assert list(make_plan(HELLO, config=Config(), profile="project").debug_phase(shell).command
                ) == shell


FAKE_CP = """#!/bin/sh
# cp, except that the first copy of images.json happens while the host's podman adds an image:
# its layer lands in layers.json first, then the image in images.json. Through the overlay a
# phase sees the host's change only in a list it has not replaced with its own copy yet (the
# same inode as at the start).
case "$1" in
  */images.json)
    if [ ! -e "$MARK" ]; then
      touch "$MARK"
      if [ "$(stat -c %i "$LAYERS")" = "$LAYERS_INODE" ]; then
        printf '[{"id":"l1"},{"id":"l2"}]' > "$LAYERS"
      fi
      printf '[{"id":"i1","layer":"l1"},{"id":"i2","layer":"l2"}]' > "$1"
    fi ;;
esac
exec /bin/cp "$@"
"""


def test_a_phase_copies_lists_that_agree_while_the_host_adds_an_image(tmp_path):
    """Seen in a full test run: a host-ro build failed "checking if cached image exists ...:
    getting top layer info: layer not known" when the host added an image between the copy of
    layers.json and that of images.json (Buildah's cache lookup reads every image)."""
    store = tmp_path / "shared"
    for part in ("overlay-layers", "overlay-images"):
        (store / part).mkdir(parents=True)
    (store / "overlay-layers" / "layers.json").write_text('[{"id":"l1"}]')
    (store / "overlay-images" / "images.json").write_text('[{"id":"i1","layer":"l1"}]')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cp").write_text(FAKE_CP)
    (bin_dir / "cp").chmod(0o755)
    script = "; ".join(prelude(str(store)))
    layers_path = store / "overlay-layers" / "layers.json"
    subprocess.run(["sh", "-ec", script], check=True, timeout=30,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin", "MARK": str(tmp_path / "added"),
                        "LAYERS": str(layers_path),
                        "LAYERS_INODE": str(layers_path.stat().st_ino)})
    layers = {r["id"] for r in json.loads((store / "overlay-layers" / "layers.json").read_text())}
    images = json.loads((store / "overlay-images" / "images.json").read_text())
    assert {image["layer"] for image in images} <= layers
    assert sorted(p.name for p in (store / "overlay-layers").iterdir()) == ["layers.json",
                                                                            "layers.lock"]
    assert sorted(p.name for p in (store / "overlay-images").iterdir()) == ["images.json",
                                                                            "images.lock"]
