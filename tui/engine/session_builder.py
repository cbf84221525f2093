"""Session builders: finding or making one for a build, taking turns in it, and removing it.

A session (``tui.engine.session_plan``) is three stopped containers and some files between
builds: no process of it runs unless a build runs in it. It belongs to no process: any buildcage
process of the same data directory builds in it, one at a time, holding its lock
(``DATA/sessions/SID/lock``, flock) from before its first phase starts to after its last one
stopped. The lock is what decides, never a guess from podman's state:

- a session whose lock nobody holds and one of whose containers still runs had its build's
  process killed (SIGKILL, a crash): ``sweep`` stops that build (SIGTERM to Buildah, as a
  one-shot cancel) and removes the session;
- a session whose lock nobody holds and whose last build ended over its idle timeout ago is
  removed by ``sweep``, which every build runs first (``orphans.collect_on_start``) and
  ``buildcage gc`` runs too; the TUI removes the sessions it made when it exits;
- a session whose lock is held is never touched (a build runs in it);
- a session whose lock nobody holds and that is kept has its inboxes emptied (a killed build's
  inputs), and an inbox whose session directory is gone is removed;
- a session whose data directory this process cannot see ("lost") is removed only when none
  of its containers runs: a build may run in it under a lock this process cannot see.

A new session's directory is made as ``.new-SID``, locked, then renamed: a sweep never sees
it unlocked.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from podman.errors import NotFound

from tui.engine.containers import remove_container, stop_gracefully
from tui.engine.errors import UserError
from tui.engine.plan import BuildPlan
from tui.engine.session import DEFAULT_IDLE_TIMEOUT
from tui.engine.session_files import (
    check_inbox,
    clear_inbox,
    inbox_identity,
    is_inbox,
    make_inbox,
    make_staging_dir,
    orphan_inboxes,
    prepare_snapshot_mounts,
    remove_inbox,
    remove_session_files,
    session_dir,
    sessions_dir,
    valid_id,
)
from tui.engine.session_plan import PHASES, SESSION_LABEL, all_kwargs, new_session_id, session_plan
from tui.engine.stores import make_build_dirs, write_plan_files

DATA_LABEL = "buildcage.session-data"
"""The data directory a session's containers belong to: a sweep takes only its own."""
INBOX_LABEL = "buildcage.session-inbox"
"""The session's inbox, for a sweep that finds its containers but not its record."""
_MAX_RECORD = 256 * 1024


class SessionError(UserError, RuntimeError):
    """A session builder cannot be made or used; the message says why."""


