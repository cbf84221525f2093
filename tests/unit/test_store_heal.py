"""tui.engine.store_heal: which image records go, and hostile lists left alone."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tui.engine.store_heal import heal

GONE = "a" * 64
MINE = "b" * 64
HOSTS = "c" * 64
LAYER_GONE, LAYER_MINE, LAYER_HOSTS = "1" * 64, "2" * 64, "3" * 64


def _store(root: Path, images: object, layers: object = ()) -> Path:
    (root / "overlay-images").mkdir(parents=True)
    (root / "overlay-layers").mkdir(parents=True)
    (root / "overlay-images" / "images.json").write_text(json.dumps(images))
    (root / "overlay-layers" / "layers.json").write_text(json.dumps(
        [{"id": layer} for layer in layers]))
    return root


def _images(root: Path) -> list[dict]:
    return json.loads((root / "overlay-images" / "images.json").read_text())


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    records = [{"id": GONE, "names": ["localhost/x:gone"], "layer": LAYER_GONE},
               {"id": MINE, "names": ["localhost/x:mine"], "layer": LAYER_MINE},
               {"id": HOSTS, "layer": LAYER_HOSTS, "big-data-names": ["manifest"]}]
    private = _store(tmp_path / "private", records, [LAYER_MINE])
    host = _store(tmp_path / "host", [], [LAYER_HOSTS])
    for image in (GONE, MINE):
        (private / "overlay-images" / image).mkdir()
        (private / "overlay-images" / image / "manifest").write_text("{}")
    return private, host


def test_drops_only_the_images_whose_layer_no_store_holds(stores) -> None:
    private, host = stores
    listing = private / "overlay-images" / "images.json"
    os.chmod(listing, 0o640)
    owner = (1234, 5678) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(listing, *owner)
    healed = heal(private, [host])
    assert [r["id"] for r in _images(private)] == [MINE, HOSTS]
    assert _images(private)[1]["big-data-names"] == ["manifest"]  # records kept whole
    assert not (private / "overlay-images" / GONE).exists()
    assert (private / "overlay-images" / MINE / "manifest").exists()
    assert healed.warnings() == ["dropped 1 image records whose layers the host removed from "
                                 f"the project store: {GONE[:12]} (localhost/x:gone)"]
    assert listing.stat().st_mode & 0o777 == 0o640
    assert (listing.stat().st_uid, listing.stat().st_gid) == owner
    assert sorted(os.listdir(private / "overlay-images")) == [MINE, "images.json"]


def test_nothing_to_drop_leaves_the_file_as_it_was(stores) -> None:
    private, host = stores
    (host / "overlay-layers" / "layers.json").write_text(json.dumps(
        [{"id": LAYER_HOSTS}, {"id": LAYER_GONE}]))
    before = (private / "overlay-images" / "images.json").stat()
    assert heal(private, [host]).warnings() == []
    after = (private / "overlay-images" / "images.json").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_a_volatile_layer_list_counts_too(stores) -> None:
    private, host = stores
    (private / "overlay-layers" / "volatile-layers.json").write_text(json.dumps(
        [{"id": LAYER_GONE}]))
    assert heal(private, [host]).dropped == []


def test_a_store_without_lists_is_left_alone_silently(tmp_path: Path) -> None:
    assert heal(tmp_path / "absent", [tmp_path]).warnings() == []
    (tmp_path / "empty").mkdir()
    assert heal(tmp_path / "empty", [tmp_path]).warnings() == []


def test_missing_layer_lists_count_as_no_layers(tmp_path: Path) -> None:
    """As c/storage reads them: an image whose layer no list names is dropped."""
    private = tmp_path / "private"
    (private / "overlay-images").mkdir(parents=True)
    (private / "overlay-images" / "images.json").write_text(json.dumps(
        [{"id": GONE, "layer": LAYER_GONE}, {"id": MINE}]))  # MINE: no layer at all (scratch)
    assert heal(private, [tmp_path / "no-host"]).dropped == [GONE[:12]]
    assert [r["id"] for r in _images(private)] == [MINE]


@pytest.mark.parametrize("text", [
    "", "{", "{}", "[1]", '[{"names": []}]', '[{"id": 5}]', '[{"id": "x", "layer": 3}]',
    '[{"id": "x", "names": "one"}]', "[NaN]", b"\xff[]".decode("latin-1"),
    "[" * 100_000 + "]" * 100_000,  # Python's parser: a RecursionError, not a ValueError
], ids=lambda text: repr(text[:12]))
def test_a_malformed_images_json_leaves_the_store_alone(stores, text: str) -> None:
    private, host = stores
    (private / "overlay-images" / "images.json").write_text(text, encoding="latin-1")
    healed = heal(private, [host])
    assert healed.dropped == [] and "images.json" in healed.problem
    assert (private / "overlay-images" / "images.json").read_text("latin-1") == text
    assert (private / "overlay-images" / GONE).exists()
    assert healed.warnings()[0].startswith("project store left as it is: ")


@pytest.mark.parametrize("which", ["private", "host"])
def test_a_malformed_layers_json_leaves_the_store_alone(stores, which: str) -> None:
    private, host = stores
    store = private if which == "private" else host
    (store / "overlay-layers" / "layers.json").write_text('[{"id": "x"}, 7]')
    healed = heal(private, [host])
    assert healed.dropped == [] and "layers.json" in healed.problem
    assert len(_images(private)) == 3


def test_a_symlinked_images_json_is_refused_and_its_target_untouched(stores,
                                                                     tmp_path: Path) -> None:
    private, host = stores
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps([{"id": GONE, "layer": LAYER_GONE}]))
    listing = private / "overlay-images" / "images.json"
    listing.unlink()
    listing.symlink_to(target)
    healed = heal(private, [host])
    assert healed.dropped == [] and "symlink" in healed.problem
    assert json.loads(target.read_text()) == [{"id": GONE, "layer": LAYER_GONE}]
    assert listing.is_symlink()


def test_a_symlinked_directory_in_the_store_is_refused(stores, tmp_path: Path) -> None:
    private, host = stores
    real = tmp_path / "real-images"
    (private / "overlay-images").rename(real)
    (private / "overlay-images").symlink_to(real)
    healed = heal(private, [host])
    assert healed.dropped == [] and healed.problem
    assert len(json.loads((real / "images.json").read_text())) == 3


def test_an_id_that_is_not_hex_removes_no_directory(stores, tmp_path: Path) -> None:
    private, host = stores
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    hostile = [{"id": "../../outside", "layer": LAYER_GONE},
               {"id": "A" * 64, "layer": LAYER_GONE}]
    (private / "overlay-images" / ("A" * 64)).mkdir()
    (private / "overlay-images" / "images.json").write_text(json.dumps(hostile))
    healed = heal(private, [host])
    assert len(healed.dropped) == 2 and _images(private) == []
    assert (outside / "keep").exists()
    assert (private / "overlay-images" / ("A" * 64)).is_dir()


def test_a_metadata_link_is_not_followed(stores, tmp_path: Path) -> None:
    private, host = stores
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    (private / "overlay-images" / GONE / "manifest").unlink()
    (private / "overlay-images" / GONE / "link").symlink_to(victim)
    heal(private, [host])
    assert (victim / "keep").exists()
    assert not (private / "overlay-images" / GONE).exists()


def test_a_metadata_entry_that_is_a_link_is_left(stores, tmp_path: Path) -> None:
    private, host = stores
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    metadata = private / "overlay-images" / GONE
    (metadata / "manifest").unlink()
    metadata.rmdir()
    metadata.symlink_to(victim)
    assert heal(private, [host]).dropped == [f"{GONE[:12]} (localhost/x:gone)"]
    assert (victim / "keep").exists() and metadata.is_symlink()


def test_names_are_made_visible_in_the_warning(stores) -> None:
    private, host = stores
    (private / "overlay-images" / "images.json").write_text(json.dumps(
        [{"id": GONE, "names": ["x\x1b]0;owned\x07"], "layer": LAYER_GONE}]))
    (message,) = heal(private, [host]).warnings()
    assert "\x1b" not in message and "\\x1b" in message


def test_a_device_as_images_json_is_never_opened(stores, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RUN step may make device nodes in the store (podman's default capabilities include
    MKNOD); opening one can act (a watchdog starts), so it is looked at first, never opened."""
    private, host = stores
    listing = private / "overlay-images" / "images.json"
    listing.unlink()
    os.mknod(listing, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # (/dev/null's numbers)
    opened: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    healed = heal(private, [host])
    assert "images.json" not in [Path(p).name for p in opened]
    assert healed.dropped == [] and "not a regular file" in healed.problem


def test_a_list_of_a_million_objects_is_refused_before_it_is_parsed(stores) -> None:
    """16 MB of ``{},`` are 5.6 million dicts: half a GB of this process (store_files)."""
    private, host = stores
    (private / "overlay-images" / "images.json").write_text("[" + "{}," * 200_000 + "{}]")
    healed = heal(private, [host])
    assert healed.dropped == [] and "objects" in healed.problem


def test_keys_go_reads_as_one_leave_the_store_alone(stores) -> None:
    """{"layer": kept, "Layer": gone}: Buildah reads the second (Go matches keys ignoring
    case); a heal reading the first would keep a record that breaks every cached build."""
    private, host = stores
    (private / "overlay-images" / "images.json").write_text(
        f'[{{"id": "{GONE}", "layer": "{LAYER_MINE}", "Layer": "{LAYER_GONE}"}}]')
    healed = heal(private, [host])
    assert healed.dropped == [] and "images.json" in healed.problem
