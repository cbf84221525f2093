"""Host paths a user can influence, checked before a builder sees them.

A project name becomes a directory (``DATA/stores/PROFILE/PROJECT``) that a builder writes as
root: a name with a separator or ``..``, or a symlink planted where the store should be, would
hand the builder any directory of the host (the host's own image store included). Build contexts
are copied (see ``tui.engine.context``), so a context may not be the whole machine or hold
buildcage's own data.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import IO

PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
PROJECT_RULE = ("use 1 to 64 characters of a-z 0-9 _ . -, starting with a letter or digit "
                "(it names a directory of its store)")

_KERNEL_TREES = ("/proc", "/sys", "/dev")


class UnsafePath(ValueError):
    """A path or name that would let a build reach outside what it was given."""


def check_project_name(name: str) -> str:
    """``name`` if it is one safe directory name; raises UnsafePath saying the rule."""
    if not PROJECT_RE.fullmatch(name):
        raise UnsafePath(f"project name {name!r} is not allowed: {PROJECT_RULE}")
    return name


def within(path: Path, directory: Path) -> bool:
    """Whether ``path`` is ``directory`` or below it (both taken as they are, unresolved)."""
    return path == directory or directory in path.parents


def checked_store_dir(data_dir: Path, profile: str, project: str) -> Path:
    """``DATA/stores/PROFILE/PROJECT``, refused unless it is a real directory path below the
    stores root: no separator in the names, no symlink anywhere from the root down (the
    data directory itself may be a link: it is resolved first). Checked on every use, so a link
    planted after planning is refused too."""
    check_project_name(project)
    if not profile or "/" in profile or profile in (".", ".."):
        raise UnsafePath(f"profile name {profile!r} cannot name a store directory")
    root = data_dir.resolve() / "stores"
    path = root / profile / project
    resolved = path.resolve()
    if resolved != path:
        raise UnsafePath(
            f"the store of project {project!r} ({path}) resolves to {resolved}: buildcage keeps "
            f"stores only in real directories under {root}; remove the symlink"
        )
    return path


def check_own_path(path: Path, data_dir: Path) -> Path:
    """``path`` (under the data directory) if neither it nor a directory on the way to it is a
    symlink: buildcage writes, chmods and removes there as root. Raises UnsafePath."""
    data = data_dir.resolve()
    resolved = path.resolve()
    if resolved != path or not within(path, data):
        raise UnsafePath(f"{path} resolves to {resolved}: buildcage writes only to real "
                         f"directories under {data}; remove the symlink")
    return path


def check_context(context: Path, data_dir: Path) -> None:
    """A resolved build context must be a project's directory: not ``/``, not a kernel
    interface, and neither inside buildcage's data directory nor holding it (the snapshot
    would copy the stores, and itself)."""
    data = data_dir.resolve()
    if context == Path("/"):
        raise UnsafePath("build context '/' is the whole filesystem; pass the directory that "
                         "holds what the build needs")
    for tree in _KERNEL_TREES:
        if within(context, Path(tree)):
            raise UnsafePath(f"build context {str(context)!r} is inside {tree} (kernel "
                             "interfaces and devices); pass a directory of files")
    if within(context, data):
        raise UnsafePath(f"build context {str(context)!r} is inside buildcage's data directory "
                         f"{data}; pass a directory of your own")
    if within(data, context):
        raise UnsafePath(f"build context {str(context)!r} holds buildcage's data directory "
                         f"{data} (image stores, snapshots); pass the directory that holds only "
                         "what the build needs")


def store_lock_path(store_dir: Path) -> Path:
    """The flock file of a project store: beside its directory, never in it. The directory is
    the build phase's, read-write at /var/lib/containers: a RUN step could swap a file there for
    a link (the next build's host process then truncated the link's target, any host file) or a
    FIFO (which hung every build's orphan collection)."""
    return store_dir.parent / f".{store_dir.name}.lock"


def open_lock(path: Path) -> IO[bytes]:
    """``path`` opened (made if missing, 0600) to hold a flock: never through a link, never a
    FIFO or a device (refused with OSError)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        return os.fdopen(fd, "r+b")
    except BaseException:
        os.close(fd)
        raise
