"""The bases of buildcage's screens: full screens get the app typed as ``BuildcageApp``
(``self.buildcage``, so ``.services`` needs no ignore) and the confirmation some profiles ask
for before they run; dialogs share one backdrop (``Dialog`` in app.tcss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from textual.screen import ModalScreen, Screen

from tui.engine.text import visible
from tui.services import needs_confirmation

if TYPE_CHECKING:
    from tui.app import BuildcageApp

ResultT = TypeVar("ResultT")


class BuildcageScreen(Screen[ResultT]):
    @property
    def buildcage(self) -> BuildcageApp:
        """The app, typed: Textual's ``app`` is ``App[Any]`` (and overriding it with a narrower
        type is an error to the type checker); these screens live in BuildcageApp only."""
        return cast("BuildcageApp", self.app)

    def confirm_then(self, profiles: list[str], then: Callable[[bool], object]) -> None:
        """Call ``then(confirmed)`` at once, or after a yes from the confirmation dialog; a no
        calls nothing, so nothing starts."""
        from tui.screens.confirm import ConfirmScreen

        engine = self.buildcage.engine
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
                self.notify(visible(f"not started: {names} was not confirmed"),
                            severity="warning", markup=False)

        self.app.push_screen(ConfirmScreen(question, detail), answered)


class Dialog(ModalScreen[ResultT]):
    """A dialog over the screen it came from; app.tcss gives every one the same backdrop."""
