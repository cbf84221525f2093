"""The core never imports Textual: the engine, the view-models in tui.state and the headless CLI
load without it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import tui.engine
import tui.state

ROOT = Path(__file__).resolve().parents[2]


def test_engine_and_cli_never_import_textual():
    modules = [f"tui.engine.{m.name}" for m in pkgutil.iter_modules(tui.engine.__path__)]
    modules += [f"tui.state.{m.name}" for m in pkgutil.iter_modules(tui.state.__path__)]
    modules += ["tui.state", "tui.cli", "tui.cli_output"]
    assert len(modules) > 15
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == ""


def test_engine_and_state_sources_do_not_mention_textual():
    for path in [*(ROOT / "tui" / "engine").glob("*.py"), *(ROOT / "tui" / "state").glob("*.py")]:
        text = path.read_text()
        assert "import textual" not in text and "from textual" not in text, path


def test_state_imports_only_the_engine():
    """tui.state sits between the engine and the front ends: it reads engine events and nothing
    above it (no screens, widgets, app or CLI)."""
    for path in (ROOT / "tui" / "state").glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import tui", "from tui")):
                assert line.startswith(("from tui.engine", "from tui.state")), (path, line)
