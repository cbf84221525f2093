"""Where the .tcss files are: inside the installed wheel (``tui.styles``) or the source tree.

pyproject ships the top-level ``styles/`` directory as the ``tui.styles`` package. In a source
checkout that package does not exist (there is no ``tui/styles``), so fall back to ``styles/``
next to ``tui/``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache
def styles_dir() -> Path:
    """The directory holding app.tcss and the per-screen stylesheets."""
    try:
        found = resources.files("tui.styles")
    except ModuleNotFoundError:
        found = None
    # Textual reads CSS from real files. joinpath gives a Path for a regular or namespace
    # package (MultiplexedPath) install; a zipped install would give another Traversable.
    app = found.joinpath("app.tcss") if found is not None else None
    if isinstance(app, Path) and app.is_file():
        return app.parent
    return Path(__file__).resolve().parent.parent / "styles"


def css_path(name: str) -> str:
    """Absolute path of one stylesheet, e.g. ``css_path("build.tcss")``, for ``CSS_PATH``."""
    return str(styles_dir() / name)


def widget_css_path(widget: str) -> str:
    """The sheet of one widget, e.g. ``widget_css_path("step_table")``: its own look."""
    return css_path(f"widgets/{widget}.tcss")


def widget_sheets() -> list[str]:
    """Every widget's sheet (``styles/widgets/*.tcss``), which the app loads for every screen, so
    a widget looks the same wherever it is mounted."""
    return sorted(str(path) for path in (styles_dir() / "widgets").glob("*.tcss"))
