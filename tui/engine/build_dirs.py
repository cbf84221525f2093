"""A build's own directories on this machine, and who they belong to.

Every build that runs has ``DATA/builds/BUILD_ID`` (facts, a debug shell's files, the ``--load``
archive) and, reading a snapshot, ``DATA/snapshots/BUILD_ID`` (a private copy of the context:
it may hold the user's private files). ``stores.release`` removes both; gc removes them with a
dead build's containers (``orphans._remove_build_files``). A buildcage process killed before its
first container left them with nothing in podman pointing to them (measured: 28 such build
directories here after a day of tests, one with a debug shell's files). So ``stores.prepare``
writes the owner into ``DATA/builds/BUILD_ID/owner`` first, and gc takes a build's directories
once that owner is gone and podman holds nothing of the build. Directories without an owner
file (older versions, plans run without an owner) are taken once nothing has changed in them
for ``UNOWNED_AGE`` and podman holds nothing of them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tui.engine.paths import check_own_path
from tui.engine.plan import BuildPlan

OWNER_FILE = "owner"
KINDS = ("builds", "snapshots")
"""The data directory's per-build folders, each holding one directory per build id."""
UNOWNED_AGE = 24 * 3600.0
"""How long a directory with no owner file must have been left alone before gc takes it."""
_BUILD_ID = re.compile(r"[0-9a-f]{12}")


def mark(plan: BuildPlan) -> None:
    """Writes the plan's owner into its build directory, before anything else of the build."""
    if not plan.owner:
        return
    folder = check_own_path(plan.build_dir, plan.data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / OWNER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(plan.owner)


@dataclass(frozen=True)
class LeftDirs:
    """One build's directories that nothing alive owns."""

    build_id: str
    owner: str
    """As recorded ("" when there was no owner file)."""
    paths: tuple[Path, ...]


def _owner_text(data: Path, build_id: str) -> str | None:
    """The recorded owner; None when there is no readable owner file."""
    try:
        fd = os.open(data / "builds" / build_id / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            return handle.read(256).decode("ascii", "replace").strip()
    except OSError:
        return None


def _newest(path: Path) -> float:
    """The latest change time of ``path`` and what is directly in it."""
    latest = path.lstat().st_mtime
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        pass
    return latest


def has_any(data: Path) -> bool:
    """Whether any build has directories (nearly always cheap: an empty folder or two)."""
    for kind in KINDS:
        try:
            with os.scandir(data / kind) as entries:
                if any(True for _ in entries):
                    return True
        except OSError:
            continue
    return False


def left_dirs(data: Path, in_podman: set[str], gone: Callable[[str], bool],
              now: float | None = None) -> Iterator[LeftDirs]:
    """Builds whose directories no live process owns and podman holds nothing of
    (``in_podman``: build ids of every labelled container, pod and volume). ``gone(owner)``
    says whether a recorded owner's process is gone (False for an owner it cannot parse)."""
    now = time.time() if now is None else now
    ids: set[str] = set()
    for kind in KINDS:
        try:
            ids |= {entry.name for entry in os.scandir(data / kind)
                    if entry.is_dir(follow_symlinks=False) and _BUILD_ID.fullmatch(entry.name)}
        except OSError:
            continue
    for build_id in sorted(ids - in_podman):
        paths = tuple(p for p in (data / kind / build_id for kind in KINDS)
                      if p.is_dir() and not p.is_symlink())  # a planted link: never taken
        owner = _owner_text(data, build_id)
        if owner is None:
            try:
                if min(now - _newest(p) for p in paths) < UNOWNED_AGE:
                    continue
            except OSError:
                continue
        elif not gone(owner):
            continue
        yield LeftDirs(build_id, owner or "", paths)


def remove(paths: Iterable[Path]) -> list[str]:
    """Removes a build's directories; what could not be removed."""
    problems = []
    for path in paths:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"{path} ({exc.strerror or exc})")
    return problems
