"""LogView draws printable ASCII lines itself (tui/widgets/log_view.py says why): every line it
draws must be the strip Textual's Log draws, whatever the scroll, width, theme or selection."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Offset, Region
from textual.selection import Selection
from textual.strip import Strip
from textual.widgets import Log

from tui.widgets.log_view import LogView

LINES = ["", "x", "output line 12", "a" * 150, "\ttab", "wide \u5bbd", "  lead", "~" * 70,
         "esc \\x1b[2J"]


class Bare(App[None]):
    def compose(self) -> ComposeResult:
        yield LogView()


def drawn(log: LogView) -> list[Strip]:
    log.refresh()  # (else its lines come from the widget's cache)
    return log.render_lines(Region(0, 0, log.size.width, log.size.height))


def logs_own(log: LogView) -> list[Strip]:
    """What Textual's Log draws (its way for every line)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LogView, "_render_line", Log._render_line)  # noqa: SLF001 - what Textual draws
        return drawn(log)


def same(a: list[Strip], b: list[Strip]) -> bool:
    return [list(strip) for strip in a] == [list(strip) for strip in b]


async def test_log_view_draws_the_lines_textual_log_draws() -> None:
    app = Bare()
    async with app.run_test(size=(80, 12)) as pilot:
        log = app.query_one(LogView)
        log.write_batch(LINES * 3)
        await pilot.pause()
        for scroll in (Offset(0, 0), Offset(3, 2), Offset(14, 5), Offset(90, 1)):
            log.scroll_to(scroll.x, scroll.y, animate=False, immediate=True)
            await pilot.pause()
            mine = drawn(log)
            assert same(mine, logs_own(log)), scroll
            assert any(segment.text.strip() for strip in mine for segment in strip)
        # Another theme: the log's colours change, and its lines with them.
        before = drawn(log)
        app.theme = "textual-light"
        await pilot.pause()
        after = drawn(log)
        assert not same(before, after)
        assert same(after, logs_own(log))
        # A selection is drawn Log's way (highlighted), not the plain way.
        app.screen.selections = {log: Selection(Offset(0, 1), Offset(5, 3))}
        await pilot.pause()
        selected = drawn(log)
        assert same(selected, logs_own(log))
        app.screen.selections = {}
        await pilot.pause()
        assert not same(selected, drawn(log))
