"""The wheel ships the Textual styles (top-level styles/) inside the package as tui.styles."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_the_styles_and_the_console_script(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info into the source tree.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("tui", "styles"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(source)], check=True,
                   capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("buildcage-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    styles = {Path(n).name for n in names if n.startswith("tui/styles/")}
    assert {p.name for p in (ROOT / "styles").glob("*.tcss")} <= styles
    assert "app.tcss" in styles
    assert "tui/engine/runner.py" in names
    # What ships is what runs: nothing in the wheel reads tests/ or examples/ of a checkout.
    shipped = [n for n in names if n.endswith(".py")]
    for name in shipped:
        text = zipfile.ZipFile(wheel).read(name).decode()
        assert "tests/data" not in text and "/ \"examples\"" not in text, name
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "buildcage = tui.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
