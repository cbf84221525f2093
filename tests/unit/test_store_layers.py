"""Layers read from a store's tar-split records (tui.engine.store_layers): the headers the
push would give, file data never made, and every hostile record refused (real stores:
tests/integration/test_store_facts_real.py, test_layers_real.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from tests.support.tar_split import a_tar, gz_lines, split_of, write_store
from tui.engine import store_layers
from tui.engine.layer_reader import entries_of
from tui.engine.store_layers import (
    StoreLayersError,
    TarSplitStream,
    big_data_name,
    read_store_layers,
)
from tui.engine.tar_headers import TarError, read_headers


def test_the_headers_are_the_tars_and_no_data_is_made() -> None:
    tar = a_tar({"a": b"x" * 5000, "dir/b": b"", "c": os.urandom(700)})
    stream = TarSplitStream(gz_lines(split_of(tar)), len(tar))
    assert list(read_headers(stream)) == list(read_headers(io.BytesIO(tar)))


def test_a_huge_file_is_passed_over_not_made() -> None:
    """A record may claim any size; seeking over it makes nothing (a read of it would)."""
    huge = 8**11 - 1  # 8 GiB, the most an octal size field holds
    header = bytearray(a_tar({"big": b""})[:512])
    header[124:136] = b"%011o\0" % huge
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    records = [{"type": 2, "payload": base64.b64encode(bytes(header)).decode()},
               {"type": 1, "name": "big", "size": huge},
               {"type": 2, "payload": base64.b64encode(bytes(1 + 1024)).decode()}]
    stream = TarSplitStream(gz_lines(records), huge + 4096)
    (entry,) = read_headers(stream)
    assert entry.size == huge


@pytest.mark.parametrize(("line", "why"), [
    (b'{"type": 2, "payload": "not base64!"}', "base64"),
    (b'{"type": 2, "payload": 5}', "without bytes"),
    (b'{"type": 1, "size": -1}', "size"),
    (b'{"type": 1, "size": true}', "size"),
    (b'{"type": 1, "size": 1e3}', "size"),
    (b'{"type": 3}', "type"),
    (b'{"type": 2, "Type": 1, "payload": ""}', "JSON record"),  # Go reads both keys as one
    (b"[1]", "type"),
    (b"{", "JSON record"),
], ids=lambda v: v.decode()[:24] if isinstance(v, bytes) else v)
def test_a_hostile_record_is_refused(line: bytes, why: str) -> None:
    with pytest.raises(TarError, match=why):
        list(entries_of(TarSplitStream(gz_lines([line]), 1024), 10))


def test_a_record_longer_than_a_line_may_be_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_layers, "MAX_LINE", 100)
    line = json.dumps({"type": 2, "payload": base64.b64encode(bytes(512)).decode()}).encode()
    with pytest.raises(TarError, match="longer than"):
        list(entries_of(TarSplitStream(gz_lines([line]), 1024), 10))


def test_a_gzip_bomb_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_layers, "MAX_INFLATED", 10_000)
    empty = b'{"type": 1, "size": 0}'
    with pytest.raises(TarError, match="inflated"):
        list(entries_of(TarSplitStream(gz_lines([empty] * 5000), 1024), 10))


def test_not_gzip_is_refused() -> None:
    with pytest.raises(TarError, match="inflate"):
        list(entries_of(TarSplitStream(b"plain bytes, no gzip", 1024), 10))


def test_records_that_end_inside_a_file_are_refused() -> None:
    tar = a_tar({"a": b"x" * 5000})
    records = split_of(tar)[:2]  # the header, the file's record; nothing after its data
    with pytest.raises(TarError, match="ends inside"):
        list(entries_of(TarSplitStream(gz_lines(records), len(tar) * 10), 10))


def test_big_data_names_are_c_storages() -> None:
    assert big_data_name("manifest") == "manifest"
    assert big_data_name("sha256:ab") == "=" + base64.b64encode(b"sha256:ab").decode()


# -- a whole store ------------------------------------------------------------------------------



def test_the_report_of_a_store(tmp_path: Path) -> None:
    image = write_store(tmp_path, [a_tar({"etc/os": b"1" * 100}), a_tar({"app/a": b"2" * 300})])
    report = read_store_layers(str(tmp_path), image, source="the store")
    assert report.image_id == image and report.source == "the store"
    assert [(x.entries, x.size) for x in report.layers] == [(1, 100), (1, 300)]


def test_a_manifest_digest_that_is_not_the_layers_is_refused(tmp_path: Path) -> None:
    image = write_store(tmp_path, [a_tar({"a": b"1"})], digests=["sha256:" + "0" * 64])
    with pytest.raises(StoreLayersError, match="not the manifest's"):
        read_store_layers(str(tmp_path), image)


def test_a_parent_loop_is_refused(tmp_path: Path) -> None:
    tars = [a_tar({"a": b"1"}), a_tar({"b": b"2"})]
    ids = [hashlib.sha256(t).hexdigest() for t in tars]
    image = write_store(tmp_path, tars, parents=[ids[1], ids[0]])
    with pytest.raises(StoreLayersError, match="not its manifest's"):
        read_store_layers(str(tmp_path), image)


def test_a_symlinked_record_is_not_followed(tmp_path: Path) -> None:
    tar = a_tar({"a": b"1"})
    image = write_store(tmp_path / "s", [tar])
    split = tmp_path / "s" / "overlay-layers" / f"{hashlib.sha256(tar).hexdigest()}.tar-split.gz"
    (tmp_path / "elsewhere.gz").write_bytes(split.read_bytes())
    split.unlink()
    split.symlink_to(tmp_path / "elsewhere.gz")
    with pytest.raises(StoreLayersError, match="symlink"):
        read_store_layers(str(tmp_path / "s"), image)


def test_an_id_that_is_not_an_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreLayersError, match="no image id"):
        read_store_layers(str(tmp_path), "../../etc")


def test_the_builds_cancel_ends_the_reading(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No container runs while the records are read (the review: a bomb's minutes could not
    be stopped): the build's cancel is looked at every CHECK_EVERY records."""
    monkeypatch.setattr(store_layers, "CHECK_EVERY", 2)
    image = write_store(tmp_path, [a_tar({f"f{i}": b"1" for i in range(20)})])
    with pytest.raises(StoreLayersError, match="canceled"):
        read_store_layers(str(tmp_path), image, canceled=lambda: True)
    assert read_store_layers(str(tmp_path), image, canceled=lambda: False).layers
