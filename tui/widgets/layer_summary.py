"""The layers screen's words: the image's waste (dive's measures) above, the selected layer's
instruction, counts and which kinds of change the tree shows below the layer list."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive

from tui.engine.layers import KINDS, ChangeKind, Layer, LayerReport, shown_path
from tui.engine.layers import human_size as size
from tui.widgets.parts import PartsWidget

GOOD_EFFICIENCY = 0.95
"""At or above: shown as good (dive's own CI default is 0.9 lowest efficiency)."""
MARKS: dict[ChangeKind, str] = {"added": "+", "changed": "~", "removed": "-"}


def percent(value: float) -> str:
    return f"{value:.2f}%" if math.isfinite(value) else "∞%"


class LayerSummary(PartsWidget):
    """Efficiency and wasted bytes of the image, or what is happening instead (``note``)."""

    PARTS = "layer-summary"
    COMPONENT_CLASSES = {"layer-summary--label", "layer-summary--good", "layer-summary--bad",
                         "layer-summary--error"}

    report: reactive[LayerReport | None] = reactive(None, layout=True)
    note: reactive[str] = reactive("", layout=True)
    error: reactive[bool] = reactive(False)

    def render(self) -> Text:
        report = self.report
        if report is None:
            return Text(self.note, style=self.part("error") if self.error else Style())
        good = report.efficiency >= GOOD_EFFICIENCY
        text = Text()
        text.append("efficiency ", self.part("label"))
        text.append(percent(100 * report.efficiency), self.part("good" if good else "bad"))
        text.append(" · wasted ", self.part("label"))
        text.append(size(report.wasted_bytes), self.part("good" if not report.wasted_bytes
                                                         else "bad"))
        text.append(f" = {percent(report.wasted_percent)} of the {size(report.user_size)} "
                    f"above layer 0", self.part("label"))
        count = len(report.layers)
        text.append(f"\n{report.image_id[:12]} · {count} layer{'s' * (count != 1)}, "
                    f"{size(report.total_size)}", self.part("label"))
        if report.source:
            text.append(f" · {shown_path(report.source)}", self.part("label"))
        return text


def counts(layer: Layer, part: Callable[[str], Style]) -> Text:
    """``+1 0B  ~1 2.0kB  -1 3.0kB``: how many paths of each kind and their bytes (no space
    inside a size, so a narrow panel wraps between kinds)."""
    text = Text()
    for number, (kind, (count, total)) in enumerate(layer.counts.items()):
        if number:
            text.append("  ")
        text.append(f"{MARKS[kind]}{count}", part(kind))
        text.append(f" {size(total).replace(' ', '')}", part("label"))
    return text


def showing(kinds: frozenset[ChangeKind]) -> str:
    """What the file tree shows, for its border: "added, changed, removed" or "nothing"."""
    shown = [kind for kind in KINDS if kind in kinds]
    return "showing " + (", ".join(shown) if shown else "nothing (a, c, r show them)")


class LayerDetail(PartsWidget):
    """The selected layer: its counts, its whole instruction and what was recorded with it."""

    PARTS = "layer-detail"
    COMPONENT_CLASSES = {"layer-detail--label", "layer-detail--added", "layer-detail--changed",
                         "layer-detail--removed"}

    current: reactive[Layer | None] = reactive(None, layout=True)
    """The selected layer (``layer`` is Widget's CSS layer)."""

    def render(self) -> Text:
        layer = self.current
        if layer is None:
            return Text()
        text = counts(layer, self.part)
        text.append("\n")
        text.append(shown_path(layer.instruction))
        if layer.folded:
            text.append("\nwith ", self.part("label"))
            text.append("; ".join(shown_path(f) for f in layer.folded))
        return text
