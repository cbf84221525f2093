"""A session builder's files on this machine.

Layout::

    DATA/sessions/SID/record.json   what its containers are (their ids and create arguments)
    DATA/sessions/SID/lock          flock: held by the one build running in it, and by whoever
                                    removes it (never a session a build holds)
    DATA/sessions/SID/used          its mtime: the end of the last build (the idle timeout)
    DATA/sessions/SID/snapshot/     the context snapshot the build container mounts, refilled
                                    for every build
    /dev/shm/buildcage-SID-XXXX/{fetch,build,publish}
                                    the inboxes, mounted read-only at /run/secrets: one build's
                                    command and secrets per phase, emptied when it ends
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tui.engine.config import private_dir
from tui.engine.context import make_snapshot
from tui.engine.paths import check_own_path
from tui.engine.plan import BuildPlan

SESSIONS = "sessions"
SHM = Path("/dev/shm")
_SID = re.compile(r"s[0-9a-f]{11}")
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class SessionFileError(OSError):
    """A session's files could not be made; the message says which and why."""


def valid_id(session_id: str) -> bool:
    return bool(_SID.fullmatch(session_id))


def sessions_dir(data: Path) -> Path:
    return data / SESSIONS


def session_dir(data: Path, session_id: str) -> Path:
    assert valid_id(session_id), session_id
    return sessions_dir(data) / session_id


def make_session_dir(data: Path, session_id: str) -> Path:
    private_dir(data)
    private_dir(sessions_dir(data))
    folder = session_dir(data, session_id)
    check_own_path(folder, data)
    folder.mkdir(mode=0o700)
    return folder


def inbox_parent() -> Path:
    """``/dev/shm`` when it is a tmpfs (memory): secrets never reach a disk."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) > 2 and parts[1] == str(SHM) and parts[2] == "tmpfs":
                    return SHM
    except OSError:
        pass
    raise SessionFileError(f"{SHM} is not a tmpfs here: a session builder keeps each build's "
                           "secrets there, in memory")


def make_inbox(session_id: str, phases: tuple[str, ...]) -> Path:
    """A fresh private directory on ``/dev/shm`` with one inbox per phase."""
    root = Path(tempfile.mkdtemp(prefix=f"buildcage-{session_id}-", dir=inbox_parent()))
    for name in phases:
        (root / name).mkdir(mode=0o700)
    return root


def is_inbox(path: Path, session_id: str) -> bool:
    """Whether ``path`` is plainly this session's inbox directory (only such is removed)."""
    return (path.parent == SHM and path.name.startswith(f"buildcage-{session_id}-")
            and not path.is_symlink())


def clear(directory: Path) -> None:
    """Empties ``directory`` (kept itself: it is a mount's source)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def fill_inbox(inbox: Path, files: Mapping[str, bytes]) -> None:
    """One phase's files of one build (name in /run/secrets -> contents), 0600; the inbox is
    emptied first."""
    clear(inbox)
    for name, data in files.items():
        if "/" in name or name in ("", ".", ".."):
            raise SessionFileError(f"not a file name for the inbox: {name!r}")
        fd = os.open(inbox / name, _WRITE, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def prepare_snapshot_mounts(splan: BuildPlan) -> None:
    """The session snapshot's mount sources, empty, before its containers are made."""
    assert splan.context_snapshot is not None
    splan.snapshot_context_dir.mkdir(mode=0o700, parents=True)
    if splan.containerfile_outside_context:
        splan.snapshot_containerfile.parent.mkdir(mode=0o700)
        splan.snapshot_containerfile.touch(mode=0o600)


def refill_snapshot(plan: BuildPlan, splan: BuildPlan) -> None:
    """The build's context (``tui.engine.context.make_snapshot``: no link followed out, modes
    and mtimes kept, the ignore file applied) into the session's snapshot directory, whose
    ``context`` directory the build container mounts: its contents are replaced. A Containerfile
    outside the context is rewritten in place (the file itself is the mount's source)."""
    assert splan.context_snapshot is not None
    incoming = splan.context_snapshot.parent / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    make_snapshot(dataclasses.replace(plan, context_snapshot=incoming))
    try:
        target = splan.snapshot_context_dir
        clear(target)
        source = incoming / "context"
        for entry in os.listdir(source):
            os.rename(source / entry, target / entry)
        info = os.stat(source)
        os.chmod(target, stat.S_IMODE(info.st_mode))
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        if splan.containerfile_outside_context:
            _rewrite(incoming / "containerfile" / plan.containerfile.name,
                     splan.snapshot_containerfile)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _rewrite(source: Path, target: Path) -> None:
    info = os.stat(source)
    fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out)
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def remove_inbox(inbox: Path | None, session_id: str) -> list[str]:
    """The session's inbox, if ``inbox`` plainly is it; returns what could not be removed."""
    if inbox is None or not is_inbox(inbox, session_id):
        return []
    shutil.rmtree(inbox, ignore_errors=True)
    return [f"inbox {inbox}"] if os.path.lexists(inbox) else []


def remove_session_files(data: Path, session_id: str, inbox: Path | None) -> list[str]:
    """The session's directory and its inbox; returns what could not be removed."""
    left = remove_inbox(inbox, session_id)
    if valid_id(session_id):
        folder = session_dir(data, session_id)
        shutil.rmtree(folder, ignore_errors=True)
        if os.path.lexists(folder):
            left.append(f"session directory {folder}")
    return left
