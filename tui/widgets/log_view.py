"""The live build log: a Textual ``Log`` bounded to the last lines, written a batch at a time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Log

from tui.engine.text import visible_lines

MAX_LINES = 5000

_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


class LogView(Log):
    """Keeps at most ``MAX_LINES`` lines. Lines arrive in batches (one message per ~50 ms from the
    build worker, as toolong does), so a build printing a million lines costs the UI one write
    per batch, and only the batch's tail is written when it is longer than the log can hold.
    Control characters in the lines are written out as text (``tui.engine.text.visible``):
    ``Log`` hands them to the terminal as they are."""

    def __init__(self, *, max_lines: int = MAX_LINES, **kwargs: Any) -> None:
        super().__init__(max_lines=max_lines, highlight=False, **kwargs)
        self.total_lines = 0
        """Lines received, including the ones no longer kept."""
        self._frame_style: Style | None = None
        """The log's style while ``render_lines`` draws a frame, else None."""

    def write_batch(self, lines: Sequence[str], dropped: int = 0) -> None:
        """Appends ``lines``, after counting ``dropped`` lines that came before them and that
        the batcher did not keep (more than the log holds came while the screen was busy)."""
        self.total_lines += dropped
        if not lines:
            return
        self.total_lines += len(lines)
        keep = self.max_lines or len(lines)
        self.write_lines(visible_lines(list(lines[-keep:] if len(lines) > keep else lines)))

    # Log's is a @work thread worker (returns a Worker); this one is a plain method.
    def _update_size(  # type: ignore[override]  # a plain method in place of Log's worker
            self, updates: int, lines: list[str]) -> None:
        """The widest new line sets the log's virtual width, measured here and now. Textual's
        ``Log`` (8.2.8) measures it on a new thread worker per write, each holding the batch's
        lines (up to 5000) in reference cycles that only a full garbage collection frees: a
        million-line build piled them up to 105 MB RSS (77 MB with a collection every 0.2 s,
        71 MB measured here, flat). At most ``max_lines`` lines per batch: a few ms of the UI's
        thread, no thread started per batch. Printable ASCII (most build output) is as wide as
        it is long: one regex scan of the batch instead of measuring each line (which took 60 of
        a 5000-line batch's 97 ms, profiled under load)."""
        if not lines:
            return
        if _NOT_PRINTABLE_ASCII.search("".join(lines)) is None:
            widest = len(max(lines, key=len))
        else:
            process = self._process_line
            widest = max(cell_len(process(line)) for line in lines)
        self._update_maximum_width(updates, widest)

    def render_lines(self, crop: Region) -> list[Strip]:
        """Draws the lines in ``crop`` with the log's style looked up once for them all: Log
        looks it up for every line (a walk up the widget tree, ~23 us), and it cannot change
        while one frame is drawn."""
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def _render_line(self, y: int, scroll_x: int, width: int) -> Strip:
        """A printable ASCII line (most build output) as the strip Log would make of it, made
        directly: Log builds a rich ``Text``, styles and renders it through the console, then
        crops and pads that strip (82 us a line here, a frame per batch of a million-line
        build). A 40-line frame of the log took 5.9 ms of CPU, 2.4 ms now; without this the
        million-line build's worst stall was 128 ms against 86 (bench/micro.py, median of 4
        each, interleaved, load 3.3). Any other line, or a selection, goes Log's way
        (tests/ui/test_log_view.py checks both draw the same)."""
        style = self._frame_style
        lines = self._lines
        if style is None or y >= len(lines) or self.text_selection is not None:
            return super()._render_line(y, scroll_x, width)
        line = lines[y]
        if _NOT_PRINTABLE_ASCII.search(line) is not None:
            return super()._render_line(y, scroll_x, width)
        # Log: Strip(Text(line, style)).crop_extend(scroll_x, scroll_x + width, style), i.e. the
        # visible part of the line, then spaces in the log's style up to the width.
        shown = line[scroll_x:scroll_x + width]
        segments = [Segment(shown, style)] if shown else []
        if len(shown) < width:
            segments.append(Segment(" " * (width - len(shown)), style))
        return Strip(segments, width).apply_offsets(scroll_x, y)

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines still held (what the failure panel shows)."""
        lines = [line for line in self.lines[-count - 1:] if line != ""] if self.lines else []
        return lines[-count:]
