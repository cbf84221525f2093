"""A horizontal bar chart of build times, one group of bars per profile."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.engine.text import visible

BarKind = Literal["cold", "warm", "failed", "running"]
EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class Bar:
    group: str
    """The profile the bar belongs to."""
    kind: BarKind
    """cold: no cache hit · warm: at least one cache hit · failed · running (no value yet)."""
    value: float
    """Seconds."""
    note: str = ""


def bar_cells(value: float, top: float, width: int) -> str:
    """``value`` as a bar of ``width`` cells at most, in eighths of a cell."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


class BarChart(Widget):
    """Rows ``GROUP  KIND  ████▌  12.3s``; the longest bar fills the width. Colours come from
    component classes so both themes read (styled in compare.tcss)."""

    COMPONENT_CLASSES = {
        "bar-chart--cold", "bar-chart--warm", "bar-chart--failed", "bar-chart--running",
        "bar-chart--group", "bar-chart--muted",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bars: list[Bar] = []

    def set_bars(self, bars: Iterable[Bar]) -> None:
        self.bars = list(bars)
        self.refresh(layout=True)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"bar-chart--{name}")

    def render(self) -> Text:
        text = Text(no_wrap=True)
        if not self.bars:
            text.append("no runs yet", self._style("muted"))
            return text
        group_w = max(len(bar.group) for bar in self.bars)
        values = [f"{bar.value:.1f}s" if bar.kind != "running" else "…" for bar in self.bars]
        value_w = max(len(value) for value in values)
        note_w = max(len(bar.note) + 1 for bar in self.bars)
        width = max(4, self.content_size.width - group_w - 2 - 8 - 1 - value_w - note_w - 1)
        top = max(bar.value for bar in self.bars)
        previous = None
        for index, (bar, value) in enumerate(zip(self.bars, values, strict=True)):
            if index:
                text.append("\n\n" if bar.group != previous else "\n")
            group = bar.group if bar.group != previous else ""
            previous = bar.group
            text.append(f"{group:<{group_w}}  ", self._style("group"))
            text.append(f"{bar.kind:<7} ", self._style(bar.kind))
            cells = bar_cells(bar.value, top, width)
            text.append(cells, self._style(bar.kind))
            text.append(f" {value}")
            if bar.note:
                text.append(f" {visible(bar.note)}", self._style("muted"))
        text.append("\n\n")
        text.append("█ cold", self._style("cold"))
        text.append(" no cache hit   ", self._style("muted"))
        text.append("█ warm", self._style("warm"))
        text.append(" served from cache", self._style("muted"))
        return text
