"""What the app hands every screen (instead of globals), which profiles must be confirmed before
they run, and how a UserError is shown. Builds themselves go through the engine's one path
(``Engine.prepare`` then ``Engine.start``), as the CLI's do."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textual.app import App
from textual.screen import Screen

from tui.engine.errors import UserError
from tui.engine.registry import check_reachable
from tui.engine.session import Engine, Reach
from tui.engine.text import visible


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


def show_error(where: App | Screen, exc: UserError, title: str = "Cannot build") -> None:
    """How the TUI shows an error meant for people: a notification, its text never read as
    markup and its control characters visible."""
    where.notify(visible(str(exc)), title=title, severity="error", markup=False)


__all__ = ["Reach", "Services", "needs_confirmation", "show_error"]
