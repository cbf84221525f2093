"""Each widget carries its own look: mounted alone in a bare App that loads only the widget's
sheet (styles/widgets/<widget>.tcss, no screen sheet, no app.tcss), its parts are styled; in an
App without that sheet they are not."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from rich.style import Style
from textual.app import App
from textual.widget import Widget
from ui_helpers import EXAMPLES, fake_reach

from tui.app import BuildcageApp
from tui.styles_path import styles_dir, widget_css_path, widget_sheets
from tui.widgets.bar_chart import BarChart
from tui.widgets.blob_progress import BlobProgress
from tui.widgets.containerfile_fields import ContainerfileFields
from tui.widgets.context_tree import ContextTree
from tui.widgets.layer_files import LayerFiles
from tui.widgets.layer_list import LayerList
from tui.widgets.layer_summary import LayerDetail, LayerSummary
from tui.widgets.miss_detail import MissDetail
from tui.widgets.push_target import PushTargetField
from tui.widgets.result_panel import FailurePanel, ResultPanel
from tui.widgets.step_table import StepTable
from tui.widgets.summary_card import SummaryCard

ROOT = Path(__file__).resolve().parents[2]
UNSTYLED = ("log_view",)
"""Widget modules with nothing to style (LogView looks like Textual's Log)."""


async def mounted(make: Callable[[], Widget], sheet: str | None,
                  look: Callable[[Widget], object]) -> object:
    """``look(widget)`` with ``make()`` mounted alone in a bare App loading only ``sheet``."""

    class Bare(App[None]):
        CSS_PATH = sheet

    app = Bare()
    async with app.run_test(size=(80, 24)) as pilot:
        widget = make()
        await app.mount(widget)
        await pilot.pause()
        return look(widget)


async def own_and_bare(sheet: str, make: Callable[[], Widget],
                       look: Callable[[Widget], object]) -> tuple[object, object]:
    return (await mounted(make, widget_css_path(sheet), look),
            await mounted(make, None, look))


def parts(*names: str) -> Callable[[Widget], dict[str, Style]]:
    return lambda widget: {name: widget.get_component_rich_style(name) for name in names}


async def test_step_table_colours_its_statuses() -> None:
    own, bare = await own_and_bare("step_table", StepTable,
                                   parts("step-table--running", "step-table--failed"))
    assert own["step-table--running"].bold and own["step-table--failed"].bold
    assert not bare["step-table--running"].bold
    assert own["step-table--failed"].color != bare["step-table--failed"].color


async def test_miss_detail_styles_its_title() -> None:
    own, bare = await own_and_bare("miss_detail", MissDetail,
                                   parts("miss-detail--title", "miss-detail--muted"))
    assert own["miss-detail--title"].bold and not bare["miss-detail--title"].bold
    assert own["miss-detail--muted"].color != bare["miss-detail--muted"].color


async def test_blob_progress_styles_its_parts_and_cuts_lines() -> None:
    def look(widget: Widget) -> object:
        return parts("blob-progress--title", "blob-progress--done")(widget), \
            widget.styles.text_wrap

    (own, wrap), (bare, bare_wrap) = await own_and_bare("blob_progress", BlobProgress, look)
    assert own["blob-progress--title"].bold and not bare["blob-progress--title"].bold
    assert own["blob-progress--done"].color != bare["blob-progress--done"].color
    assert wrap == "nowrap" and bare_wrap != "nowrap"


async def test_result_panel_styles_its_title_and_fits_its_text() -> None:
    def look(widget: Widget) -> object:
        return parts("panel--title")(widget)["panel--title"], widget.styles.height

    (own, height), (bare, _) = await own_and_bare("result_panel", ResultPanel, look)
    assert own.bold and not bare.bold and own.color != bare.color
    assert height is not None and height.is_auto


async def test_failure_panel_styles_its_error() -> None:
    own, bare = await own_and_bare("result_panel", FailurePanel, parts("panel--error"))
    assert own["panel--error"].bold and not bare["panel--error"].bold
    assert own["panel--error"].color != bare["panel--error"].color


async def test_bar_chart_colours_its_bars() -> None:
    own, bare = await own_and_bare("bar_chart", BarChart,
                                   parts("bar-chart--warm", "bar-chart--group"))
    assert own["bar-chart--group"].bold and not bare["bar-chart--group"].bold
    assert own["bar-chart--warm"].color != bare["bar-chart--warm"].color


async def test_summary_card_colours_its_grades() -> None:
    def look(widget: Widget) -> object:
        return parts("summary-card--bad", "summary-card--title")(widget), widget.styles.padding

    (own, padding), (bare, bare_padding) = await own_and_bare("summary_card", SummaryCard, look)
    assert own["summary-card--title"].bold and not bare["summary-card--title"].bold
    assert own["summary-card--bad"].color != bare["summary-card--bad"].color
    assert (padding.left, padding.right) == (1, 1) and bare_padding.left == 0


async def test_context_tree_marks_buildable_directories() -> None:
    own, bare = await own_and_bare("context_tree", lambda: ContextTree(EXAMPLES),
                                   parts("context-tree--buildable"))
    assert own["context-tree--buildable"].bold and not bare["context-tree--buildable"].bold


async def test_push_target_aligns_its_status_under_the_reference() -> None:
    def make() -> Widget:
        return PushTargetField(["localhost:5000"], fake_reach, lambda host: True)

    def look(widget: Widget) -> object:
        return widget.query_one("#push-status").styles.margin.left, widget.styles.height

    (margin, height), (bare_margin, _) = await own_and_bare("push_target", make, look)
    assert margin == 9 and bare_margin == 0 and height.is_auto


async def test_containerfile_fields_fit_their_rows() -> None:
    def look(widget: Widget) -> object:
        return widget.styles.height

    own, bare = await own_and_bare("containerfile_fields", ContainerfileFields, look)
    assert own.is_auto and not bare.is_auto


def test_every_widget_has_a_sheet_the_app_loads_and_the_wheel_ships() -> None:
    modules = {p.stem for p in (ROOT / "tui" / "widgets").glob("*.py")} - {"__init__", "parts"}
    sheets = {Path(p).stem for p in widget_sheets()}
    assert sheets == modules - set(UNSTYLED)
    assert all(Path(p).parent == styles_dir() / "widgets" for p in widget_sheets())
    app_sheets = [str(p) for p in BuildcageApp.CSS_PATH]
    assert set(widget_sheets()) <= set(app_sheets)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert "tui.styles.widgets" in setuptools["packages"]
    assert "*.tcss" in setuptools["package-data"]["tui.styles.widgets"]


async def test_layer_files_colour_each_kind_of_change() -> None:
    own, bare = await own_and_bare("layer_files", LayerFiles,
                                   parts("layer-files--added", "layer-files--removed",
                                         "layer-files--size"))
    assert own["layer-files--added"].color != bare["layer-files--added"].color
    assert own["layer-files--added"].color != own["layer-files--removed"].color
    assert own["layer-files--size"].dim and not bare["layer-files--size"].dim


async def test_layer_list_dims_its_sizes() -> None:
    own, bare = await own_and_bare("layer_list", LayerList, parts("layer-list--size"))
    assert own["layer-list--size"].dim and not bare["layer-list--size"].dim


async def test_layer_summary_grades_efficiency_and_fits_its_text() -> None:
    def look(widget: Widget) -> object:
        return parts("layer-summary--good", "layer-summary--bad")(widget), widget.styles.height

    (own, height), (bare, _) = await own_and_bare("layer_summary", LayerSummary, look)
    assert own["layer-summary--good"].bold and not bare["layer-summary--good"].bold
    assert own["layer-summary--good"].color != own["layer-summary--bad"].color
    assert height is not None and height.is_auto
    detail, bare_detail = await own_and_bare("layer_summary", LayerDetail,
                                             parts("layer-detail--removed"))
    assert detail["layer-detail--removed"].color != bare_detail["layer-detail--removed"].color
