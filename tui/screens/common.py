"""What every screen shares: the services they are given, and a build request turned into a plan
(after the confirmation some profiles ask for)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from textual.screen import Screen

from tui.engine.history import BuildRecord
from tui.engine.plan import BuildPlan
from tui.engine.planner import PlanError
from tui.engine.registry import check_reachable
from tui.engine.session import Engine

Reach = Callable[[str, bool], tuple[bool, str]]


@dataclass(frozen=True)
class Services:
    """Handed to every screen instead of reaching for globals; tests swap the parts."""

    engine: Engine
    clock: Callable[[], float] = time.monotonic
    """Drives the build timer; snapshot tests freeze it."""
    reach: Reach = check_reachable
    """Registry reachability check (blocking; called from a worker)."""
    start_dir: Path = field(default_factory=Path.cwd)
    """Where the app started; contexts are shown relative to its parent."""

    def show_path(self, path: str | Path) -> str:
        """``examples/hello`` for a context under the start directory's parent, ``~/x`` under
        home, else the path as it is."""
        path = Path(path)
        for base, prefix in ((self.start_dir.resolve().parent, ""), (Path.home(), "~/")):
            if base != Path("/") and path.is_relative_to(base) and path != base:
                return prefix + str(path.relative_to(base))
        return str(path)


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for, before it is checked into a BuildPlan."""

    context: Path
    profile: str
    containerfile: str = ""
    push: str = ""
    build_args: tuple[tuple[str, str], ...] = ()
    target_stage: str = ""
    no_cache: bool = False
    tag: str = ""
    on: str = "local"
    """Where it runs: "local" (a builder container) or "kube" (the plan's Pod, kube play)."""

    @classmethod
    def from_record(cls, record: BuildRecord) -> BuildRequest:
        """The same settings as a build in history (for "rebuild")."""
        return cls(context=Path(record.context), profile=record.profile,
                   containerfile=record.containerfile, push=record.target,
                   build_args=tuple(record.build_args.items()),
                   target_stage=record.stage_target, no_cache=record.no_cache, tag=record.tag)

    def with_profile(self, profile: str, *, no_cache: bool, push: str = "") -> BuildRequest:
        return replace(self, profile=profile, no_cache=no_cache, push=push)

    def plan(self, engine: Engine, *, confirmed: bool = False) -> BuildPlan:
        """Raises PlanError with a message for people."""
        return engine.plan(self.context, profile=self.profile,
                           containerfile=self.containerfile or None, tag=self.tag or None,
                           push=self.push, build_args=self.build_args,
                           target_stage=self.target_stage, no_cache=self.no_cache,
                           confirmed=confirmed)


def needs_confirmation(engine: Engine, profiles: list[str]) -> list[str]:
    """The profiles among ``profiles`` that must be confirmed before they run."""
    out = []
    for name in profiles:
        try:
            if engine.profiles.get(name).requires_confirmation:
                out.append(name)
        except ValueError:
            continue  # an unknown profile fails later, in plan(), with its own message
    return out


def confirm_then(screen: Screen, engine: Engine, profiles: list[str],
                 then: Callable[[bool], None]) -> None:
    """Call ``then(confirmed)`` at once, or after a yes from the confirmation dialog; a no
    calls nothing, so nothing starts."""
    from tui.screens.confirm import ConfirmScreen

    risky = needs_confirmation(engine, profiles)
    if not risky:
        then(False)
        return
    names = ", ".join(risky)
    question = f"Run with {names}?"
    lines = []
    for name in risky:
        profile = engine.profiles.get(name)
        lines.append(f"{name}: {profile.summary}.")
        lines += [f"{risk.text[:1].upper()}{risk.text[1:]}." for risk in profile.risks()]
    detail = "\n".join(lines)

    def answered(yes: bool | None) -> None:
        if yes:
            then(True)
        else:
            screen.notify(f"not started: {names} was not confirmed", severity="warning")

    screen.app.push_screen(ConfirmScreen(question, detail), answered)


__all__ = ["BuildRequest", "PlanError", "Reach", "Services", "confirm_then",
           "needs_confirmation"]
