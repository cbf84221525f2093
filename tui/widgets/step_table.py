"""The build's steps as a table: stage, step, status, time, layer, why it ran, instruction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.events import Idle, Key, Resize
from textual.widgets import DataTable

from tui.engine.text import visible
from tui.state.build_state import StepRow

ICONS = {
    "queued": "·", "running": "▶", "cached": "●", "done": "✓",
    "failed": "✗", "canceled": "■", "skipped": "-",
}
COLUMNS = (("stage", "Stage"), ("step", "Step"), ("status", "Status"), ("time", "Time"),
           ("layer", "Layer"), ("why", "Why"), ("instruction", "Instruction"))
MAX_INSTRUCTION = 120
"""Long RUN lines are cut: the log has them whole."""
STATUS_WIDTH = max(len(f"{icon} {status}") for status, icon in ICONS.items())
"""Every status fits: a width taken from the rows would depend on which states a step was drawn
in (a step that ran and failed within one batch never showed "running"), and the snapshot tests
saw the whole table shift by a column now and then."""
MAX_WHY = 18
"""The reason in a few words (a file or argument name can be long); the detail under the table
has it whole."""


class StepTable(DataTable[str | Text]):
    """Rows keyed ``stage:step``; ``sync`` adds new rows and rewrites changed ones.

    The instruction comes last so that stage, status and time stay in view on a narrow
    terminal. Status colours come from component classes (styled in widgets/step_table.tcss),
    re-read when the theme changes.
    """

    COMPONENT_CLASSES = {f"step-table--{status}" for status in ICONS}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._steps: dict[str, StepRow] = {}
        """The rows as last drawn, to restyle them after a theme change."""
        self.follow = True
        """Keep the cursor on the step in progress, until the user moves it."""
        self._to_follow = False
        """The cursor moved to the live step, or the table's size changed: place it again."""

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            # The instruction, last, is as wide as it may ever be: a width taken from the rows
            # would depend on whether a row came with its instruction or queued without it,
            # that is on how the events happened to be batched.
            width = {"instruction": MAX_INSTRUCTION, "status": STATUS_WIDTH}.get(key)
            self.add_column(label, key=key, width=width)

    def _status(self, row: StepRow) -> Text:
        style = self.get_component_rich_style(f"step-table--{row.status}", partial=True)
        return Text(f"{ICONS[row.status]} {row.status}", style=style)

    def _cells(self, row: StepRow) -> dict[str, str | Text]:
        duration = "" if row.duration_s is None else f"{row.duration_s:.1f}s"
        instruction = visible(row.instruction)  # from the Containerfile: shown, not obeyed
        if len(instruction) > MAX_INSTRUCTION:
            instruction = instruction[: MAX_INSTRUCTION - 1] + "…"
        why = visible(row.why_short)  # names files and build arguments: shown, not obeyed
        if len(why) > MAX_WHY:
            why = why[: MAX_WHY - 1] + "…"
        return {
            "stage": f"{row.stage}/{row.stages}",
            "step": f"{row.step}/{row.steps}",
            "status": self._status(row),
            "time": duration,
            "layer": visible(row.layer_id),  # hex from "--> ID" lines: no markup in it
            "why": Text(why),
            # Text, not str: a str cell is read as Rich markup, and "[/]" would break it.
            "instruction": Text(instruction),
        }

    def sync(self, rows: Iterable[StepRow]) -> None:
        """Add or update these rows (the state's changed ones). None changed: nothing to do (a
        batch of a million-line build's log lines changes no row)."""
        changed = False
        for row in rows:
            changed = True
            self._steps[row.key] = row
            cells = self._cells(row)
            if row.key not in self.rows:
                self.add_row(*(cells[key] for key, _ in COLUMNS), key=row.key)
                continue
            for key, value in cells.items():
                fixed = key in ("instruction", "status")
                self.update_cell(row.key, key, value, update_width=not fixed)
        if self.follow and changed:
            live = [r for r in self._steps.values() if r.status in ("running", "failed")]
            if live:
                self.move_cursor(row=self.get_row_index(live[-1].key), scroll=False)
                self._to_follow = True

    def on_resize(self, event: Resize) -> None:
        self._to_follow = self.follow

    def on_idle(self, event: Idle) -> None:
        if self._to_follow:
            self._to_follow = False
            # DataTable's own idle handler, which runs after this one, measures new rows: place
            # the cursor once it has.
            self.call_after_refresh(self._scroll_to_live)

    def _scroll_to_live(self) -> None:
        """Draw the live step on the table's last line (or where it is, when the rows above it
        fit). A place computed from the table's height, and computed again whenever that changes:
        the table grows with its rows, and a scroll made before it grew stayed (with DataTable's
        "scroll just enough", at 80x24 the failed step ended on the top line in 6 runs of 40)."""
        if not (self.follow and self.is_attached and self.row_count):
            return
        _, y, _, height = self._get_row_region(self.cursor_row)
        bottom = y + height - self.scrollable_content_region.height
        self.scroll_to(y=max(0, bottom), animate=False, force=True, immediate=True)

    def on_key(self, event: Key) -> None:
        if event.key in ("up", "down", "pageup", "pagedown", "home", "end"):
            self.follow = False

    def on_click(self) -> None:
        self.follow = False

    def on_mouse_scroll_up(self) -> None:
        self.follow = False  # the wheel looks back as the arrows do: the table stays there

    def status_of(self, key: str) -> str:
        """The plain status word of row ``key`` (for tests and the failure panel)."""
        return self._steps[key].status

    def step_at_cursor(self) -> StepRow | None:
        """The step of the selected row (for the detail of why it ran)."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._steps.get(key or "")

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted and self._steps:
            # After a theme change the component styles are recomputed after this call:
            # restyle once they are.
            self.call_after_refresh(self._restyle)

    def _restyle(self) -> None:
        if not self.is_attached:
            return  # the screen went away before this ran (its styles are gone with it)
        for key, row in self._steps.items():
            if key in self.rows:
                self.update_cell(key, "status", self._status(row))