@dataclass
class Record:
    """What a process needs to build in a session (no secret in it)."""

    id: str
    profile: str
    project: str
    created: float
    idle_timeout: float
    inbox: str
    kwargs: dict[str, dict[str, Any]]
    """Phase -> the create arguments its container was made with (the session's key)."""
    containers: dict[str, str] = field(default_factory=dict)
    """Phase -> container id."""
    inbox_id: list[int] = field(default_factory=list)
    """The inbox directory's (st_dev, st_ino) when it was made (``session_files.open_inbox``)."""

    @classmethod
    def load(cls, path: Path) -> Record | None:
        """The record at ``path``; None for anything that is not plainly one."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                raw = handle.read(_MAX_RECORD + 1)
            data = json.loads(raw) if len(raw) <= _MAX_RECORD else None
            record = cls(**data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None
        if record is None or not valid_id(record.id) or path.parent.name != record.id:
            return None
        return record

    def describe(self) -> str:
        return f"session {self.id} ({self.profile}, project {self.project})"


def _lock(folder: Path, wait: Callable[[], bool] | None) -> IO[str] | None:
    """The session's lock, or None: busy and ``wait`` is None (or said stop), or no session
    directory. ``wait()`` is called while another holds it: True to go on waiting."""
    try:
        handle: IO[str] = open(folder / "lock", "a")  # noqa: SIM115 - held until released
    except OSError:
        return None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if wait is None or not wait():
                handle.close()
                return None
            time.sleep(0.1)


class Session:
    """One session builder, its lock held by this process."""

    def __init__(self, client: Any, record: Record, splan: BuildPlan, lock: IO[str]) -> None:
        self.client = client
        self.record = record
        self.splan = splan
        """The plan its containers were made from (its facts directory, its store)."""
        self._lock: IO[str] | None = lock
        self.removed = False

    @property
    def folder(self) -> Path:
        return session_dir(self.splan.data_dir, self.record.id)

    @property
    def inbox(self) -> Path:
        return Path(self.record.inbox)

    def container(self, phase: str) -> Any:
        return self.client.containers.get(self.record.containers[phase])

    def touch(self) -> None:
        (self.folder / "used").touch()

    def check_inbox(self) -> None:
        """SessionFileError unless its inbox is plainly the one it made (``check_inbox``)."""
        check_inbox(self.inbox, self.record.inbox_id, PHASES)

    def release(self) -> None:
        """Lets other builds (and sweeps) have the session."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self, stop_timeout: float = 15.0) -> list[str]:
        """Ends the session (its lock held): its containers (a running one stopped the careful
        way first), its facts directory and its files. Returns what could not be removed."""
        self.removed = True
        (self.folder / "record.json").unlink(missing_ok=True)  # no build finds it now
        left = _remove_containers(self.client, list(self.record.containers.values()),
                                  stop_timeout)
        left += _remove_files(self.splan.data_dir, self.record.id, self.record.inbox)
        self.release()
        return left


def _remove_containers(client: Any, ids: list[str], stop_timeout: float,
                       stop_running: bool = True) -> list[str]:
    """Removes the containers; a running one is stopped the careful way first, or (not
    ``stop_running``) left as it is, and said so."""
    left = []
    for container_id in ids:
        try:
            container = client.containers.get(container_id)
        except NotFound:
            continue
        except Exception as exc:  # noqa: BLE001 - podman gone: say what is left
            left.append(f"container {container_id[:12]} ({exc})")
            continue
        if (container.attrs.get("State") or {}).get("Status") in ("running", "paused"):
            if not stop_running:
                left.append(f"container {container_id[:12]} (running)")
                continue
            stop_gracefully(container, stop_timeout)
        problem = remove_container(container)
        if problem:
            left.append(f"container {container_id[:12]} ({problem})")
    return left


def _remove_files(data: Path, session_id: str, inbox: str) -> list[str]:
    shutil.rmtree(data / "builds" / session_id, ignore_errors=True)  # its facts directory
    return remove_session_files(data, session_id, Path(inbox) if inbox else None)


def read_records(data: Path) -> list[Record]:
    """Every session record of data directory ``data``."""
    try:
        folders = sorted(sessions_dir(data).iterdir())
    except OSError:
        return []
    records = []
    for folder in folders:
        if valid_id(folder.name) and not folder.is_symlink():
            record = Record.load(folder / "record.json")
            if record is not None:
                records.append(record)
    return records


