"""A real build whose RUN steps print OSC/CSI sequences, a bidi override, a lone CR and Rich
markup, and whose Containerfile holds a raw ESC: the CLI's human output shows all of it as
text. Not one raw ESC, BEL or bidi control reaches the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from podman_helpers import ROOT

HOSTILE = ROOT / "tests" / "data" / "contexts" / "hostile"


@pytest.fixture(autouse=True)
def _real_host(provisioned, data_home):
    """Provisioned host; stores and history in this session's data directory (via XDG)."""


def build(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "tui", "build", str(HOSTILE), *args],
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, timeout=600)


# host-ro (one build container, its facts read here) and isolated (fetch, build and publish
# containers): every line of every phase goes through the one parser and the one printer, so
# project and host-rw would only run these again.
@pytest.mark.parametrize("profile", ["host-ro", "isolated"])
def test_human_output_of_a_hostile_build_has_no_raw_escapes(run_id, profile):
    out = build("--profile", profile, "--project", f"hostile-{run_id}", "--allow-host-rw",
                "--no-cache")  # every RUN runs, so its output is printed
    assert out.returncode == 1, out.stderr  # the last RUN exits 3 on purpose
    text = out.stdout.decode("utf-8")
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in text and raw not in out.stderr.decode("utf-8"), raw
    assert "\r" not in text
    # What the build printed is there, visibly.
    assert "    \\x1b]0;pwned\\x07\\x1b[2J\\x1b[H[bold red]styled[/] [/]" in text
    assert "    invoice \\u202efdp.exe" in text
    assert "    progress 10%\\x0dprogress 99%" in text
    assert "==> step 3/5: RUN echo '\\x1b]0;step-title\\x07 [bold]loud[/bold] [/]' > /note" in text
    assert "FAILED at " in text and "exit status 3" in text


def test_json_output_of_a_hostile_build_escapes_everything(run_id):
    out = build("--profile", "project", "--project", f"hostile-json-{run_id}", "--json")
    assert out.returncode == 1
    assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout and b"\r" not in out.stdout
    lines = [json.loads(line)["line"] for line in out.stdout.splitlines()
             if json.loads(line)["event"] == "log"]
    assert "\x1b]0;pwned\x07\x1b[2J\x1b[H[bold red]styled[/] [/]" in lines  # intact inside
