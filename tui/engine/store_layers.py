"""An image's layers report read from its store's own files, when no publish phase runs.

A fresh store (``isolated``) goes with its build, so the layers' report was written by the
publish phase: ``buildah push --disable-compression IMAGE dir:``, read by
``tui.engine.layer_reader``. That container (start, the push, removal: about 0.6 s of a warm
``isolated`` build here) was the build's last only for that. containers/storage keeps what the
push reassembles each layer's tar from: its *tar-split* record
(``overlay-layers/LAYER.tar-split.gz``, gzipped JSON lines: ``{"type":2,"payload":B64}`` the
archive's own bytes between files, headers and padding; ``{"type":1,"name":N,"size":S}`` a
file's data, which lives in the layer's directory). The headers are those bytes exactly, so
reading them here gives the report the push gave, with no file's data read at all: the files'
data are zeros that are never made (``TarSplitStream`` seeks over them).

The store is hostile (the RUN steps shared its builder), as for every store file
(``tui.engine.store_files``): each file read below a descriptor with no link followed, sizes
bounded (``MAX_SPLIT_BYTES`` compressed, ``MAX_INFLATED`` inflated, ``MAX_LINE`` a record),
keys Go would read as one refused, base64 checked; the layer chain must be the manifest's
layers, each with the manifest's digest (``diff-digest``), and the tar headers are read by
``tui.engine.tar_headers`` with its limits. A store that is not what c/storage writes gives no
report (the build goes on, with a warning), never a wrong one the push would not have given.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import posixpath
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any, cast

from tui.engine.layers import LayerInput, LayerReport, analyze, instructions_for
from tui.engine.store_files import (
    StoreFileError,
    is_digest,
    is_image_id,
    parse_json,
    read_file,
    read_images,
)
from tui.engine.tar_headers import MAX_ENTRIES, MAX_META, TarError

MAX_SPLIT_BYTES = 64 << 20
"""A layer's compressed tar-split record: about 40 bytes per entry gzipped (measured on the
recorded stores); 64 MiB is far beyond ``MAX_ENTRIES`` entries."""
MAX_LINE = 2 * MAX_META
"""One JSON record: base64 of at most one ``MAX_META`` header record, and its JSON."""
MAX_INFLATED = 512 << 20
"""Inflated bytes read for one image, all its layers' records together: a gzip bomb stops here.
c/storage writes about 800 bytes an entry (a header's 512 bytes in base64, a file's record):
about 650,000 entries. A hostile record costs 0.5 us a byte to parse (measured in the review),
so this bounds a bomb to minutes, which the build's cancel ends (checked every CHECK_EVERY
records)."""
MAX_FILE_SIZE = 1 << 62
CHECK_EVERY = 4096
"""Records between looks at the build's cancel."""


class Budget:
    """What one image's records may cost, all layers together: inflated bytes, records (about
    two an entry: a header's bytes, a file's record; records that make no bytes cost their
    parse all the same), and the build's cancel."""

    def __init__(self, layers: int, canceled: Callable[[], bool] | None = None) -> None:
        self.inflated = MAX_INFLATED
        self.records = 2 * MAX_ENTRIES + 8 * (layers + 1)
        self.canceled = canceled

    def spend(self, size: int) -> None:
        self.inflated -= size
        self.records -= 1
        if self.inflated < 0:
            raise OSError(f"the layers' records are over {MAX_INFLATED} bytes inflated")
        if self.records < 0:
            raise OSError("more tar-split records than the entries allowed need")
        if self.canceled is not None and self.records % CHECK_EVERY == 0 and self.canceled():
            raise OSError("canceled")


class StoreLayersError(Exception):
    """The store's records cannot give the report; the message says why."""


def big_data_name(key: str) -> str:
    """The file c/storage keeps an image's big-data item ``key`` in (``makeBigDataBaseName``):
    the key itself when it is only ``[.0-9a-z]``, else ``=`` and its base64."""
    if key and all(c == "." or "0" <= c <= "9" or "a" <= c <= "z" for c in key):
        return key
    return "=" + base64.b64encode(key.encode()).decode()