def acquire(client: Any, plan: BuildPlan, *, canceled: Callable[[], bool],
            warn: Callable[[str], None],
            idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> Session | None:
    """A session whose containers are what this build's plan renders, its lock held: one that
    exists (waiting while a build runs in it), or a new one. None when canceled meanwhile."""
    for record in read_records(plan.data_dir):
        if (record.profile, record.project) != (plan.profile.name, plan.project):
            continue
        folder = session_dir(plan.data_dir, record.id)
        splan = session_plan(plan, record.id, folder)
        if all_kwargs(splan, Path(record.inbox)) != record.kwargs:
            continue  # made for another build: other mounts, limits, overlay...
        told: list[bool] = []

        def waiting(record: Record = record, told: list[bool] = told) -> bool:
            if not told:
                told.append(True)
                warn(f"waiting for the build running in {record.describe()}")
            return not canceled()

        lock = _lock(folder, waiting)
        if lock is None:
            if canceled():
                return None
            continue
        if Record.load(folder / "record.json") is None:  # removed while we waited
            lock.close()
            continue
        return Session(client, record, splan, lock)
    return _make(client, plan, idle_timeout)


def _make(client: Any, plan: BuildPlan, idle_timeout: float) -> Session:
    """A new session for ``plan`` (its lock held from before its first container), or
    SessionError/podman's error with nothing left behind."""
    sid = new_session_id()
    # Made under a name no sweep looks at, locked, then named: a sweep (another build's start)
    # never finds it without its lock, so never takes it for a broken session.
    staging = make_staging_dir(plan.data_dir, sid)
    lock = _lock(staging, None)
    folder = session_dir(plan.data_dir, sid)
    if lock is None or os.path.lexists(folder):
        if lock is not None:
            lock.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise SessionError(f"the new session's directory {staging} could not be locked")
    os.rename(staging, folder)
    splan = session_plan(plan, sid, folder)
    record = Record(id=sid, profile=plan.profile.name, project=plan.project,
                    created=time.time(), idle_timeout=idle_timeout, inbox="", kwargs={})
    session = Session(client, record, splan, lock)
    try:
        inbox = make_inbox(sid, PHASES, plan.data_dir)
        record.inbox = str(inbox)
        record.inbox_id = inbox_identity(inbox)
        record.kwargs = all_kwargs(splan, inbox)
        write_plan_files(splan)
        make_build_dirs(splan)  # the session's own facts (and archive) folders
        if splan.context_snapshot is not None:
            prepare_snapshot_mounts(splan)
        for phase in PHASES:
            kwargs = {**record.kwargs[phase]}
            kwargs["labels"] = {**kwargs["labels"], DATA_LABEL: str(plan.data_dir),
                                INBOX_LABEL: str(inbox)}
            record.containers[phase] = client.containers.create(**kwargs).id
        session.touch()
        tmp = folder / "record.json.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(record), out)
        os.replace(tmp, folder / "record.json")
    except BaseException:
        session.remove(stop_timeout=0.0)
        raise
    return session


def sweep(client: Any, data: Path, *, everything: bool = False, stop_timeout: float = 15.0,
          only: set[str] | None = None) -> tuple[list[str], list[str]]:
    """Removes this data directory's sessions that nobody builds in (their lock is free) and
    that are over their idle timeout, broken (a container, the record or the inbox missing or
    not plainly theirs), or still running a build whose process is gone; ``everything``:
    every one nobody builds in. ``only``: just these session ids. The inboxes of the sessions
    it keeps are emptied (their lock is free: no build needs them; a killed build left its
    inputs there). Returns (what was removed, what could not be)."""
    by_session: dict[str, list[Any]] = {}
    lost: list[tuple[str, Any]] = []
    for container in client.containers.list(all=True, filters={"label": SESSION_LABEL}):
        labels = container.attrs.get("Labels") or {}
        sid = labels.get(SESSION_LABEL, "")
        if labels.get(DATA_LABEL) == str(data):
            by_session.setdefault(sid, []).append(container)
        elif valid_id(sid) and not _folder_exists(labels.get(DATA_LABEL, ""), sid):
            lost.append((sid, container))  # its data directory is not here (for us at least)
    try:
        folders = {f.name for f in sessions_dir(data).iterdir() if valid_id(f.name)}
    except OSError:
        folders = set()
    removed: list[str] = []
    left: list[str] = []
    for sid in sorted({sid for sid, _ in lost}):
        if only is None:
            removed_, left_ = _remove_lost(client, sid, [c for s, c in lost if s == sid])
            removed += removed_
            left += left_
    for sid in sorted(set(by_session) | folders):
        if not valid_id(sid) or (only is not None and sid not in only):
            continue
        folder = session_dir(data, sid)
        lock = _lock(folder, None) if sid in folders else None
        if sid in folders and lock is None:
            continue  # a build runs in it
        try:
            record = Record.load(folder / "record.json")
            containers = by_session.get(sid, [])
            running = [c for c in containers if _running(c)]
            idle = time.time() - _mtime(folder / "used")
            why = ("asked" if everything else
                   "its build's process is gone" if running else
                   "broken" if record is None or len(containers) != len(record.containers) else
                   "idle" if idle > record.idle_timeout else "")
            if not why and record is not None:
                try:  # a killed build's inputs go now, not at the session's end
                    clear_inbox(Path(record.inbox), record.inbox_id, PHASES)
                except OSError as exc:
                    why = f"its inbox: {exc}"
            if not why:
                continue
            left += _remove_containers(client, [c.id for c in containers], stop_timeout)
            inbox = record.inbox if record else str(_inbox_of(containers, sid) or "")
            left += _remove_files(data, sid, inbox)
            removed.append(f"session {sid} ({why})")
        finally:
            if lock is not None:
                lock.close()
    if only is None:
        for orphan_sid, orphan in orphan_inboxes(data):
            left += remove_inbox(orphan, orphan_sid)
            removed.append(f"inbox {orphan} (its session is gone)")
    return removed, left


def _running(container: Any) -> bool:
    """Whether a listed container runs. A build ends at its container's exit file, before podman's
    clean-up; a list may say "running" meanwhile (podman 4's syncs the state first, podman 5's
    does not): one listed so is looked at again (an inspect syncs it)."""
    listed = container.attrs
    if listed.get("State") not in ("running", "paused"):
        return False
    try:
        container.reload()
    except NotFound:
        return False  # gone meanwhile
    except Exception:  # noqa: BLE001 - podman trouble: as the list said
        return True
    finally:  # the rest of the sweep reads the list's shape (its "Labels")
        inspected, container.attrs = container.attrs, listed
    state = inspected.get("State")  # (inspect's: an object; a list's: a word)
    return (state.get("Status") if isinstance(state, dict) else state) in ("running", "paused")


def _remove_lost(client: Any, sid: str, containers: list[Any]) -> tuple[list[str], list[str]]:
    """A session whose data directory this process cannot see: gone, or only not visible here
    (another mount namespace, another user's private directory), where a build may run in it
    under its lock. So its running containers are left alone (never stopped: that could be
    another process's build); its stopped ones, and then its inbox, are removed."""
    running = [c for c in containers if _running(c)]
    if running:
        return [], []
    left = _remove_containers(client, [c.id for c in containers], 0.0, stop_running=False)
    if left:
        return [], left
    return [f"session {sid} (its data directory is gone)"], \
        remove_inbox(_inbox_of(containers, sid), sid)


def _inbox_of(containers: list[Any], session_id: str) -> Path | None:
    """The inbox the containers' label names, if it is plainly this session's."""
    for container in containers:
        label = (container.attrs.get("Labels") or {}).get(INBOX_LABEL, "")
        if label and is_inbox(Path(label), session_id):
            return Path(label)
    return None


def _folder_exists(data: str, session_id: str) -> bool:
    """Whether another data directory still has the session's folder (where its lock is: a
    build in it holds that lock, so without the folder no build runs in it)."""
    return bool(data) and Path(data).is_absolute() and \
        os.path.lexists(Path(data) / "sessions" / session_id)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def find(client: Any, plan: BuildPlan) -> tuple[Record, Any] | None:
    """The session a build of ``plan`` would run in, and its build container, as podman
    inspects it (None when there is none yet). Nothing is locked: only a look."""
    for record in read_records(plan.data_dir):
        if (record.profile, record.project) != (plan.profile.name, plan.project):
            continue
        splan = session_plan(plan, record.id, session_dir(plan.data_dir, record.id))
        if all_kwargs(splan, Path(record.inbox)) != record.kwargs:
            continue
        try:
            return record, client.containers.get(record.containers["build"])
        except NotFound:
            continue
    return None
