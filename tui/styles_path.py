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
