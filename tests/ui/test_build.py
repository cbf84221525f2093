"""The build screen driven by recorded event streams: cache hits, pulls and pushes, failure,
cancel, and a runner that cannot start."""

from __future__ import annotations

from textual.widgets import ProgressBar, Static
from ui_helpers import WARM_PAUSE, FrozenClock, make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.batching import BuildEvents
from tui.engine.events import LogLine, StepStarted
from tui.screens.build import BuildScreen
from tui.screens.session import SessionScreen
from tui.widgets.blob_progress import BlobProgress
from tui.widgets.log_view import LogView
from tui.widgets.result_panel import FailurePanel, ResultPanel
from tui.widgets.step_table import StepTable


async def start_build(pilot, context: str = "hello") -> BuildScreen:
    await pick_context(pilot, context)
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen), what="build screen")
    return pilot.app.screen


def header(screen: BuildScreen) -> str:
    return str(screen.query_one("#build-header", Static).render())


async def test_warm_stream_shows_cached_rows_counts_and_result(engine, history) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished, what="Done")
        table = screen.query_one(StepTable)
        assert table.row_count == 4
        assert [table.status_of(f"1:{i}") for i in range(1, 5)] == [
            "done", "cached", "cached", "cached"]
        assert "cached" in str(table.get_cell("1:2", "status"))
        assert table.get_cell("1:2", "layer") == "af2d23ed7bb"
        assert header(screen) == "Built 2.9s (4/4 steps) · 3 cached · host-ro"
        assert screen.query_one("#build-header").has_class("-succeeded")
        bar = screen.query_one(ProgressBar)
        assert bar.progress == bar.total == 4
        result = screen.query_one(ResultPanel)
        assert result.display
        text = result.render().plain
        assert "✓ Built ab9d8035ec09 in 2.9s" in text
        assert "2.1 MB in 3 layers" in text
        assert "2.1 MB, 2.0 kB, 4.1 kB" in text
        assert "127.0.0.1:5000/demo/hello:x" in text
        assert "sha256:7fe85a8e3cb772c67bbc69c61b69410306d2f09cdae45de16fec1349fbd1c3bd" in text
        assert "3/4 steps from cache" in text
        assert not screen.query_one(FailurePanel).display
        # The engine records every finished build.
        [record] = history.recent()
        assert (record.profile, record.status, record.cache_hits) == ("host-ro", "succeeded", 3)
        await pilot.press("escape")
        assert isinstance(app.screen, SessionScreen)


async def test_cold_stream_shows_pull_and_push_per_blob(history) -> None:
    engine = ReplayEngine(history, stream="cold-pull-push")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished)
        pull, push = screen.state.transfers
        assert (pull.phase, pull.ref, len(pull.blobs), pull.finished) == (
            "pull", "127.0.0.1:5000/buildcage/busybox:latest", 1, True)
        assert (push.phase, len(push.blobs), push.digest[:15]) == ("push", 3, "sha256:a4e54964")
        blobs = screen.query_one(BlobProgress)
        assert blobs.display
        text = blobs.render().plain
        assert "↓ pull 127.0.0.1:5000/buildcage/busybox:latest" in text
        assert "↑ push 127.0.0.1:5000/demo/hello:isolated" in text
        assert "c9a17d027268 ✓" in text
        assert "0 cached" in header(screen)


async def test_failed_stream_marks_the_step_and_shows_the_failure(history) -> None:
    engine = ReplayEngine(history, stream="failed-multistage")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot, "broken")
        await wait_for(pilot, lambda: screen.finished)
        table = screen.query_one(StepTable)
        assert table.status_of("2:4") == "failed"
        assert table.status_of("2:3") == "done"
        assert table.status_of("2:5") == "skipped"
        assert "failed" in str(table.get_cell("2:4", "status"))
        assert header(screen).startswith("Failed 5.2s (6/18 steps)")
        panel = screen.query_one(FailurePanel)
        assert panel.display and not screen.query_one(ResultPanel).display
        text = panel.render().plain
        assert "✗ Failed at step 4/15 of stage 2/2" in text
        assert "RUN --mount=type=secret,id=secret-foo,dst=secret1.txt cat secret1.txt" in text
        assert "while running runtime: exit status 1" in text
        assert "cat: can't open 'secret1.txt': No such file or directory" in text
        assert len(panel.tail) == 15


async def test_cancel_mid_stream_ends_canceled_and_stays_put(history) -> None:
    engine = ReplayEngine(history, stream="warm-push", pause_after=WARM_PAUSE)
    clock = FrozenClock()
    app = make_app(engine, clock=clock)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot)
        table = screen.query_one(StepTable)
        await wait_for(pilot, lambda: screen.state.running == "1:4", what="step 4 running")
        clock.now = 1.5
        await pilot.pause(0.2)
        assert header(screen) == "Building 1.5s (3/4 steps) · 2 cached · host-ro"
        await pilot.press("c")
        await wait_for(pilot, lambda: screen.finished, what="Done(canceled)")
        assert screen.state.done.status == "canceled"
        assert table.status_of("1:4") == "canceled"
        assert header(screen).startswith("Canceled")
        assert "■ Canceled" in screen.query_one(ResultPanel).render().plain
        assert history.recent()[0].status == "canceled"
        # Anything arriving after Done changes nothing.
        lines = screen.query_one(LogView).total_lines
        screen.post_message(BuildEvents([
            LogLine(line="late"),
            StepStarted(stage=1, stages=1, step=5, steps=5, instruction="RUN late"),
        ]))
        await pilot.pause(0.2)
        assert screen.query_one(LogView).total_lines == lines
        assert table.row_count == 4 and "1:5" not in screen.state.rows
        assert header(screen).startswith("Canceled")


async def test_escape_while_running_keeps_the_build(history) -> None:
    engine = ReplayEngine(history, stream="warm-push", pause_after=WARM_PAUSE)
    app = make_app(engine)
    async with app.run_test() as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.state.running == "1:4")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and not screen.finished
        await pilot.press("c")
        await wait_for(pilot, lambda: screen.finished)


class BrokenEngine(ReplayEngine):
    def runner(self, plan, on_event, on="local", session=False):
        raise RuntimeError("podman API service does not answer at unix:///run/podman/podman.sock")


async def test_a_runner_that_cannot_start_is_shown_as_a_failure(history) -> None:
    app = make_app(BrokenEngine(history))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished)
        text = screen.query_one(FailurePanel).render().plain
        assert "the build could not run: podman API service does not answer" in text
        assert header(screen).startswith("Failed")


async def test_an_unchanged_build_says_no_container_ran(history) -> None:
    """A real unchanged build's events (recorded from `buildcage build --json`): every step
    from the cache, and the result says why nothing ran."""
    engine = ReplayEngine(history, stream="unchanged")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_build(pilot)
        await wait_for(pilot, lambda: screen.finished, what="Done")
        table = screen.query_one(StepTable)
        assert [table.status_of(f"1:{i}") for i in range(1, 5)] == [
            "done", "cached", "cached", "cached"]
        assert header(screen) == "Unchanged 0.0s (4/4 steps) · 3 cached · host-ro"
        text = screen.query_one(ResultPanel).render().plain
        assert "✓ Unchanged 6011cfd83b5d in 0.0s" in text
        assert "no container: nothing changed since build #7" in text
        assert "3/4 steps from cache" in text
