"""The live build log: a Textual ``Log`` bounded to the last lines, written a batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import Log

from tui.engine.text import visible_lines

MAX_LINES = 5000


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

    def write_batch(self, lines: Sequence[str], dropped: int = 0) -> None:
        """Appends ``lines``, after counting ``dropped`` lines that came before them and that
        the batcher did not keep (more than the log holds came while the screen was busy)."""
        self.total_lines += dropped
        if not lines:
            return
        self.total_lines += len(lines)
        keep = self.max_lines or len(lines)
        self.write_lines(visible_lines(list(lines[-keep:] if len(lines) > keep else lines)))

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines still held (what the failure panel shows)."""
        lines = [line for line in self.lines[-count - 1:] if line != ""] if self.lines else []
        return lines[-count:]
