"""The replay engine's debug shell: a session that makes nothing in podman (its own module:
``tui.engine.debug_shell`` imports podman-py, which the replay engine's other users never need)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from tui.engine.debug_record import DebugError, DebugRecord
from tui.engine.debug_shell import DebugCanceled, DebugSession
from tui.engine.plan import BuildPlan

if TYPE_CHECKING:
    from tests.support.replay import ReplayEngine


class ReplayDebugSession(DebugSession):
    """A debug session without podman: ``prepare`` writes the shell's files only and ``close``
    removes them; ``run_shell`` is the real one (its subprocess is the boundary tests mock).
    A record without a layer (a fresh store) is given a made-up one, as a rebuild would."""

    def __init__(self, plan: BuildPlan, record: DebugRecord, podman_url: str) -> None:
        super().__init__(None, plan, record, podman_url=podman_url)
        self.prepared = False
        self.closed = False

    def prepare(self) -> None:
        if self.canceled:
            raise DebugCanceled
        self.base = self.base or "0123456789a"
        self.plan.facts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write_files()
        self.prepared = True

    def close(self) -> list[str]:
        shutil.rmtree(self.plan.build_dir, ignore_errors=True)
        self.closed = True
        return []


def replay_debug(engine: ReplayEngine, record: DebugRecord) -> ReplayDebugSession:
    """``ReplayEngine.debug``: the engine's checks, a session that makes nothing in podman."""
    if record.failed.problem:
        raise DebugError(record.failed.problem)
    plan = engine.prepare(record.request(), confirmed=True, check_push=False).plan
    session = ReplayDebugSession(plan, record, engine.config.podman_url)
    engine.debug_sessions.append(session)
    return session
