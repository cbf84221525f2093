"""Drops, from a project store's own image list, the images whose top layer no store holds.

Why (seen here with both fuse-overlayfs and the kernel overlay, tests/integration/
test_store_heal_real.py): when every step of a host-ro build hits the cache from a host image,
Buildah tags that image, and containers/storage records it in the project store's
``overlay-images/images.json`` while its top layer lives only in the host's store (an
additional, read-only store). Once the host removes the image, that record names a layer no
store knows, and every later cached build in the project store failed for good with "checking
if cached image exists from a previous build: getting top layer info: layer not known".

So before a build takes a local project store (the runner holds the store's flock: no other
buildcage build writes it, and no builder has it open), the records whose top layer is in
neither the store's own ``overlay-layers`` nor in an additional store the builder sees are
dropped, with their metadata directory. c/storage keeps no cache of the list between
processes: each builder is a new process that reads ``images.json`` when it loads the store
(its lock file's last-writer record only tells a process that already has the list loaded to
read it again), so a rewritten file is what the next builder sees; the real test checks it.

The files are hostile input (a builder writes them): they are read as every store file is
(``tui.engine.store_files``: no link followed, no device or FIFO opened, sizes and object counts
bounded, keys Go would read as one refused), anything but the expected shape leaves the store
untouched with a warning, and only a directory named by a 64-hex-digit id is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.engine.store_files import StoreFileError, parse_json, read_at
from tui.engine.text import visible

IMAGES = ("overlay-images", "images.json")
LAYER_LISTS = (("overlay-layers", "layers.json"), ("overlay-layers", "volatile-layers.json"))
"""c/storage keeps layers in layers.json, and those of volatile containers apart."""
MAX_LIST_BYTES = 256 << 20
"""A larger list is refused (left alone): far beyond any store here, and read whole."""
IMAGE_ID = re.compile(r"[0-9a-f]{64}")
SHOWN = 10
"""Dropped images named in the warning; the rest are counted."""


class Unreadable(Exception):
    """A list that is not what c/storage writes: the store is left alone."""


@dataclass
class Healed:
    """What ``heal`` did to one store."""

    dropped: list[str] = field(default_factory=list)
    """The dropped images: short id and names, for the user."""
    problem: str = ""
    """Why the store was left alone, if it was."""

    def warnings(self) -> list[str]:
        out = []
        if self.dropped:
            shown = ", ".join(self.dropped[:SHOWN])
            more = f" and {len(self.dropped) - SHOWN} more" if len(self.dropped) > SHOWN else ""
            out.append(f"dropped {len(self.dropped)} image records whose layers the host removed "
                       f"from the project store: {shown}{more}")
        if self.problem:
            out.append(f"project store left as it is: {self.problem}")
        return out


def heal(store: Path, additional: Iterable[Path]) -> Healed:
    """Drops from ``store``'s images.json every image whose top layer is neither in
    ``store`` nor in one of the ``additional`` stores (c/storage roots). ``store`` must be a
    directory path with no link on the way (``paths.checked_store_dir``)."""
    healed = Healed()
    try:
        root = _open_dir(None, str(store))
    except FileNotFoundError:
        return healed  # no store yet: nothing recorded
    except OSError as exc:
        healed.problem = f"cannot open {store}: {exc.strerror or exc}"
        return healed
    try:
        try:
            images_dir = _open_dir(root, IMAGES[0])
        except FileNotFoundError:
            return healed
        try:
            raw = _read(images_dir, IMAGES[1])
            if raw is None:
                return healed
            records = _image_records(raw)
            layers = _layer_ids(root)
            if all(not r.get("layer") or r["layer"] in layers for r in records):
                return healed  # (the usual case: the other stores' lists are not read)
            for extra in additional:
                try:  # (a read-only root the user named: a link to it is followed)
                    extra_root = os.open(extra, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # c/storage reads a missing store as an empty one
                try:
                    layers |= _layer_ids(extra_root)
                finally:
                    os.close(extra_root)
            keep = [r for r in records if not r.get("layer") or r["layer"] in layers]
            if len(keep) == len(records):
                return healed
            gone = [r for r in records if r.get("layer") and r["layer"] not in layers]
            _replace(images_dir, IMAGES[1], (json.dumps(keep) + "\n").encode())
            for record in gone:
                healed.dropped.append(_shown(record))
                _remove_metadata(images_dir, record["id"])
        finally:
            os.close(images_dir)
    except Unreadable as exc:
        healed.problem = str(exc)
    except OSError as exc:
        healed.problem = f"{exc.filename or store}: {exc.strerror or exc}"
    finally:
        os.close(root)
    return healed


def _open_dir(parent: int | None, name: str) -> int:
    """A directory, never through a link as its last component (the ones before are the
    caller's, checked)."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   dir_fd=parent)


def _read(directory: int, name: str) -> bytes | None:
    """A regular file's bytes, None if it does not exist; a link, a device, a FIFO or a file
    over MAX_LIST_BYTES refused (the one hostile-file reader: tui.engine.store_files)."""
    try:
        return read_at(directory, name, MAX_LIST_BYTES)
    except StoreFileError as exc:
        raise Unreadable(str(exc)) from None


def _parse(raw: bytes, name: str) -> list[dict[str, Any]]:
    try:
        value = parse_json(raw, name)
    except StoreFileError as exc:
        raise Unreadable(str(exc)) from None
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise Unreadable(f"{name} is not a list of records")
    for record in value:
        if not isinstance(record.get("id"), str) or not record["id"]:
            raise Unreadable(f"{name} has a record without an id")
    return value


def _image_records(raw: bytes) -> list[dict[str, Any]]:
    records = _parse(raw, "images.json")
    for record in records:
        if not isinstance(record.get("layer", ""), str):
            raise Unreadable("images.json has a record whose layer is not a string")
        names = record.get("names")
        if names is not None and not (isinstance(names, list)
                                      and all(isinstance(n, str) for n in names)):
            raise Unreadable("images.json has a record whose names are not strings")
    return records


def _layer_ids(root: int) -> set[str]:
    """The ids of the layers a c/storage root records (missing lists: none, as c/storage)."""
    ids: set[str] = set()
    try:
        layers_dir = _open_dir(root, LAYER_LISTS[0][0])
    except FileNotFoundError:
        return ids
    try:
        for _, name in LAYER_LISTS:
            raw = _read(layers_dir, name)
            if raw is not None:
                ids |= {r["id"] for r in _parse(raw, name)}
    finally:
        os.close(layers_dir)
    return ids


def _replace(directory: int, name: str, data: bytes) -> None:
    """Writes ``name`` anew, atomically, keeping its owner and mode: a temporary file in the
    same directory, synced, renamed over it, the directory synced."""
    old = os.stat(name, dir_fd=directory, follow_symlinks=False)
    temp = f".{name}.buildcage-{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=directory)
    try:
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
            os.fchmod(fd, stat.S_IMODE(old.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=directory)
        raise
    os.fsync(directory)


def _remove_metadata(images_dir: int, image_id: str) -> None:
    """``overlay-images/<id>/`` (manifest, config), only for a real id and a real directory."""
    if not IMAGE_ID.fullmatch(image_id):
        return
    try:
        info = os.stat(image_id, dir_fd=images_dir, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        # With dir_fd, rmtree works on descriptors and never follows a link inside.
        shutil.rmtree(image_id, dir_fd=images_dir)


def _shown(record: dict[str, Any]) -> str:
    names = record.get("names") or []
    short = record["id"][:12] if IMAGE_ID.fullmatch(record["id"]) else repr(record["id"][:64])
    return visible(f"{short} ({', '.join(names)})" if names else short)
