"""What the widgets drawn as rich Text share: their colours come from component classes named
``<PARTS>--<part>``, styled in the widget's own sheet, styles/widgets/<widget>.tcss."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from textual.widget import Widget


class PartsWidget(Widget):
    PARTS: ClassVar[str] = ""
    """The component classes' prefix, e.g. ``bar-chart`` for ``bar-chart--cold``."""

    def part(self, name: str) -> Style:
        """The style of one part (``self.part("cold")``), as the widget's sheet sets it."""
        return self.get_component_rich_style(f"{self.PARTS}--{name}")
