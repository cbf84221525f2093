"""Files in and out of a builder on a podman service on another host, through the API.

There the builder cannot bind-mount this machine's paths (``BuildPlan.remote``): the context
snapshot and the generated configuration are copied into the created container before it starts
(``copy_in``: one tar, ``put_archive``), and the publish phase's outputs (the facts directory,
an ``oci:`` layout) are copied back once it has ended (``copy_out``: ``get_archive``). Measured
here against a podman 4.3 service: one ``put_archive`` into a created container costs about
0.15-0.45 s (podman mounts the container's root filesystem for it).

What comes back is extracted with tarfile's ``data`` filter (no absolute names, no ``..``, no
links out of the destination, no devices), under the destination only.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from tui.engine.plan import Mount

CHUNK = 1 << 20


class TransferError(RuntimeError):
    """A copy to or from the builder's container failed."""


def copies(mounts: Iterable[Mount]) -> list[Mount]:
    """The mounts that are copied into the container before it starts."""
    return [m for m in mounts if m.kind in ("copy", "sync")]


def outputs(mounts: Iterable[Mount]) -> list[Mount]:
    """The mounts copied back out of the container once its phase ended."""
    return [m for m in mounts if m.kind == "sync"]


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Entries owned by the container's root (mapped, in a user namespace); only regular files,
    directories and symlinks (a snapshot holds nothing else)."""
    if not (info.isfile() or info.isdir() or info.issym()):
        return None
    return _root_owned(info)


def _parents(target: str, seen: set[str], tar: tarfile.TarFile) -> None:
    """Directory entries for the target's parents that the builder image may lack."""
    parts = PurePosixPath(target).parts[1:-1]
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name in seen:
            continue
        seen.add(name)
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(_root_owned(info))


def write_archive(mounts: Iterable[Mount], out: Any) -> None:
    """One tar of every copied mount, each at its target path (relative to ``/``)."""
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in mounts:
            _parents(m.target, seen, tar)
            arcname = m.target.lstrip("/")
            source = Path(m.source)
            if m.kind == "sync" and not source.exists():
                source.mkdir(mode=0o700, parents=True)
            tar.add(str(source), arcname=arcname, recursive=True, filter=_as_root)


def copy_in(container: Any, mounts: Iterable[Mount]) -> None:
    """Copies the plan's local files into a created (not started) container."""
    wanted = copies(mounts)
    if not wanted:
        return
    with tempfile.TemporaryFile() as spool:  # streamed from disk: a context may be large
        write_archive(wanted, spool)
        spool.seek(0)
        if not container.put_archive("/", spool):
            names = ", ".join(m.target for m in wanted)
            raise TransferError(f"podman refused the copy of {names} into {container.name}")


def copy_out(container: Any, mounts: Iterable[Mount]) -> None:
    """Copies each output directory of an ended container back to its local source."""
    for m in outputs(mounts):
        stream, _stat = container.get_archive(m.target)
        with tempfile.TemporaryFile() as spool:
            for chunk in stream:
                spool.write(chunk)
            spool.seek(0)
            extract_into(spool, Path(m.source), PurePosixPath(m.target).name)


def extract_into(archive: Any, destination: Path, top: str) -> None:
    """Extracts a ``get_archive`` tar, whose one top entry is the directory asked for (named
    ``top``), into ``destination``, merging: what the tar holds replaces files of the same
    name. Anything else in the tar is refused."""
    destination.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".buildcage-incoming-", dir=destination))
    try:
        with tarfile.open(fileobj=archive, mode="r:") as tar:
            tar.extractall(incoming, filter="data")
        tops = list(incoming.iterdir())
        if len(tops) != 1 or tops[0].name != top or not tops[0].is_dir() \
                or tops[0].is_symlink():
            raise TransferError(f"unexpected archive for {destination}: "
                                f"{', '.join(p.name for p in tops) or 'empty'}")
        _merge(tops[0], destination)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _merge(source: Path, destination: Path) -> None:
    for root, dirs, files in os.walk(source):
        rel = Path(root).relative_to(source)
        (destination / rel).mkdir(exist_ok=True)
        for name in files:
            os.replace(Path(root) / name, destination / rel / name)
        for name in list(dirs):
            if (Path(root) / name).is_symlink():
                os.replace(Path(root) / name, destination / rel / name)
                dirs.remove(name)
