"""Regenerate screenshots/*.svg from recorded builds (no podman needed).

    python3 scripts/screenshots.py [--out screenshots]

Each picture runs the real app on ``tui.testing.ReplayEngine``: recorded Buildah event streams,
recorded ``podman inspect`` data, a throw-away history with fixed rows, and a frozen build timer,
so the pictures only change when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tui.app import BuildcageApp  # noqa: E402
from tui.engine.history import History  # noqa: E402
from tui.screens.build import BuildScreen  # noqa: E402
from tui.screens.compare import CompareScreen  # noqa: E402
from tui.screens.history import HistoryScreen  # noqa: E402
from tui.screens.session import SessionScreen  # noqa: E402
from tui.testing import FrozenClock, ReplayEngine, add_demo_history  # noqa: E402
from tui.widgets.context_tree import ContextTree  # noqa: E402
from tui.widgets.summary_card import SummaryCard  # noqa: E402

EXAMPLES = ROOT / "examples"
SIZE = (120, 36)
WARM_PAUSE = 18  # warm-push.jsonl up to step 4 starting: two steps cached, one running
Scene = Callable[[Pilot], Awaitable[None]]


async def until(pilot: Pilot, predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the state to photograph")
        await pilot.pause(0.02)


async def session(pilot: Pilot, context: str = "multistage") -> None:
    screen = pilot.app.screen
    assert isinstance(screen, SessionScreen)
    tree = screen.query_one(ContextTree)
    await until(pilot, lambda: len(tree.root.children) >= 3)
    screen.select_context(EXAMPLES / context)
    card = screen.query_one(SummaryCard)
    await until(pilot, lambda: card.summary is not None or card.error)
    tree.move_cursor(next(n for n in tree.root.children if str(n.label) == context))
    tree.focus()


def build(context: str, finished: bool, clock: FrozenClock | None = None) -> Scene:
    async def scene(pilot: Pilot) -> None:
        await session(pilot, context)
        await pilot.press("f5")
        await until(pilot, lambda: isinstance(pilot.app.screen, BuildScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: screen.finished if finished else screen.state.running)
        if clock is not None:
            clock.now = 7.4
    return scene


async def history(pilot: Pilot) -> None:
    await pilot.press("f3")
    await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen)
                and pilot.app.screen.records)


async def compare(pilot: Pilot) -> None:
    await session(pilot, "hello")
    await pilot.press("f4")
    await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    await pilot.press("f5")
    screen = pilot.app.screen
    await until(pilot, lambda: len(screen.bars) == 4 and not screen.running)


async def shoot(name: str, out: Path, scene: Scene, data: Path, **engine_options: object) -> None:
    store = History(data / f"{name}.sqlite3")
    if name == "history":
        add_demo_history(store, EXAMPLES)
    clock = engine_options.pop("clock", None) or FrozenClock()
    engine = ReplayEngine(store, **engine_options)  # type: ignore[arg-type]
    app = BuildcageApp(engine, EXAMPLES, clock=clock,
                       reach=lambda host, _tls: (True, f"{host} answered (registry API v2)"))
    async with app.run_test(size=SIZE) as pilot:
        await scene(pilot)
        await pilot.pause(0.3)
        app.save_screenshot(f"{name}.svg", path=str(out))
    store.close()
    print(f"wrote {out / name}.svg")


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    progress_clock = FrozenClock()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        await shoot("session", out, session, data)
        await shoot("build-cache-hits", out, build("hello", False, progress_clock), data,
                    stream="warm-push", pause_after=WARM_PAUSE, clock=progress_clock)
        await shoot("build-failed", out, build("broken", True), data,
                    stream="failed-multistage")
        await shoot("build-result", out, build("hello", True), data, stream="warm-push")
        await shoot("history", out, history, data)
        await shoot("compare", out, compare, data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"  # history shows local times; keep the pictures the same everywhere
    time.tzset()
    asyncio.run(main(args.out))
