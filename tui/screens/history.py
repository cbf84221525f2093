"""Past builds from the history database; ``r`` runs one again with the same settings."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from tui.engine.errors import UserError
from tui.engine.history import BuildRecord
from tui.engine.request import BuildRequest
from tui.engine.secret_args import is_withheld
from tui.engine.text import visible
from tui.messages import BuildRequested, LayersRequested
from tui.screens.base import BuildcageScreen
from tui.services import Services
from tui.styles_path import css_path

ICONS = {"succeeded": "✓", "failed": "✗", "canceled": "■"}
LIMIT = 200


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def describe(record: BuildRecord, context: str) -> str:
    """The detail pane under the table (raw: ``show`` makes it safe to display)."""
    lines = [f"{record.tag or 'untagged'} · {context}",
             f"{record.status} in {record.duration_s:.1f}s · {record.cache_hits}/"
             f"{record.steps_total} steps from cache" + (" · no cache" if record.no_cache else "")]
    if record.image_id:
        lines.append(f"image   {record.image_id[:12]}")
    if record.pushed:
        lines.append(f"pushed  {record.pushed}")
    if record.build_args:
        lines.append("args    " + " ".join(
            f"{k}=(secret: not kept)" if is_withheld(v) else f"{k}={v}"
            for k, v in record.build_args.items()))
    if record.stage_target:
        lines.append(f"stage   {record.stage_target}")
    if record.no_cache:
        lines.append("no cache")
    for step in record.steps:
        mark = "● cached" if step.cached else f"{step.duration_s:6.1f}s"
        where = f"{step.stage}.{step.step}"
        lines.append(f"  step {where:<5} {mark:>8}  {step.instruction}")
    return "\n".join(lines)


def show(text: str) -> Text:
    """Build-derived text for a widget: control characters visible, no markup read."""
    return Text(visible(text))


class HistoryScreen(BuildcageScreen[None]):
    CSS_PATH = css_path("history.tcss")
    BINDINGS = [
        Binding("r", "rebuild", "Rebuild"),
        Binding("i", "layers", "Layers"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    class Loaded(Message):
        """Records read by the worker, newest first, or why they could not be read."""

        def __init__(self, records: list[BuildRecord], error: str = "") -> None:
            super().__init__()
            self.records, self.error = records, error

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.records: list[BuildRecord] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", zebra_stripes=True, id="history")
        with VerticalScroll(id="history-detail"):
            yield Static("loading history…", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "history"
        table = self.query_one(DataTable)
        for key, label in (("time", "Time"), ("profile", "Profile"), ("status", "Status"),
                           ("duration", "Duration"), ("cache", "Cache"), ("context", "Context")):
            table.add_column(label, key=key)
        self.load()

    def on_screen_resume(self) -> None:
        if self.records:  # back from a rebuild: it is in history now
            self.load()

    @work(thread=True, exclusive=True, group="history")
    def load(self) -> None:
        try:
            self.post_message(self.Loaded(self.services.engine.history.recent(LIMIT)))
        except Exception as exc:  # noqa: BLE001 - an unreadable database is shown, not raised
            self.post_message(self.Loaded([], f"cannot read history: {exc}"))

    def on_history_screen_loaded(self, message: Loaded) -> None:
        self.records = message.records
        table = self.query_one(DataTable)
        table.clear()
        for index, record in enumerate(self.records):
            warm = "unchanged" if record.unchanged else "warm" if record.warm else "cold"
            # Text cells: a str cell is read as Rich markup, and these come from builds.
            table.add_row(*(show(cell) for cell in (
                when(record.started_at), record.profile,
                f"{ICONS.get(record.status, '?')} {record.status}",
                f"{record.duration_s:.1f}s",
                f"{record.cache_hits}/{record.steps_total} {warm}",
                self.services.show_path(record.context),
            )), key=str(index))
        detail = self.query_one("#detail", Static)
        if message.error:
            detail.update(show(message.error))
        elif not self.records:
            detail.update("no builds yet: F5 on the session screen starts one")
        else:
            detail.update(self._describe(self.records[0]))
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and self.records:
            record = self.records[int(event.row_key.value)]
            self.query_one("#detail", Static).update(self._describe(record))

    def _describe(self, record: BuildRecord) -> Text:
        return show(describe(record, self.services.show_path(record.context)))

    def selected(self) -> BuildRecord | None:
        table = self.query_one(DataTable)
        if not self.records or table.cursor_row < 0:
            return None
        return self.records[min(table.cursor_row, len(self.records) - 1)]

    def action_rebuild(self) -> None:
        record = self.selected()
        if record is None:
            self.notify("no build selected", severity="warning")
            return
        try:
            request = BuildRequest.from_record(record)
        except UserError as exc:  # a secret-looking build argument: no value kept
            self.notify(str(exc), severity="warning")
            return
        self.confirm_then([request.profile],
                          lambda confirmed: self.post_message(BuildRequested(request, confirmed)))

    def action_layers(self) -> None:
        record = self.selected()
        if record is None or record.status != "succeeded" or not record.image_id:
            self.notify("this build made no image", severity="warning")
            return
        from tui.engine.layer_reader import LayerSource

        # The project comes from where buildcage recorded the build (layer_reader reads it).
        self.post_message(LayersRequested(LayerSource(
            image=record.image_id, profile=record.profile, context=record.context)))
