"""Why the selected step ran instead of coming from the cache: every reason in full, under the
step table (the table's Why column has them in a few words)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive

from tui.engine.text import visible
from tui.state.build_state import StepRow
from tui.widgets.parts import PartsWidget


class MissDetail(PartsWidget):
    """Hidden unless ``row`` (the table's selected step) has reasons; set it to redraw."""

    PARTS = "miss-detail"
    COMPONENT_CLASSES = {"miss-detail--title", "miss-detail--muted"}

    row: reactive[StepRow | None] = reactive(None, layout=True, always_update=True)

    def watch_row(self, row: StepRow | None) -> None:
        self.display = row is not None and bool(row.miss)

    def render(self) -> Text:
        text = Text()
        row = self.row
        if row is None or not row.miss:
            return text
        text.append(f"Why {row.key} ran", self.part("title"))
        if row.compared_with is not None:
            text.append(f" (compared with build #{row.compared_with})", self.part("muted"))
        for reason in row.miss:
            # Reasons carry Containerfile text, file names and build argument values: shown,
            # never obeyed.
            text.append(f"\n• {visible(reason.full())}")
        return text
