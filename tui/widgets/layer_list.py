"""An image's layers as a table: index, size and the instruction that made each one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui.engine.layers import LayerReport, shown_path
from tui.engine.layers import human_size as size

COLUMNS = (("index", "#"), ("size", "Size"), ("instruction", "Instruction"))
MAX_INSTRUCTION = 120
"""Long RUN lines are cut here; the detail under the table has them whole."""


class LayerList(DataTable[str | Text]):
    """Rows keyed by the layer's index (``str``); ``show`` fills it from a report."""

    COMPONENT_CLASSES = {"layer-list--size"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, report: LayerReport) -> None:
        self.clear()
        size_style = self.get_component_rich_style("layer-list--size", partial=True)
        for layer in report.layers:
            instruction = shown_path(layer.instruction)  # from the image: shown, not obeyed
            if len(instruction) > MAX_INSTRUCTION:
                instruction = instruction[:MAX_INSTRUCTION - 1] + "…"
            # Text cells: a str cell is read as Rich markup, and "[/]" in a RUN would break it.
            self.add_row(Text(str(layer.index)),
                         Text(size(layer.size), style=size_style, justify="right"),
                         Text(instruction), key=str(layer.index))
