"""Build-derived text is shown, never obeyed: terminal escapes, C1 controls, lone CRs and bidi
overrides come out as visible text, on every surface that prints it (CLI side here; the TUI's
are in tests/ui/test_escapes.py)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tui.cli_output import HumanPrinter, JsonPrinter
from tui.engine.events import (
    BuildStarted,
    BuildWarning,
    Done,
    Failed,
    LogLine,
    Pushed,
    StepStarted,
)
from tui.engine.history import BuildRecord, History, StepRecord
from tui.engine.text import visible, visible_lines

ROOT = Path(__file__).resolve().parents[2]
OSC_CSI = "\x1b]0;pwned\x07\x1b[2J\x1b[H"
HOSTILE = OSC_CSI + "[bold red]x[/] \u202etxt.exe \x9b31m\x7f a\rb"
RAW = ("\x1b", "\x07", "\x9b", "\x7f", "\u202e")


def clean(text: str) -> bool:
    """No control character but tab/newline, no lone CR, no bidi control."""
    return not any(c in text for c in RAW) and "\r" not in text.replace("\r\n", "")


def test_visible_spells_out_every_control_but_tab_and_newline():
    assert visible(OSC_CSI) == "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H"
    assert visible("a\rb") == "a\\x0db"
    assert visible("a\r\nb\tc\n") == "a\r\nb\tc\n"
    assert visible("\x9b1m\x7f\x00") == "\\x9b1m\\x7f\\x00"
    assert visible("abc \u202egnp.exe \u2066x\u2069") == "abc \\u202egnp.exe \\u2066x\\u2069"
    clean_text = "plain [bold]text[/] é ✓ 漢字"
    assert visible(clean_text) is clean_text
    assert clean(visible(HOSTILE))


def test_visible_lines_checks_each_line_of_a_batch():
    assert visible_lines(["ok", "ends with CR\r", "x"]) == ["ok", "ends with CR\\x0d", "x"]
    batch = ["a", "b"]
    assert visible_lines(batch) is batch


def test_human_printer_never_writes_escapes():
    out = io.StringIO()
    printer = HumanPrinter(out)
    for event in (
        BuildStarted(build_id="b", profile="host-ro", context="/c" + OSC_CSI, tag="t"),
        StepStarted(stage=1, stages=1, step=1, steps=2, instruction="RUN echo " + HOSTILE),
        LogLine(line=HOSTILE),
        BuildWarning(message=HOSTILE),
        Pushed(ref="r/x:1" + OSC_CSI, digest="sha256:1"),
        Failed(message=HOSTILE, step="RUN " + HOSTILE, exit_code=3),
        Done(status="failed", pushed=OSC_CSI),
    ):
        printer(event)
    text = out.getvalue()
    assert clean(text), repr(text)
    assert "    \\x1b]0;pwned\\x07\\x1b[2J\\x1b[H[bold red]x[/]" in text
    assert "==> step 1/2: RUN echo \\x1b]0;pwned" in text


def test_human_printer_errors_are_visible_too(capsys):
    HumanPrinter(io.StringIO()).error("no such file " + HOSTILE)
    assert clean(capsys.readouterr().err)


def test_json_printer_escapes_every_control_character():
    out = io.StringIO()
    printer = JsonPrinter(out)
    printer(LogLine(line=HOSTILE))
    printer.error(HOSTILE)
    text = out.getvalue()
    assert clean(text) and "\\u001b]0;pwned\\u0007" in text and "\\u202e" in text
    assert json.loads(text.splitlines()[0])["line"] == HOSTILE  # escaped, not altered


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          timeout=60)


def _hostile_history(data_home: Path) -> None:
    with History(data_home / "buildcage" / "history.sqlite3") as history:
        history.add(BuildRecord(started_at=1_764_400_000.0, profile="host-ro",
                                context="/srv/" + OSC_CSI, status="failed",
                                tag="t" + OSC_CSI, pushed="r" + HOSTILE,
                                steps=[StepRecord(1, 1, "RUN " + HOSTILE, 0.5, False)]))


def test_history_cli_shows_escapes_as_text(tmp_path):
    _hostile_history(tmp_path)
    out = _cli("history", XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert clean(out.stdout) and "/srv/\\x1b]0;pwned" in out.stdout
    as_json = _cli("history", "--json", XDG_DATA_HOME=str(tmp_path))
    assert clean(as_json.stdout)
    assert json.loads(as_json.stdout)[0]["context"] == "/srv/" + OSC_CSI


def test_cli_error_messages_show_escapes_as_text(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('"k\\u001b]0;pwned\\u0007" = 1\n')  # a key TOML decodes to an OSC
    out = _cli("plan", "examples/hello", BUILDCAGE_CONFIG=str(config),
               XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 2
    assert "unknown key" in out.stderr and clean(out.stderr), out.stderr
    assert "k\\x1b]0;pwned\\x07" in out.stderr


def test_history_database_text_is_unchanged(tmp_path):
    """Escaping is for showing: the database keeps what the build said."""
    _hostile_history(tmp_path)
    db = sqlite3.connect(tmp_path / "buildcage" / "history.sqlite3")
    assert db.execute("SELECT context FROM builds").fetchone()[0] == "/srv/" + OSC_CSI
