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
                                    command and secrets per phase, emptied when it ends (and by
                                    any sweep that finds the session's lock free); 0700, ours,
                                    and the very directory the record names (its st_dev and
                                    st_ino), checked before every use: the name alone can be
                                    made again by anyone once /dev/shm was emptied (a reboot)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tui.engine.config import private_dir
from tui.engine.context import make_snapshot
from tui.engine.paths import check_own_path
from tui.engine.plan import BuildPlan

SESSIONS = "sessions"
SHM = Path("/dev/shm")
_SID = re.compile(r"s[0-9a-f]{11}")
_INBOX_NAME = re.compile(r"buildcage-(s[0-9a-f]{11})-([0-9a-f]{8})-[a-z0-9_]+")
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
INBOX_PREFIX = "buildcage-"
STAGING_PREFIX = ".new-"


class SessionFileError(OSError):
    """A session's files could not be made; the message says which and why."""


def valid_id(session_id: str) -> bool:
    return bool(_SID.fullmatch(session_id))


def sessions_dir(data: Path) -> Path:
    return data / SESSIONS


def session_dir(data: Path, session_id: str) -> Path:
    if not valid_id(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return sessions_dir(data) / session_id


def make_session_dir(data: Path, session_id: str) -> Path:
    """The session's directory, made under its own name (``make_staging_dir`` for a new
    session, which a sweep must not see before it is locked)."""
    return _make_dir(data, session_dir(data, session_id))


def make_staging_dir(data: Path, session_id: str) -> Path:
    """A new session's directory, under a name no sweep looks at (``.new-SID``): its maker
    locks it, then gives it its name (``session_dir``) by a rename, the lock held already."""
    return _make_dir(data, staging_dir(data, session_id))


def _make_dir(data: Path, folder: Path) -> Path:
    private_dir(data)
    private_dir(sessions_dir(data))
    check_own_path(folder, data)
    folder.mkdir(mode=0o700)
    return folder


def staging_dir(data: Path, session_id: str) -> Path:
    if not valid_id(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return sessions_dir(data) / f"{STAGING_PREFIX}{session_id}"


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


def make_inbox(session_id: str, phases: tuple[str, ...], data: Path | None = None) -> Path:
    """A fresh private directory on ``/dev/shm`` (``mkdtemp``: a new random name, made 0700 by
    this process, so ours) with one inbox per phase. Its identity (``inbox_identity``) is what
    the session's record keeps: the path alone is a name anyone can make again on ``/dev/shm``
    once it is gone (a reboot empties it; the record survives)."""
    if not valid_id(session_id):
        raise SessionFileError(f"not a session id: {session_id!r}")
    prefix = f"{INBOX_PREFIX}{session_id}-{_data_tag(data)}-"
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=inbox_parent()))
    for name in phases:
        (root / name).mkdir(mode=0o700)
    return root


def _data_tag(data: Path | None) -> str:
    """In the inbox's name: which data directory's session it is (``orphan_inboxes``)."""
    return hashlib.sha256(str(data).encode()).hexdigest()[:8] if data is not None else "0" * 8


def inbox_identity(inbox: Path) -> list[int]:
    """(st_dev, st_ino) of the inbox directory itself (not followed)."""
    info = os.lstat(inbox)
    return [info.st_dev, info.st_ino]


def _check_private(info: os.stat_result, what: str) -> None:
    """A directory of ours that nobody else may enter (checked on an open fd: no link)."""
    if not stat.S_ISDIR(info.st_mode):
        raise SessionFileError(f"{what} is not a directory")
    if info.st_uid != os.geteuid():
        raise SessionFileError(f"{what} belongs to uid {info.st_uid}, not to this process")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise SessionFileError(f"{what} is open to others (mode {stat.S_IMODE(info.st_mode):o})")


def _open_dir(name: str | Path, what: str, dir_fd: int | None = None) -> int:
    try:
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise SessionFileError(f"{what} is gone") from exc
    except OSError as exc:  # ELOOP: a link; ENOTDIR: not a directory
        raise SessionFileError(f"{what} is not a plain directory ({exc.strerror})") from exc
    try:
        _check_private(os.fstat(fd), what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_inbox(inbox: Path, identity: Sequence[int]) -> int:
    """An fd of the session's inbox directory, once it is plainly the one the session made: on
    ``/dev/shm`` under an inbox's name, no link, a directory of this uid that nobody else may
    enter, and (when recorded) the very directory made then (``inbox_identity``). A directory
    of our uid, mode 0700, on the sticky ``/dev/shm`` cannot be renamed, replaced or entered
    by another user, so what is checked here stays true until it is removed.
    SessionFileError (an OSError) says what is wrong: the session cannot be used."""
    if inbox.parent != SHM or not inbox.name.startswith(INBOX_PREFIX):
        raise SessionFileError(f"{inbox} is not where a session's inbox is made")
    fd = _open_dir(inbox, f"the inbox {inbox}")
    info = os.fstat(fd)
    if identity and [info.st_dev, info.st_ino] != list(identity):
        os.close(fd)
        raise SessionFileError(f"the inbox {inbox} is not the directory the session made")
    return fd


def _phase_fd(inbox_fd: int, inbox: Path, phase: str) -> int:
    if "/" in phase or phase in ("", ".", ".."):
        raise SessionFileError(f"not a phase: {phase!r}")
    return _open_dir(phase, f"the inbox {inbox / phase}", dir_fd=inbox_fd)


def check_inbox(inbox: Path, identity: Sequence[int], phases: Sequence[str]) -> None:
    """Raises SessionFileError unless the inbox and each phase's directory in it are plainly
    the session's (``open_inbox``; each phase's: no link, ours, 0700)."""
    fd = open_inbox(inbox, identity)
    try:
        for phase in phases:
            os.close(_phase_fd(fd, inbox, phase))
    finally:
        os.close(fd)


def _clear_fd(dir_fd: int) -> None:
    """Empties the directory open at ``dir_fd``; no link is followed."""
    with os.scandir(dir_fd) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in names:
        if is_dir:
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)


def clear(directory: Path) -> None:
    """Empties ``directory`` (kept itself: it is a mount's source); a link is refused, and
    none inside it is followed."""
    fd = os.open(directory, _DIR)
    try:
        _clear_fd(fd)
    finally:
        os.close(fd)


def fill_inbox(inbox: Path, identity: Sequence[int], phase: str,
               files: Mapping[str, bytes]) -> None:
    """One phase's files of one build (name in /run/secrets -> contents), 0600, through fds of
    the checked inbox (``open_inbox``): emptied first, no link followed."""
    for name in files:
        if "/" in name or name in ("", ".", ".."):
            raise SessionFileError(f"not a file name for the inbox: {name!r}")
    fd = open_inbox(inbox, identity)
    try:
        phase_fd = _phase_fd(fd, inbox, phase)
        try:
            _clear_fd(phase_fd)
            for name, data in files.items():
                out_fd = os.open(name, _WRITE, 0o600, dir_fd=phase_fd)
                with os.fdopen(out_fd, "wb") as out:
                    out.write(data)
        finally:
            os.close(phase_fd)
    finally:
        os.close(fd)


def clear_inbox(inbox: Path, identity: Sequence[int], phases: Sequence[str]) -> None:
    """Every phase's inbox emptied (the inbox checked first, as ``fill_inbox`` does)."""
    fd = open_inbox(inbox, identity)
    try:
        for phase in phases:
            phase_fd = _phase_fd(fd, inbox, phase)
            try:
                _clear_fd(phase_fd)
            finally:
                os.close(phase_fd)
    finally:
        os.close(fd)


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


def is_inbox(path: Path, session_id: str) -> bool:
    """Whether ``path`` is plainly this session's inbox directory (only such is removed): on
    ``/dev/shm`` under its name, a directory (not a link) of this uid."""
    if path.parent != SHM or not path.name.startswith(f"{INBOX_PREFIX}{session_id}-"):
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


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


def orphan_inboxes(data: Path) -> list[tuple[str, Path]]:
    """(session id, inbox) of every inbox of ours on ``/dev/shm`` made for data directory
    ``data`` whose session directory is gone (a process killed between making the inbox and
    the session's record, or a removal cut short)."""
    tag = _data_tag(data)
    try:
        names = sorted(os.listdir(SHM))
    except OSError:
        return []
    found = []
    for name in names:
        match = _INBOX_NAME.fullmatch(name)
        if not match or match.group(2) != tag or not is_inbox(SHM / name, match.group(1)):
            continue
        sid = match.group(1)
        # The staging name first: _make renames it to the session's own, never back.
        if not os.path.lexists(staging_dir(data, sid)) and \
                not os.path.lexists(session_dir(data, sid)):
            found.append((sid, SHM / name))
    return found
