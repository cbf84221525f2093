"""The event pipeline's own costs: parser throughput, a million-line build through the CLI (peak
RSS per profile) and through the TUI (worst event-loop stall, peak RSS), and the TUI's first
paint. The TUI figures run in a child process each, so their RSS is theirs alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RECORDED = ROOT / "tests" / "data" / "buildah"


def parser_lines_per_second(total: int = 1_000_000) -> float:
    """Real Buildah output (the recorded logs) fed again and again to one parser."""
    from tui.engine.buildah_output import BuildahOutputParser

    lines: list[str] = []
    for log in sorted(RECORDED.glob("*.log")):
        lines += log.read_text(errors="replace").splitlines()
    parser = BuildahOutputParser()
    fed = 0
    start = time.perf_counter()
    now = time.time()
    while fed < total:
        for line in lines:
            parser.feed(line, now)
        fed += len(lines)
    return fed / (time.perf_counter() - start)


def cli_million_rss(profile: str, base: str, scratch: Path) -> tuple[float, float]:
    """``buildcage build --json`` of a RUN printing a million lines: (peak RSS MB, seconds)."""
    ctx = scratch / "million"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text(f"FROM {base}\nRUN seq 1000000\n")
    argv = [str(Path(PYTHON).parent / "buildcage"), "build", str(ctx), "--profile", profile,
            "--json", "--no-cache", "--project", "bench-million"]
    if profile == "host-rw":
        argv.append("--allow-host-rw")
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{profile} million-line build failed: "
                           f"{child.stderr.read().decode(errors='replace')[-300:]}"
                           if child.stderr else f"{profile} million-line build failed")
    return usage.ru_maxrss / 1024, seconds


_TUI_CHILD = r'''
import asyncio, json, resource, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests/ui", sys.argv[1] + "/tests"]
started = time.perf_counter()
from pathlib import Path
from tests.support.replay import FrozenClock, ReplayEngine
from tui.app import BuildcageApp
from tui.engine.history import History

async def paint():
    # What a user's start imports and does, with recorded builds instead of podman: not the
    # test helpers, the other screens or the million-line scenario (imported below, for it).
    app = BuildcageApp(ReplayEngine(History(Path(sys.argv[2]))), Path(sys.argv[1]) / "examples",
                       clock=FrozenClock(), freeze_startup=True)  # as run_app does
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print(json.dumps({"first_paint_s": time.perf_counter() - started}))

async def million():
    from ui_helpers import make_app, pick_context, wait_for
    from tui.screens.build import BuildScreen
    import test_million_lines as m

    app = make_app(ReplayEngine(History(Path(sys.argv[2])), stream=m.million))
    app.freeze_startup = True  # as run_app does
    ticks = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        app.set_interval(0.02, lambda: ticks.append(time.monotonic()))
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.finished, timeout=300, what="Done")
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    print(json.dumps({"worst_stall_ms": max(gaps) * 1000,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - started}))

asyncio.run(paint() if sys.argv[3] == "paint" else million())
'''


def tui(kind: str) -> dict[str, float]:
    """``kind`` "million" (worst stall, RSS) or "paint" (first paint), in a child process."""
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run([PYTHON, "-c", _TUI_CHILD, str(ROOT), f"{scratch}/h.sqlite3", kind],
                             capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(f"TUI {kind} bench failed: {out.stderr[-500:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
