"""A build whose output and Containerfile carry terminal escapes and Rich markup
(tests/data/events/hostile.jsonl, recorded from a real build of tests/data/contexts/hostile):
the screens show it as text. Nothing that reaches the terminal holds a raw ESC, BEL, C1 control,
lone CR or bidi override, and markup in build text neither styles nor breaks anything."""

from __future__ import annotations

import dataclasses

from textual.app import App
from ui_helpers import make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine, load_stream
from tui.engine.events import Done, Pushed, StepStarted
from tui.screens.build import BuildScreen
from tui.screens.compare import CompareScreen
from tui.screens.history import HistoryScreen
from tui.widgets.log_view import LogView
from tui.widgets.result_panel import FailurePanel, ResultPanel
from tui.widgets.step_table import StepTable

RAW = ("\x1b", "\x07", "\x9b", "\u202e")
OSC = "\x1b]0;pwned\x07"


def terminal_text(app: App) -> str:
    """Everything the screen would write to the terminal, as text (all the segments)."""
    strips = app.screen._compositor.render_strips()  # noqa: SLF001 - the screen as drawn; Textual has no public API
    return "".join(segment.text for strip in strips for segment in strip)


def assert_clean(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)
    assert "\r" not in text.replace("\r\n", "")


async def start_build(pilot) -> BuildScreen:
    await pick_context(pilot, "hello")
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen), what="build")
    return pilot.app.screen


async def test_hostile_build_is_shown_as_text(history) -> None:
    app = make_app(ReplayEngine(history, stream="hostile"))
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished, what="Done")
        await pilot.pause()
        log = screen.query_one(LogView)
        lines = list(log.lines)
        assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H[bold red]styled[/] [/]" in lines
        assert "invoice \\u202efdp.exe" in lines
        assert "progress 10%\\x0dprogress 99%" in lines
        assert_clean("\n".join(lines))
        table = screen.query_one(StepTable)
        instruction = table.get_cell("1:3", "instruction")
        assert str(instruction) == (
            "RUN echo '\\x1b]0;step-title\\x07 [bold]loud[/bold] [/]' > /note")
        assert table.status_of("1:5") == "failed"
        failure = screen.query_one(FailurePanel).render().plain
        assert "step     RUN printf '\\033[31m[red]failing[/red]\\033[0m\\n' && exit 3" in failure
        assert "\\x1b[31m[red]failing[/red]\\x1b[0m" in failure
        assert_clean(failure)
        shown = terminal_text(app)
        assert_clean(shown)
        assert "[bold]loud[/bold]" in shown  # the markup is shown, not obeyed

        await pilot.press("escape")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen)
                       and app.screen.records, what="history")
        await pilot.pause()
        detail = str(app.screen.query_one("#detail").render())
        assert "RUN echo '\\x1b]0;step-title\\x07 [bold]loud[/bold] [/]' > /note" in detail
        assert_clean(terminal_text(app))


def hostile_push(plan) -> list:
    """The warm build, with a registry echoing escapes and markup into what it answered."""
    events = []
    for event in load_stream("warm-push"):
        if isinstance(event, Pushed):
            event = dataclasses.replace(event, ref=event.ref + OSC + "[/]")
        if isinstance(event, Done):
            event = dataclasses.replace(event, pushed=OSC + "[b]x[/b]")
        events.append(event)
    return events


async def test_result_panel_shows_pushed_refs_as_text(history) -> None:
    app = make_app(ReplayEngine(history, stream=hostile_push))
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished, what="Done")
        await pilot.pause()
        result = screen.query_one(ResultPanel).render().plain
        assert "127.0.0.1:5000/demo/hello:x\\x1b]0;pwned\\x07[/]" in result
        assert_clean(result)
        assert_clean(terminal_text(app))


def hostile_steps(plan) -> list:
    events = load_stream("warm-push")
    return [dataclasses.replace(e, instruction="RUN " + OSC + "[/] [bold]x")
            if isinstance(e, StepStarted) else e for e in events]


async def test_compare_status_shows_instructions_as_text(history) -> None:
    app = make_app(ReplayEngine(history, stream=hostile_steps, delay=0.01))
    async with app.run_test(size=(160, 50)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        screen = app.screen
        seen: list[str] = []

        def step_shown() -> bool:
            text = str(screen.query_one("#compare-status").render())
            seen.append(text)
            return "step" in text

        await pilot.press("f5")
        await wait_for(pilot, step_shown, what="a step in the status line")
        assert "RUN \\x1b]0;pwned\\x07[/] [bold]x" in seen[-1]
        assert_clean(terminal_text(app))
        await wait_for(pilot, lambda: not screen.running, what="the comparison")
