"""A build's store read here (tui.engine.store_files): the store is the build's, so every file in
it is hostile. Symlinks lead nowhere, FIFOs do not hang, sizes are capped, values are checked."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.support.blocking import in_time
from tui.engine import store_files
from tui.engine.config import Config
from tui.engine.events import ImageFact
from tui.engine.facts import MountFact, read_overlay
from tui.engine.plan import BuildPlan
from tui.engine.planner import make_plan
from tui.engine.store_files import read_store_facts
from tui.engine.stores import store_image_names

pytestmark = pytest.mark.usefixtures("data_home")

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
TAG = "localhost/buildcage/ctx:latest"
IMAGE, BASE_ID = "6" * 64, "e" * 64
DIGEST = "sha256:" + "4" * 64


def plan_of(context: Path, **options: object) -> BuildPlan:
    return make_plan(context, config=Config(), profile="project", project="p", **options)


def store_of(plan: BuildPlan) -> Path:
    assert plan.store_dir is not None
    root = plan.store_dir / "storage"
    (root / "overlay-images").mkdir(parents=True)
    (root / "overlay").mkdir()
    return root


def write_store(root: Path, records: object | None = None, sizes: object = (2140160, 2048)
                ) -> None:
    """RECORDS (default: the base, an intermediate image, the built one) as images.json, and a
    manifest naming its config for each record with a 64-hex id (the built image's layers
    SIZES), as c/storage keeps them."""
    if records is None:
        records = [{"id": BASE_ID, "digest": DIGEST, "names": [BASE]},
                   {"id": "0" * 64, "names-history": ["x"]},  # an intermediate image
                   {"id": IMAGE, "digest": "sha256:" + "8" * 64, "names": [TAG]}]
    (root / "overlay-images" / "images.json").write_text(json.dumps(records))
    for record in records if isinstance(records, list) else []:
        image = record.get("id") if isinstance(record, dict) else None
        if not (isinstance(image, str) and len(image) == 64 and image.isalnum()):
            continue
        (root / "overlay-images" / image).mkdir(exist_ok=True)
        layers = sizes if image == IMAGE else (1,)
        manifest = {"schemaVersion": 2, "config": {"digest": "sha256:" + image, "size": 2},
                    "layers": [{"size": s, "digest": "sha256:" + "1" * 64}
                               for s in layers]}  # type: ignore[attr-defined]
        (root / "overlay-images" / image / "manifest").write_text(json.dumps(manifest))
    (root / "overlay" / ".has-mount-program").write_text("false")


def test_the_facts_the_publish_phase_would_write(context: Path) -> None:
    plan = plan_of(context)
    assert plan.tag == TAG
    write_store(store_of(plan))
    facts = read_store_facts(plan, {})
    assert facts.image_id == IMAGE
    assert facts.layers == (2140160, 2048)
    assert facts.overlay == "kernel"
    assert facts.bases == (ImageFact(ref=BASE, id=BASE_ID, digest=DIGEST),)
    assert facts.pushed is None and facts.cache is None


def test_a_base_the_store_lacks_comes_from_the_host_pins(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    write_store(root, [{"id": IMAGE, "names": [TAG]}])
    pinned = {BASE: ImageFact(ref=BASE, id="a" * 64, digest=DIGEST)}
    assert read_store_facts(plan, pinned).bases == (pinned[BASE],)
    assert read_store_facts(plan, {}).bases is None


def test_a_symlinked_image_list_is_not_followed(context: Path, tmp_path: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "images.json").write_text(json.dumps([{"id": IMAGE, "names": [TAG, BASE]}]))
    (root / "overlay-images" / "images.json").symlink_to(elsewhere / "images.json")
    assert read_store_facts(plan, {}).image_id == ""
    # The fetch phase's "is anything missing?" read it too (and followed it).
    assert store_image_names(plan) == []


def test_a_symlinked_directory_is_not_followed(context: Path, tmp_path: Path) -> None:
    plan = plan_of(context)
    assert plan.store_dir is not None
    elsewhere = tmp_path / "elsewhere" / "storage"
    (elsewhere / "overlay-images").mkdir(parents=True)
    (elsewhere / "overlay").mkdir()
    write_store(elsewhere)
    root = plan.store_dir / "storage"
    root.mkdir(parents=True)
    (root / "overlay-images").symlink_to(elsewhere / "overlay-images")
    assert read_store_facts(plan, {}).image_id == ""
    assert store_image_names(plan) == []


def test_a_fifo_does_not_hang_the_build(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    os.mkfifo(root / "overlay-images" / "images.json")
    os.mkfifo(root / "overlay" / ".has-mount-program")
    assert in_time(lambda: read_store_facts(plan, {})).image_id == ""  # type: ignore[attr-defined]
    assert in_time(lambda: store_image_names(plan)) == []
    conf = context.parent / "storage.conf"
    conf.write_text("[storage]\n")
    mounts = (MountFact(str(plan.store_dir), "/var/lib/containers", False, "bind"),
              MountFact(str(conf), "/etc/containers/storage.conf", True, "bind"))
    # The security card reads the same record from the build's mounts.
    assert in_time(lambda: read_overlay(mounts)) == "kernel overlay"


def test_a_device_link_or_a_huge_file_is_not_read(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-images" / "images.json").symlink_to("/dev/zero")
    assert read_store_facts(plan, {}).image_id == ""
    assert store_image_names(plan) == []
    (root / "overlay-images" / "images.json").unlink()
    with open(root / "overlay-images" / "images.json", "w") as handle:
        handle.truncate(store_files.MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(store_files.StoreFileError, match="larger than"):
        store_files.read_images(str(root))
    assert read_store_facts(plan, {}).image_id == ""


def test_a_name_on_two_images_names_none(context: Path) -> None:
    plan = plan_of(context)
    write_store(store_of(plan), [{"id": IMAGE, "names": [TAG]},
                                 {"id": "7" * 64, "names": [TAG, BASE]}])
    facts = read_store_facts(plan, {})
    assert facts.image_id == "" and facts.layers is None


@pytest.mark.parametrize("bad_id", ["../../../../etc", "6" * 63, "6" * 64 + "\n", 66, None])
def test_only_a_64_hex_id_names_an_image(context: Path, bad_id: object) -> None:
    plan = plan_of(context)
    write_store(store_of(plan), [{"id": bad_id, "names": [TAG]}])
    facts = read_store_facts(plan, {})
    assert facts.image_id == "" and facts.layers is None


@pytest.mark.parametrize("sizes", [(-1,), (True,), ("12",), (1.5,), (None,)])
def test_layer_sizes_are_non_negative_integers(context: Path, sizes: tuple[object, ...]) -> None:
    plan = plan_of(context)
    write_store(store_of(plan), sizes=sizes)
    facts = read_store_facts(plan, {})  # a manifest buildah inspect would not read either
    assert facts.image_id == "" and facts.layers is None


@pytest.mark.parametrize("records", [{"id": IMAGE}, "[", [1, "x", None], [{"names": "x"}]])
def test_records_that_are_not_a_list_of_objects_give_no_image(context: Path,
                                                              records: object) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    write_store(root)
    (root / "overlay-images" / "images.json").write_text(
        records if isinstance(records, str) else json.dumps(records))
    assert read_store_facts(plan, {}).image_id == ""


def test_a_bad_base_digest_keeps_the_id_only(context: Path) -> None:
    plan = plan_of(context)
    write_store(store_of(plan), [{"id": BASE_ID, "digest": "sha256:\x1b[2J", "names": [BASE]},
                                 {"id": IMAGE, "names": [TAG]}])
    assert read_store_facts(plan, {}).bases == (ImageFact(ref=BASE, id=BASE_ID, digest=""),)


def test_paths_are_only_below_the_store(tmp_path: Path) -> None:
    for bad in ("../x", "a//b", "/etc/passwd", "a/./b"):
        with pytest.raises(store_files.StoreFileError, match="no path below"):
            store_files.read_file(str(tmp_path), bad)


def test_planning_reads_the_stores_overlay_record_without_following_it(context: Path) -> None:
    from tui.engine.overlay import store_record

    plan = plan_of(context)
    root = store_of(plan)
    os.mkfifo(root / "overlay" / ".has-mount-program")
    assert in_time(lambda: store_record(root)) == ""
    os.unlink(root / "overlay" / ".has-mount-program")
    outside = context.parent / "record"
    outside.write_text("true")
    (root / "overlay" / ".has-mount-program").symlink_to(outside)
    assert store_record(root) == ""
    os.unlink(root / "overlay" / ".has-mount-program")
    (root / "overlay" / ".has-mount-program").write_text("true\n")
    assert store_record(root) == "true"


def test_stray_working_containers_are_only_64_hex_ids(context: Path) -> None:
    from tui.engine.stores import stray_working_containers

    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-containers").mkdir()
    good = "c" * 64
    late = "2030-01-01T00:00:00Z"
    records = [{"id": good, "names": ["busybox-working-container"], "created": late},
               {"id": "--all", "names": ["x-working-container"], "created": late},
               {"id": "\x1b]0;pwned\x07" + "c" * 50, "names": ["y-working-container"],
                "created": late},
               {"id": "d" * 64, "names": "z-working-container", "created": 7},
               "not a record"]
    (root / "overlay-containers" / "containers.json").write_text(json.dumps(records))
    assert stray_working_containers(root, 0) == [good]
    (root / "overlay-containers" / "containers.json").unlink()
    os.mkfifo(root / "overlay-containers" / "containers.json")
    assert in_time(lambda: stray_working_containers(root, 0)) == []


def test_only_a_local_store_with_nothing_to_publish_is_read_here(context: Path,
                                                                         tmp_path: Path) -> None:
    assert plan_of(context).facts_read_here
    host_ro = make_plan(context, config=Config(), profile="host-ro", project="p")
    assert host_ro.facts_read_here
    assert not plan_of(context, push="127.0.0.1:5000/x/y:1").facts_read_here
    assert not plan_of(context, load=True).facts_read_here  # an archive to write
    isolated = make_plan(context, config=Config(), profile="isolated", project="p")
    assert isolated.pushes_cache and not isolated.facts_read_here  # the cache to push
    # Its store goes with the build: the layers are read from its volume (store_layers).
    assert dataclasses.replace(isolated, cache_push=False).facts_read_here
    assert not plan_of(context, push=f"oci:{tmp_path}/out").facts_read_here
    # The host's own store (host-rw), on this machine: read here too, but not with --load,
    # which the publish phase's end does (it tags the image in the host's store).
    host_rw = make_plan(context, config=Config(), profile="host-rw", project="p",
                        confirmed=True)
    assert host_rw.facts_read_here and not host_rw.writes_archive
    assert not dataclasses.replace(host_rw, load=True).facts_read_here
    assert not dataclasses.replace(host_rw, remote=True).facts_read_here


def test_host_rw_s_overlay_is_the_plan_s_whatever_the_records_say(context: Path,
                                                                  tmp_path: Path) -> None:
    """A host-rw builder always mounts with fuse-overlayfs; the host store's record is the
    host's, and the builder's private copy of it a RUN step can write: neither is asked
    (a reviewer's case: "false" written there read as the kernel's overlay)."""
    plan = make_plan(context, config=Config(), profile="host-rw", project="p", confirmed=True)
    assert plan.overlay == "fuse"
    root = tmp_path / "store"
    (root / "overlay").mkdir(parents=True)
    (root / "overlay" / ".has-mount-program").write_text("false")
    plan.mount_record_path.parent.mkdir(parents=True, exist_ok=True)
    plan.mount_record_path.write_text("false")
    assert read_store_facts(plan, {}, str(root)).overlay == "fuse"


def test_a_nesting_bomb_is_no_record(context: Path) -> None:
    plan = plan_of(context)
    root = store_of(plan)
    write_store(root)
    bomb = "[" * 200_000 + "]" * 200_000  # 400 kB: Python's json recurses once per level
    (root / "overlay-images" / IMAGE / "manifest").write_text(bomb)
    assert read_store_facts(plan, {}).layers is None
    (root / "overlay-images" / "images.json").write_text(bomb)
    assert read_store_facts(plan, {}).image_id == ""
    assert store_image_names(plan) == []
    from tui.engine.stores import stray_working_containers

    (root / "overlay-containers").mkdir()
    (root / "overlay-containers" / "containers.json").write_text(bomb)
    assert stray_working_containers(root, 0) == []


def test_a_file_of_a_million_empty_objects_is_refused_before_parsing(context: Path) -> None:
    """16 MiB of ``{},`` parsed into 5.6 million dicts (0.5 GB of the host process)."""
    plan = plan_of(context)
    root = store_of(plan)
    (root / "overlay-images" / "images.json").write_bytes(b"[" + b"{}," * 1_000_000 + b"{}]")
    with pytest.raises(store_files.StoreFileError, match="more than 100000 objects"):
        store_files.read_images(str(root))
    assert read_store_facts(plan, {}).image_id == ""


@pytest.mark.parametrize("keys", [("names", "Names"), ("names", "nameſ"), ("id", "ID")],
                         ids=["case", "unicode-fold", "id"])
def test_keys_go_reads_as_one_make_no_record(context: Path, keys: tuple[str, str]) -> None:
    """Buildah (Go's encoding/json) matches a record's keys to its fields ignoring case, with
    Unicode folding (``nameſ`` is ``names``), and the last one wins; Python's json keeps them
    apart. A record {"names": [ours], "Names": [other]} would be the built image here and
    another image to Buildah: a file with such keys is no record at all (review LOW-8)."""
    plan = plan_of(context)
    root = store_of(plan)
    write_store(root)
    first, second = keys
    other = "7" * 64 if first == "id" else "localhost/elsewhere:latest"
    record = {"id": IMAGE, "names": [TAG]}
    value = json.dumps([other] if first == "names" else other)
    text = json.dumps([record])[:-2] + f', "{second}": {value}' + "}]"
    (root / "overlay-images" / "images.json").write_text(text)
    assert json.loads(text)[0][first] == record[first]  # Python alone takes it for ours
    facts = read_store_facts(plan, {})
    assert facts.image_id == "" and facts.layers is None



def test_an_image_list_is_parsed_again_only_when_its_bytes_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build reads the host's image list three or four times (3.2 ms a parse of 468 images
    here): parsed once while its bytes stay the same, again as soon as one byte differs (the
    same size and time too), and what a caller does to the list it got stays its own."""
    root = tmp_path / "store"
    (root / "overlay-images").mkdir(parents=True)
    path = root / "overlay-images" / "images.json"
    path.write_text(json.dumps([{"id": "a" * 64, "names": ["x:1"]}]))
    parses: list[bytes] = []
    real = store_files.parse_json

    def counting(raw: bytes, shown: str) -> object:
        parses.append(raw)
        return real(raw, shown)

    monkeypatch.setattr(store_files, "parse_json", counting)
    first = store_files.read_images(str(root))
    first.append({"id": "mine"})  # the caller's own list
    again = store_files.read_images(str(root))
    assert [r["id"] for r in again] == ["a" * 64] and len(parses) == 1
    stamp = path.stat()
    path.write_text(json.dumps([{"id": "b" * 64, "names": ["x:1"]}]))  # one byte differs
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert [r["id"] for r in store_files.read_images(str(root))] == ["b" * 64]
    assert len(parses) == 2
