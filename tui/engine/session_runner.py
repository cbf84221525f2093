"""Running a build in a session builder: ``BuildRunner``'s phases, events, facts, cancel and
clean-up, each phase *starting* the session's kept container for it instead of making one
(``tui.engine.session_plan``: the container runs the phase command this build wrote into its
inbox and stops when it ends, so the build container has stopped, with every process a RUN
step left, before the trusted publish phase starts).

What a build does in its session, holding the session's lock throughout:
before: the session's containers must all be stopped (one still running had its build's process
killed before this lock was taken: stopped the careful way); the project store's lock; the
context refilled into the session's snapshot; each phase's secrets and command into its inbox.
each phase: the inbox checked again (podman mounts it by path), the container's k8s-file log
emptied (it is stopped, the lock ours), ``container.start()``, its log read, its exit
(conmon's exit file, tui.engine.exit_file; else podman's ``wait``); cancel
stops it as a one-shot cancel does (SIGTERM to Buildah, then the kill).
after: every session container this build started and did not see exit stopped (checked),
inboxes and the session's facts emptied, pins released; the session stays for the next build
(its idle clock reset only if a phase ran).
The session's facts directory is emptied before the build too: a killed build leaves its own.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podman import PodmanClient
from podman.domain.containers import Container
from podman.errors import NotFound

from tui.engine import build_dirs
from tui.engine.containers import stop_gracefully
from tui.engine.logs import ApiLogPoller, LogFileTail
from tui.engine.plan import BuildPlan, Phase
from tui.engine.runner import BuildRunner, EventSink
from tui.engine.session_builder import (
    DEFAULT_IDLE_TIMEOUT,
    Session,
    SessionError,
    acquire,
)
from tui.engine.session_files import (
    SessionFileError,
    clear,
    clear_inbox,
    fill_inbox,
    refill_snapshot,
)
from tui.engine.session_plan import COMMAND_FILE, PHASES, command_text, drift
from tui.engine.stores import HostState, pin_images, release, write_plan_files


class SessionRunner(BuildRunner):
    """Runs one plan in a session builder (found or made when ``run()`` starts)."""

    makes_ahead = False

    def __init__(self, client: PodmanClient, plan: BuildPlan, on_event: EventSink,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        super().__init__(client, plan, on_event)
        self.idle_timeout = idle_timeout
        self.session: Session | None = None
        self._log_starts: dict[str, int] = {}
        self.used: Callable[[str], None] = lambda session_id: None
        """Told the id of the session this build runs in (the engine ends them later)."""

    @property
    def files_plan(self) -> BuildPlan:
        assert self.session is not None  # the session's facts directory, this build's tag
        return dataclasses.replace(self.plan, build_id=self.session.record.id)

    # -- before the phases ----------------------------------------------------------------------
    def _lock_store(self):
        """Takes the session (its lock), makes sure nothing of an earlier build runs in it,
        then the project store's lock as a one-shot build does. A session whose container went
        (removed by hand) is removed and another one made."""
        for attempt in (1, 2):
            session = acquire(self.client, self.plan, canceled=lambda: self.canceled,
                              warn=self._warn, idle_timeout=self.idle_timeout)
            if session is None:
                return None
            self.session = session
            self.used(session.record.id)
            try:
                problem = drift(self.plan, session.splan)
                if problem:
                    raise SessionError(f"{session.record.describe()} does not fit this build: "
                                       f"{problem}")
                containers = [session.container(phase) for phase in PHASES]
                session.check_inbox()
                stale = _stale_image(self.client, session, containers)
            except (NotFound, SessionFileError) as exc:
                self._end_broken()
                if attempt == 2:
                    raise
                what = ("lost a container" if isinstance(exc, NotFound)
                        else f"cannot be used ({exc})")
                self._warn(f"{session.record.describe()} {what}: removed, a new session is made")
                continue
            except BaseException:
                self._end_broken()
                raise
            if stale:
                self._end_broken()
                if attempt == 2:
                    raise SessionError(f"{session.record.describe()}: {stale}")
                self._warn(f"{session.record.describe()}: {stale}: removed, a new session is made")
                continue
            break
        assert session is not None
        try:
            for container in containers:
                if (container.attrs.get("State") or {}).get("Status") in ("running", "paused"):
                    # Its build's process was killed after the sweep looked: this lock is ours.
                    stop_gracefully(container, self.stop_timeout)
                    try:
                        container.reload()
                    except NotFound:
                        continue  # gone: nothing of it runs
                    if (container.attrs.get("State") or {}).get("Status") in (
                            "running", "paused", "stopping"):
                        # (the end of this build looks only at what it started itself)
                        raise SessionError(f"{session.record.describe()}: a container of an "
                                           f"earlier build could not be stopped")
            store = super()._lock_store()
        except BaseException:
            self._end_broken()
            raise
        return _Both(store, session)

    def _end_broken(self) -> None:
        """A session that cannot serve builds is removed (a new one is made next time)."""
        if self.session is not None:
            self.session.remove(self.stop_timeout)

    def _prepare(self) -> HostState:
        """This build's inputs handed to the kept containers: its context into the session's
        snapshot, each phase's secrets and command into its inbox (memory); pins as a one-shot
        build makes them."""
        session = self.session
        state = HostState()
        if session is None:
            return state  # canceled while waiting for the session
        write_plan_files(self.plan)
        state.build_dir = self.plan.build_dir
        build_dirs.mark(self.plan)  # a process killed from here on leaves its owner to gc
        try:
            # What a killed earlier build left there would be read as this build's facts.
            _empty_facts(self.files_plan)
            if session.splan.context_snapshot is not None:
                refill_snapshot(self.plan, session.splan)
            inputs = {}
            for phase in PHASES:
                files = dict(self.plan.kube_secret_data(phase))
                if COMMAND_FILE in files:
                    raise SessionError(f"a secret may not be called {COMMAND_FILE}")
                files[COMMAND_FILE] = command_text(self.plan.phase(phase).command).encode()
                inputs[phase] = files
            try:
                for phase, files in inputs.items():
                    fill_inbox(session.inbox, session.record.inbox_id, phase, files)
            except SessionFileError:
                self._end_broken()  # not its inbox any more: never used again
                raise
            if self.plan.profile.sees_host_images:
                pin_images(self.client, self.plan, state)
        except BaseException:
            release(self.client, state)
            raise
        return state

    # -- the phases -----------------------------------------------------------------------------
    def _create(self, spec: Phase) -> Container:
        if self.session is None:
            raise SessionError("no session to run this build in")
        # podman mounts the inbox by path at the start: still the one filled (ours, 0700, on
        # the sticky /dev/shm, nobody else can rename or replace it; checked all the same).
        self.session.check_inbox()
        container: Container = self.session.container(spec.name)  # (an inspect: attrs of now)
        path = _log_path(container)
        self._log_starts[container.id] = 0
        if path is not None:
            try:  # stopped, its lock ours: an earlier build's output goes, this one's starts at 0
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.ftruncate(fd, 0)
                finally:
                    os.close(fd)
            except OSError:
                self._log_starts[container.id] = os.path.getsize(path) if path.exists() else 0
        return container

    def _remove_builder(self, container) -> str:
        return ""  # kept for the next build (stopped: checked in _cleanup)

    def _log_source(self, container) -> LogFileTail | ApiLogPoller:
        source = super()._log_source(container)
        if isinstance(source, LogFileTail):
            source.offset = self._log_starts.get(container.id, 0)
            return source
        raise SessionError("a session builder reads its phases' logs from podman's log files "
                           "on this machine")

    def _sweeper_kwargs(self, ids: list[str]) -> dict[str, Any]:
        assert self.session is not None  # the session's plan: no podman secret to mount
        kwargs = dict(self.session.record.kwargs["build"])
        kwargs.update(command=self.plan.on_store(["buildah", "rm", *ids]),
                      name=f"{self.plan.container_name}-sweep", read_only=False,
                      labels={**self.plan.labels(), "buildcage.phase": "sweep"})
        kwargs["mounts"] = [m for m in kwargs["mounts"] if m.get("type") != "tmpfs"
                            and m.get("target") != "/run/secrets"]
        return kwargs

    # -- after the phases -----------------------------------------------------------------------
    def _cleanup(self, state) -> list[str]:
        """The build's own things go (pins, files, this build's inputs in the inboxes, the
        session's facts); the session's containers are checked stopped and stay."""
        with self._lock:
            started = {c.id for c in self._containers}  # (the list super() empties)
        left = super()._cleanup(state)
        session = self.session
        if session is None or session.removed:
            return left
        try:
            for phase in PHASES:
                container_id = session.record.containers[phase]
                # One this build did not start was stopped when the build took the session
                # (_lock_store), and only a build holding its lock starts it. One seen to exit:
                # asking podman now would wait for its clean-up (tui.engine.exit_file).
                if container_id not in started or container_id in self._exited:
                    continue
                container = session.container(phase)
                if (container.attrs.get("State") or {}).get("Status") in ("running", "paused"):
                    stop_gracefully(container, self.stop_timeout)
        except Exception as exc:  # noqa: BLE001 - podman gone: the session goes at the sweep
            left.append(f"{session.record.describe()} ({type(exc).__name__}: {exc})")
        try:
            clear_inbox(session.inbox, session.record.inbox_id, PHASES)
        except OSError as exc:
            left.append(f"inbox {session.inbox} ({exc})")
        _empty_facts(self.files_plan)
        if self._container_started:
            session.touch()  # the idle clock: only a build that ran in it resets it
        return left


def _empty_facts(files_plan: BuildPlan) -> None:
    for folder in (files_plan.build_dir / "facts", files_plan.build_dir / "output"):
        if folder.is_dir() and not folder.is_symlink():
            clear(folder)


def _stale_image(client: Any, session: Session, containers: list[Any]) -> str:
    """Why the session's containers are not of the builder image its name now names ("" when
    they are): a re-provisioned builder image must reach the next build."""
    name = session.record.kwargs["build"].get("image", "")
    current = client.images.get(name).id
    for container in containers:
        kept = container.attrs.get("Image", "")
        if kept and _bare(kept) != _bare(current):
            return f"its builder image {name} was replaced (kept {_bare(kept)[:12]}, now " \
                   f"{_bare(current)[:12]})"
    return ""


def _bare(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _log_path(container: Container) -> Path | None:
    log = container.attrs.get("HostConfig", {}).get("LogConfig", {})
    return Path(log["Path"]) if log.get("Type") == "k8s-file" and log.get("Path") else None


class _Both:
    """What ``BuildRunner.run`` closes at its very end: the store's lock, then the session's."""

    def __init__(self, store: Any, session: Session) -> None:
        self.store = store
        self.session = session

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.session.release()
