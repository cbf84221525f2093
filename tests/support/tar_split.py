"""Stores as containers/storage writes them, for the tar-split reader's tests
(tui.engine.store_layers): tars, their tar-split records, and a store of one image."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tui.engine.store_layers import big_data_name


def a_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def split_of(tar: bytes) -> list[dict[str, object]]:
    """The tar-split records c/storage keeps for ``tar``: its bytes between files, and each
    file's name and size."""
    records: list[dict[str, object]] = []
    done = 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for member in archive.getmembers():
            records.append({"type": 2, "payload": base64.b64encode(
                tar[done:member.offset_data]).decode()})
            records.append({"type": 1, "name": member.name, "size": member.size})
            done = member.offset_data + member.size
    records.append({"type": 2, "payload": base64.b64encode(tar[done:]).decode()})
    return records


def gz_lines(records: list[dict[str, object]] | list[bytes]) -> bytes:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]
    return gzip.compress(b"".join(line + b"\n" for line in lines))


def write_store(root: Path, layer_tars: list[bytes], *,
                splits: list[bytes] | None = None,
                history: list[dict[str, object]] | None = None,
                config: bytes | None = None, image_id: str = "",
                digests: list[str] | None = None, parents: list[str | None] | None = None,
                ) -> str:
    """A store with one image of ``layer_tars``; ``splits``: each layer's tar-split file
    (default: c/storage's records of its tar); ``digests``: the manifest's layer digests
    (default: the layers'); ``parents``: each layer's parent (default: the one below).
    Returns the image id: its config's digest, unless ``image_id`` says otherwise."""
    ids = [hashlib.sha256(t).hexdigest() for t in layer_tars]
    diff = [f"sha256:{i}" for i in ids]
    history = history if history is not None else \
        [{"created_by": f"/bin/sh -c #(nop) step {i}"} for i in range(len(ids))]
    config = config if config is not None else json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": diff}, "history": history}).encode()
    image = image_id or hashlib.sha256(config).hexdigest()
    (root / "overlay-images" / image).mkdir(parents=True)
    (root / "overlay-layers").mkdir()
    (root / "overlay-images" / "images.json").write_text(
        json.dumps([{"id": image, "layer": ids[-1], "names": ["localhost/x:1"]}]))
    (root / "overlay-images" / image / "manifest").write_text(json.dumps({
        "schemaVersion": 2, "config": {"digest": f"sha256:{image}"},
        "layers": [{"digest": d, "size": len(t)} for d, t in zip(digests or diff, layer_tars,
                                                                     strict=True)]}))
    (root / "overlay-images" / image / big_data_name(f"sha256:{image}")).write_bytes(config)
    layers = []
    for index, (layer_id, tar) in enumerate(zip(ids, layer_tars, strict=True)):
        parent = parents[index] if parents else ids[index - 1] if index else None
        layers.append({"id": layer_id, "parent": parent, "diff-digest": diff[index],
                       "diff-size": len(tar)})
        (root / "overlay-layers" / f"{layer_id}.tar-split.gz").write_bytes(
            splits[index] if splits else gz_lines(split_of(tar)))
    (root / "overlay-layers" / "layers.json").write_text(json.dumps(layers))
    return image
