"""A horizontal bar chart of build times, one group of bars per profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.reactive import reactive

from tui.engine.text import visible
from tui.widgets.parts import PartsWidget

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


class BarChart(PartsWidget):
    """Rows ``GROUP  KIND  ████▌  12.3s``; the longest bar fills the width. Colours come from
    component classes so both themes read (styled in widgets/bar_chart.tcss). Set ``bars`` to
    redraw."""

    PARTS = "bar-chart"

    COMPONENT_CLASSES = {
        "bar-chart--cold", "bar-chart--warm", "bar-chart--failed", "bar-chart--running",
        "bar-chart--group", "bar-chart--muted",
    }

    bars: reactive[list[Bar]] = reactive(list, layout=True)

    def render(self) -> Text:
        text = Text(no_wrap=True)
        if not self.bars:
            text.append("no runs yet", self.part("muted"))
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
            text.append(f"{group:<{group_w}}  ", self.part("group"))
            text.append(f"{bar.kind:<7} ", self.part(bar.kind))
            cells = bar_cells(bar.value, top, width)
            text.append(cells, self.part(bar.kind))
            text.append(f" {value}")
            if bar.note:
                text.append(f" {visible(bar.note)}", self.part("muted"))
        text.append("\n\n")
        text.append("█ cold", self.part("cold"))
        text.append(" no cache hit   ", self.part("muted"))
        text.append("█ warm", self.part("warm"))
        text.append(" served from cache", self.part("muted"))
        return text
