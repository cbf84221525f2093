"""End to end: the real app against real podman builds examples/hello, pushes it, and records it.
The user's path: pick the context, type a push target, press F5, read the result."""

from __future__ import annotations

import time

from podman_helpers import EXAMPLES, registry_digest
from textual.widgets import Input

from tui.app import BuildcageApp
from tui.screens.build import BuildScreen
from tui.screens.session import SessionScreen
from tui.widgets.result_panel import ResultPanel
from tui.widgets.step_table import StepTable
from tui.widgets.summary_card import SummaryCard


async def wait_for(pilot, predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


async def test_real_app_builds_and_pushes_hello(engine, run_id):
    app = BuildcageApp(engine, EXAMPLES)
    async with app.run_test(size=(120, 36)) as pilot:
        session = app.screen
        assert isinstance(session, SessionScreen)
        session.select_context(EXAMPLES / "hello")
        card = session.query_one(SummaryCard)
        await wait_for(pilot, lambda: card.summary is not None or card.error, what="facts")
        assert not card.error
        assert card.summary.facts.host_store == "read-only"  # host-ro, read from podman
        push = session.query_one("#push", Input)
        push.focus()
        await pilot.press(*f"127.0.0.1:5000/it/tui-hello:{run_id}")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen), what="build screen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.finished, what="the build to finish")
        state = screen.state
        assert state.done.status == "succeeded", state.failed
        assert state.done.steps_total == 4
        assert len(state.pushed) == 1
        assert state.pushed[0].digest == registry_digest("it/tui-hello", run_id)
        result = str(screen.query_one(ResultPanel).render())
        assert state.done.image_id[:12] in result
        assert screen.query_one(StepTable).row_count == 4
    record = engine.history.recent(1)[0]
    assert record.status == "succeeded" and record.context == str(EXAMPLES / "hello")
    assert record.pushed.endswith(state.pushed[0].digest)
