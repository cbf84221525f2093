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


READ_LINES = 1000
"""Lines per log read handed to the parser: a build printing 10,000 lines/s, read every 100 ms
(the runner's reads go up to 1 MiB, about 15,000 such lines, in a flood)."""


def parser_lines_per_second(total: int = 1_000_000) -> float:
    """Real Buildah output (the recorded logs) fed again and again to one parser, as the runner
    feeds it: a read's lines at once (``feed_all``), READ_LINES at a time."""
    from tui.engine.buildah_output import BuildahOutputParser

    lines: list[str] = []
    for log in sorted(RECORDED.glob("*.log")):
        lines += log.read_text(errors="replace").splitlines()
    reads = [lines[i:i + READ_LINES] for i in range(0, len(lines), READ_LINES)]
    parser = BuildahOutputParser()
    fed = 0
    start = time.perf_counter()
    while fed < total:
        for read in reads:
            parser.feed_all(read, time.time())
        fed += len(lines)
    return fed / (time.perf_counter() - start)


def parser_in_a_child(rounds: int = 3) -> float:
    """The parser's throughput (median of ``rounds``) in a fresh interpreter, as a CLI build
    parses: measured inside the bench after its builds, the same code ran at 150-160k lines/s
    against 210-245k alone (its full collections walk the bench's heap)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from micro import "
            "parser_lines_per_second as p; print(p())")
    figures = []
    for _ in range(rounds):
        out = subprocess.run([PYTHON, "-c", code, str(Path(__file__).parent)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            raise RuntimeError(f"parser bench failed: {out.stderr[-500:]}")
        figures.append(float(out.stdout.strip().splitlines()[-1]))
    return sorted(figures)[len(figures) // 2]


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
        out = subprocess.run([PYTHON, "-c", _PEAK, *argv], stdout=sink, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    *said, last = out.stderr.decode(errors="replace").rstrip("\n").rsplit("\n", 1) or [""]
    if out.returncode != 0 or not last.startswith("peak_kb "):
        raise RuntimeError(f"{profile} million-line build failed: {''.join(said)[-300:]}")
    return int(last.split()[1]) / 1024, seconds


_PEAK = r'''
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(f"peak_kb {usage.ru_maxrss}" if code == 0 else f"exit {code}", file=sys.stderr)
sys.exit(code)
'''
"""Runs a command and says its peak RSS. Why a launcher: a child's ``ru_maxrss`` starts from
the peak of the process that forked it (Linux keeps the old memory's high-water mark across
fork and exec), so measured from the bench (about 80 MB by then) every child read 80.7 MB: the
bench's own figure. A small interpreter forking it leaves a floor of about 10 MB."""


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

def hwm_mb():
    # VmHWM: this process's own peak since its exec (ru_maxrss would start from the peak of
    # the bench that forked it).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

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
                      "rss_mb": hwm_mb(),
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
