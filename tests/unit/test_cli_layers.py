"""``buildcage layers [IMAGE | --last] [--json] [--max-waste BYTES|PERCENT]``: the printer, the
CI gate's exit code, and bad input, on a report made here (the real reading is tested against
podman in tests/integration/test_layers_real.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import EXIT_WASTE, cmd_layers, parser
from tui.engine.layer_reader import LayerSource
from tui.engine.layers import Entry, LayerInput, LayerReport, analyze

ROOT = Path(__file__).resolve().parents[2]


def f(path: str, size: int) -> Entry:
    return Entry(path, size, False)


def report() -> LayerReport:
    return analyze("ab" * 32, [
        LayerInput("sha256:0", [Entry("/bin", 0, True), f("/bin/sh", 900)], "ADD file:x in /"),
        LayerInput("sha256:1", [Entry("/data", 0, True), f("/data/a.bin", 1000),
                                f("/data/\x1b]0;pwned\x07", 0)], "COPY a.bin /data/a.bin"),
        LayerInput("sha256:2", [Entry("/data", 0, True), f("/data/a.bin", 2000),
                                Entry("/bin/sh", 0, False, whiteout=True)],
                   "RUN \x1b[2J rewrite"),
    ], source="the store of project app (host-ro)")


class FakeEngine:
    def __init__(self) -> None:
        self.asked: list[tuple[str, bool, str, str]] = []

    def layer_source(self, image: str = "", *, last: bool = False, profile: str = "",
                     project: str = "") -> LayerSource:
        self.asked.append((image, last, profile, project))
        return LayerSource(image=image or "ab" * 32, profile=profile or "host-ro")

    def layers(self, source: LayerSource) -> LayerReport:
        return report()


def run_layers(capsys, *argv: str) -> tuple[int, str, str]:
    engine = FakeEngine()
    code = cmd_layers(engine, parser().parse_args(["layers", *argv]))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_human_output_lists_layers_trees_and_dives_measures(capsys) -> None:
    code, out, _ = run_layers(capsys, "--last")
    assert code == 0
    assert "efficiency 25.64%" in out and "wasted 3.9 kB" in out
    lines = out.splitlines()
    layer_lines = [line for line in lines if line.startswith("layer ")]
    assert len(layer_lines) == 3
    assert "RUN \\x1b[2J rewrite" in layer_lines[2]
    assert "\x1b" not in out  # names and instructions are shown, never obeyed
    assert any("\\x1b]0;pwned\\x07" in line for line in lines)
    # The tree under layer 2: directories with their changes, largest first.
    tail = lines[lines.index(layer_lines[2]):]
    a_bin = next(i for i, line in enumerate(tail) if line.endswith("~ a.bin"))
    sh = next(i for i, line in enumerate(tail) if line.endswith("- sh"))
    assert a_bin < sh
    assert tail[a_bin].split()[:2] == ["2.0", "kB"] and tail[sh].split()[:2] == ["900", "B"]


def test_json_is_the_report(capsys) -> None:
    code, out, _ = run_layers(capsys, "--json")
    assert code == 0
    data = json.loads(out)
    assert LayerReport.from_dict(data) == report()
    assert data["wasted_bytes"] == report().wasted_bytes


def test_past_max_waste_exits_with_its_own_code(capsys) -> None:
    wasted = report().wasted_bytes
    code, _, err = run_layers(capsys, "--max-waste", str(wasted - 1))
    assert code == EXIT_WASTE == 3
    assert "wasted" in err and str(wasted) in err
    code, _, _ = run_layers(capsys, "--max-waste", str(wasted))
    assert code == 0
    code, _, _ = run_layers(capsys, "--max-waste", "1%", "--json")
    assert code == EXIT_WASTE


def test_no_image_means_the_last_build(capsys) -> None:
    engine = FakeEngine()
    cmd_layers(engine, parser().parse_args(["layers"]))
    cmd_layers(engine, parser().parse_args(["layers", "app:1", "--profile", "project",
                                            "--project", "p"]))
    capsys.readouterr()
    assert engine.asked == [("", True, "", ""), ("app:1", False, "project", "p")]


def cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path),
           "BUILDCAGE_PODMAN_URL": f"unix://{tmp_path}/none.sock"}
    return subprocess.run([sys.executable, "-m", "tui", "layers", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=60)


@pytest.mark.parametrize("args", [("--max-waste", "lots"), ("app:1", "--last"),
                                  ("-f",), ("--max-waste", "101%")])
def test_bad_input_exits_2_before_podman_is_asked(tmp_path: Path, args: tuple[str, ...]) -> None:
    out = cli(*args, tmp_path=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "podman API service" not in out.stderr


def test_no_build_yet_says_so(tmp_path: Path) -> None:
    out = cli("--last", tmp_path=tmp_path)
    assert out.returncode == 2
    assert "no successful build" in out.stderr
