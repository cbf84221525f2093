"""What each layer of an image holds: the layers on the left, the selected one's files on the
right (added, changed, removed; a, c and r show or hide each kind), dive's waste measures on
top. Reached with ``i`` from a build's result and from history."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header

from tui.engine.errors import UserError
from tui.engine.layer_reader import LayerSource
from tui.engine.layers import KINDS, ChangeIndex, ChangeKind, Layer, LayerReport
from tui.engine.text import visible
from tui.screens.base import BuildcageScreen
from tui.services import Services
from tui.styles_path import css_path
from tui.widgets.layer_files import LayerFiles
from tui.widgets.layer_list import LayerList
from tui.widgets.layer_summary import LayerDetail, LayerSummary, showing

INLINE_CHANGES = 20_000
"""A layer with more changes has its tree made by a worker (200,000 paths take about 1.4 s)."""


class LayersScreen(BuildcageScreen[None]):
    CSS_PATH = css_path("layers.tcss")
    BINDINGS = [
        Binding("a", "show_kind('added')", "Added"),
        Binding("c", "show_kind('changed')", "Changed"),
        Binding("r", "show_kind('removed')", "Removed"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    class Indexed(Message):
        """A large layer's change tree, made by a worker."""

        def __init__(self, layer: int, index: ChangeIndex) -> None:
            super().__init__()
            self.layer, self.index = layer, index

    class Loaded(Message):
        """The report read by the worker, or why there is none."""

        def __init__(self, report: LayerReport | None, error: str = "") -> None:
            super().__init__()
            self.report, self.error = report, error

    def __init__(self, services: Services, source: LayerSource) -> None:
        super().__init__()
        self.services = services
        self.source = source
        self.report: LayerReport | None = None
        self.kinds: frozenset[ChangeKind] = frozenset(KINDS)
        """The kinds of change the file tree shows (a, c, r toggle them)."""
        self.indexes: dict[int, ChangeIndex] = {}
        """Each layer's change tree, once made (by layer index)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield LayerSummary(id="layer-summary")
        with Horizontal(id="layers-main"):
            with Vertical(id="layers-left", classes="panel"):
                yield LayerList(id="layer-list")
                with VerticalScroll(id="layer-detail-scroll"):
                    yield LayerDetail(id="layer-detail")
            yield LayerFiles(id="layer-files", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = visible(f"layers of {self.source.image[:12]}")
        self.query_one("#layers-left").border_title = "layers"
        files = self.query_one(LayerFiles)
        files.border_title = "files, largest first"
        files.border_subtitle = showing(self.kinds)
        self.query_one(LayerSummary).note = ("reading the layers (a short-lived container on "
                                             "the build's store, headers only)…")
        self.load()

    @work(thread=True, exclusive=True, group="layers")
    def load(self) -> None:
        try:
            self.post_message(self.Loaded(self.services.engine.layers(self.source)))
        except UserError as exc:
            self.post_message(self.Loaded(None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - podman gone, API refused: shown, not raised
            self.post_message(self.Loaded(None, f"could not read the layers: "
                                                f"{type(exc).__name__}: {exc}"))

    def on_layers_screen_loaded(self, message: Loaded) -> None:
        summary = self.query_one(LayerSummary)
        if message.report is None:
            summary.error = True
            summary.note = visible(message.error)
            return
        self.report = message.report
        summary.report = message.report
        table = self.query_one(LayerList)
        table.show(message.report)
        if message.report.layers:
            # The last layer first: the build's own work (the first is the base image's).
            table.move_cursor(row=len(message.report.layers) - 1, animate=False)
            self.select(message.report.layers[-1])
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        report = self.report
        if report is not None and event.row_key.value is not None:
            index = int(event.row_key.value)
            if 0 <= index < len(report.layers):
                self.select(report.layers[index])

    def select(self, layer: Layer) -> None:
        detail = self.query_one(LayerDetail)
        if detail.current is layer:
            return
        detail.current = layer
        self._show_files()

    def _show_files(self) -> None:
        layer = self.query_one(LayerDetail).current
        files = self.query_one(LayerFiles)
        files.border_subtitle = showing(self.kinds)
        if layer is None:
            files.show(None)
            return
        index = self.indexes.get(layer.index)
        if index is None and len(layer.changes) <= INLINE_CHANGES:
            index = self.indexes[layer.index] = ChangeIndex(layer)
        if index is None:
            files.show(None)
            files.border_title = f"files of layer {layer.index}: sorting {len(layer.changes)} " \
                                 f"paths…"
            self._index(layer)
            return
        files.show(index.tree(self.kinds))
        files.border_title = f"files of layer {layer.index}, largest first"

    @work(thread=True, group="index")
    def _index(self, layer: Layer) -> None:
        self.post_message(self.Indexed(layer.index, ChangeIndex(layer)))

    def on_layers_screen_indexed(self, message: Indexed) -> None:
        self.indexes[message.layer] = message.index
        current = self.query_one(LayerDetail).current
        if current is not None and current.index == message.layer:
            self._show_files()

    def action_show_kind(self, kind: ChangeKind) -> None:
        """Shows or hides one kind of change in the tree."""
        self.kinds = self.kinds ^ {kind}
        self._show_files()