class TarSplitStream(io.RawIOBase):
    """A layer's tar as its tar-split record describes it, forward only: recorded bytes as
    they are, file data as zeros, which ``seek`` passes over without making them. ``end``: the
    layer's size as its record says (what ``seek(0, 2)`` answers)."""

    def __init__(self, compressed: bytes, end: int, budget: Budget | None = None) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=io.BytesIO(compressed), mode="rb")
        self._end = end
        self._budget = budget or Budget(1)
        self._pos = 0
        self._buf = b""
        self._at = 0
        self._zeros = 0
        self._done = False
        self._names: set[str] = set()

    def finish(self) -> None:
        """Reads the records to their end (the end-of-archive blocks and the padding after
        them): they must make exactly the layer's size, as the push's reassembly does."""
        while True:
            self._pos += len(self._buf) - self._at + self._zeros
            self._at, self._zeros = len(self._buf), 0
            if not self._next():
                break
        if self._pos != self._end:
            raise OSError(f"the tar-split records make {self._pos} bytes, the layer has "
                          f"{self._end}")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            return self._end  # (asked once for the length; the position does not move)
        if whence != 0 or offset < self._pos:
            raise OSError("a tar-split stream only goes forward")
        self._advance(offset - self._pos)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise OSError("a tar-split stream is read in pieces")
        out = bytearray()
        while len(out) < size:
            if self._at < len(self._buf):
                take = min(size - len(out), len(self._buf) - self._at)
                out += self._buf[self._at:self._at + take]
                self._at += take
            elif self._zeros:
                take = min(size - len(out), self._zeros)
                out += bytes(take)
                self._zeros -= take
            elif not self._next():
                break
            else:
                continue
            self._pos += take
        return bytes(out)

    def _advance(self, count: int) -> None:
        while count:
            if self._at < len(self._buf):
                take = min(count, len(self._buf) - self._at)
                self._at += take
            elif self._zeros:
                take = min(count, self._zeros)
                self._zeros -= take
            elif not self._next():
                raise OSError("the tar-split record ends inside the archive")
            else:
                continue
            self._pos += take
            count -= take

    def _next(self) -> bool:
        """Loads the next record; False at the end."""
        if self._done:
            return False
        try:
            line = self._gzip.readline(MAX_LINE + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise OSError(f"the tar-split record does not inflate: {exc}") from None
        if not line:
            self._done = True
            return False
        if len(line) > MAX_LINE:
            raise OSError(f"a tar-split record longer than {MAX_LINE} bytes")
        self._budget.spend(len(line))
        try:  # (as every store file: as Go reads it)
            entry = parse_json(line, "a tar-split record")
        except StoreFileError:
            raise OSError("a tar-split line that is not a JSON record") from None
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == 1:
            size = entry.get("size", 0)
            if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
                raise OSError(f"a tar-split file record with size {str(size)[:40]!r}")
            name = entry.get("name", "")
            if isinstance(name, str) and name:  # tar-split refuses a path recorded twice
                clean = posixpath.normpath("/" + name)
                if clean in self._names:
                    raise OSError("a file recorded twice in the tar-split records")
                self._names.add(clean)
            self._zeros = size
        elif kind == 2:
            payload = entry.get("payload")
            if not isinstance(payload, str) or len(payload) % 4:  # Go: whole quanta only
                raise OSError("a tar-split segment without bytes, or not base64")
            try:
                self._buf, self._at = base64.b64decode(payload, validate=True), 0
            except (binascii.Error, ValueError):
                raise OSError("a tar-split segment that is not base64") from None
        else:
            raise OSError(f"a tar-split record of type {str(kind)[:20]!r}")
        return True


def read_store_layers(root: str, image_id: str, *, source: str = "",
                      canceled: Callable[[], bool] | None = None) -> LayerReport:
    """The report of image ``image_id`` (64 hex) from the c/storage root ``root``; raises
    StoreLayersError (also when ``canceled()`` says so, while the records are read).

    The report is the records': what the push would reassemble the layers' tars from. It is
    not checked against the layers' digests (that means reading every file's data, as the push
    did): a RUN step can rewrite the records of the layers below it, and a process it left
    behind those of its own, so a hostile build can make the report of its own image say other
    files. That image goes with the build (it is pushed nowhere: a push runs the publish phase,
    which reads the layers through ``buildah push`` and its digest checks)."""
    from tui.engine.layer_reader import entries_of  # (the reader of ``dir:`` layouts' too)

    if not is_image_id(image_id):
        raise StoreLayersError(f"{image_id[:80]!r} is no image id")
    try:
        found = [r for r in read_images(root) if r.get("id") == image_id]
        if len(found) != 1:  # (two records of one id: c/storage keeps one, not ours to guess)
            raise StoreLayersError(f"the store has {len(found)} records of image "
                                   f"{image_id[:12]}")
        record = found[0]
        manifest = parse_json(read_file(root, f"overlay-images/{image_id}/manifest", 1 << 20),
                              "the image's manifest")
        descriptors = manifest.get("layers") if isinstance(manifest, dict) else None
        config_ref = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(descriptors, list) or not isinstance(config_ref, dict) or \
                config_ref.get("digest") != f"sha256:{image_id}":
            raise StoreLayersError("the image's manifest is not that image's")
        raw_config = read_file(root, f"overlay-images/{image_id}/"
                                     f"{big_data_name('sha256:' + image_id)}")
        if hashlib.sha256(raw_config).hexdigest() != image_id:  # (as c/image checks it)
            raise StoreLayersError("the image's config is not that image's")
        config = parse_json(raw_config, "the image's config")
        chain = _chain(root, record, len(descriptors))
    except StoreFileError as exc:
        raise StoreLayersError(str(exc)) from None
    history = config.get("history") if isinstance(config, dict) else None
    made_by = instructions_for(history, len(descriptors))
    inputs: list[LayerInput] = []
    budget = MAX_ENTRIES
    spent = Budget(len(descriptors), canceled)
    for index, (descriptor, (layer_id, layer)) in enumerate(zip(descriptors, chain,
                                                                 strict=True)):
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not is_digest(digest) or layer.get("diff-digest") != digest:
            raise StoreLayersError(f"layer {index} is not the manifest's")
        size = layer.get("diff-size")
        if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
            raise StoreLayersError(f"layer {index} has no size")
        try:
            compressed = read_file(root, f"overlay-layers/{layer_id}.tar-split.gz",
                                   MAX_SPLIT_BYTES)
            split = TarSplitStream(compressed, size, spent)
            entries = list(entries_of(cast(IO[bytes], split), budget))
            split.finish()
        except (StoreFileError, TarError, OSError) as exc:
            raise StoreLayersError(f"layer {index} ({digest[:19]}): {exc}") from None
        budget -= len(entries)
        instruction, folded = made_by[index]
        inputs.append(LayerInput(digest, entries, instruction, folded, size))
    return analyze(image_id, inputs, source=source)


def _chain(root: str, record: Mapping[str, Any], count: int
           ) -> list[tuple[str, Mapping[str, Any]]]:
    """The image's layers, bottom first, as (id, record): its top layer and its parents."""
    lists = parse_json(read_file(root, "overlay-layers/layers.json"),
                       "overlay-layers/layers.json")
    if not isinstance(lists, list):
        raise StoreLayersError("overlay-layers/layers.json is not a list")
    ids = [r.get("id") for r in lists if isinstance(r, dict)]
    if len(ids) != len(set(map(str, ids))):  # (which one c/storage keeps is not ours to guess)
        raise StoreLayersError("overlay-layers/layers.json has two records of one layer")
    layers = {r["id"]: r for r in lists if isinstance(r, dict) and is_image_id(r.get("id"))}
    chain: list[tuple[str, Mapping[str, Any]]] = []
    layer_id = record.get("layer")
    while layer_id:
        if len(chain) >= count or not isinstance(layer_id, str) or layer_id not in layers:
            raise StoreLayersError("the image's layers are not its manifest's")
        chain.append((layer_id, layers[layer_id]))
        layer_id = layers[layer_id].get("parent")
    if len(chain) != count:
        raise StoreLayersError("the image's layers are not its manifest's")
    return chain[::-1]
