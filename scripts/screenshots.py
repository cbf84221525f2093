"""Regenerate screenshots/*.svg from recorded builds (no podman needed).

    python3 scripts/screenshots.py [--out screenshots]

Each picture runs the real app on ``tests.support.replay.ReplayEngine``: recorded Buildah event
streams, recorded ``podman inspect`` data, a throw-away history with fixed rows, and a frozen
build timer, so the pictures only change when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tests.support.replay import FrozenClock, ReplayEngine, add_demo_history  # noqa: E402
from tests.support.scenes import (  # noqa: E402
    EXAMPLES,
    WARM_PAUSE,
    build_until,
    comparison_done,
    history_shown,
    layers_shown,
    rebuilt_after_an_edit,
    session_ready,
)
from tui.app import BuildcageApp  # noqa: E402
from tui.engine.history import History  # noqa: E402

SIZE = (120, 36)
Scene = Callable[[Pilot], Awaitable[None]]


def build(context: str, finished: bool, clock: FrozenClock | None = None) -> Scene:
    async def scene(pilot: Pilot) -> None:
        await build_until(pilot, lambda s: s.finished if finished else s.state.running, clock,
                          context)
    return scene


async def shoot(name: str, out: Path, scene: Scene, data: Path, start: Path = EXAMPLES,
                **engine_options: object) -> None:
    store = History(data / f"{name}.sqlite3")
    if name == "history":
        add_demo_history(store, EXAMPLES)
    clock = engine_options.pop("clock", None) or FrozenClock()
    engine = ReplayEngine(store, **engine_options)  # type: ignore[arg-type]
    app = BuildcageApp(engine, start, clock=clock,
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
        await shoot("session", out, session_ready, data)
        await shoot("build-cache-hits", out, build("hello", False, progress_clock), data,
                    stream="warm-push", pause_after=WARM_PAUSE, clock=progress_clock)
        await shoot("build-failed", out, build("broken", True), data,
                    stream="failed-multistage")
        await shoot("build-result", out, build("hello", True), data, stream="warm-push")
        await shoot("build-loaded", out, build("hello", True), data, stream="warm-push-load")
        await shoot("layers", out, layers_shown, data, stream="warm-push")
        # A rebuild after greeting.txt was edited: the Why column and the selected step's reason.
        context = data / "src" / "hello"
        shutil.copytree(EXAMPLES / "hello", context)
        why_clock = FrozenClock()

        async def why(pilot: Pilot) -> None:
            await rebuilt_after_an_edit(
                pilot, context, lambda: (context / "greeting.txt").write_text("hi there\n"),
                why_clock)

        await shoot("build-why", out, why, data, start=context.parent, stream="cold-pull-push",
                    clock=why_clock)
        await shoot("history", out, history_shown, data)
        await shoot("compare", out, comparison_done, data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"  # history shows local times; keep the pictures the same everywhere
    time.tzset()
    asyncio.run(main(args.out))
