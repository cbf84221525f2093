"""Events cross from the build's thread to the UI in batches; log lines cross as text.

Event objects that wait in a batch outlive the garbage collector's youngest generation; a
million of them set off full collections that held the GIL for up to 350 ms (the UI's worst
stalls, bench/results.md). The batcher keeps a log line's text and lets its event go.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

from textual.message import Message
from ui_helpers import build_to_done, make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.batching import BuildEvents, EventBatcher, LogLines
from tui.engine.events import BuildStarted, Done, Event, LogLine, StepDone, StepStarted
from tui.screens.build import BuildScreen
from tui.widgets.log_view import LogView
from tui.widgets.step_table import StepTable


def log_lines_alive() -> int:
    gc.collect()
    return sum(type(thing) is LogLine for thing in gc.get_objects())


def test_a_batch_keeps_the_text_of_log_lines_not_their_events() -> None:
    posted: list[Message] = []
    now = [0.0]
    batcher = EventBatcher(posted.append, interval=0.05, clock=lambda: now[0])
    before = log_lines_alive()
    started = StepStarted(stage=1, stages=1, step=1, steps=2, instruction="RUN a", time=1.0)
    done = StepDone(stage=1, step=1, layer_id="0123456789a", duration_s=1.0, time=2.0)
    batcher(started)
    for i in range(1000):
        batcher(LogLine.of(f"a {i}", 1.5))
    batcher(done)
    for i in range(500):
        batcher(LogLine.of(f"b {i}", 2.5))
    assert posted == []  # the clock stood still: all of it waits in one batch
    assert log_lines_alive() == before  # ... and not one LogLine object with it
    now[0] = 1.0
    batcher(LogLine.of("b 500", 2.6))
    [message] = posted
    assert isinstance(message, BuildEvents)
    assert [type(item) for item in message.events] == [StepStarted, LogLines, StepDone, LogLines]
    assert message.events[0] is started and message.events[2] is done
    assert message.events[1] == [f"a {i}" for i in range(1000)]
    assert message.events[3] == [f"b {i}" for i in range(501)]
    # One batch at a time: until the screen has handled it, even a Done waits.
    now[0] = 2.0
    batcher(LogLine.of("c", 3.0))
    batcher(Done(status="succeeded", time=3.0))
    batcher.flush()
    assert len(posted) == 1
    batcher.handled()
    batcher.flush()
    assert [type(item) for item in posted[1].events] == [LogLines, Done]
    assert posted[1].events[0] == ["c"]  # a new run of lines
    batcher(LogLine.of("d", 3.0))
    batcher.flush()  # (the screen has not handled the Done's batch)
    assert len(posted) == 2


def test_a_busy_screen_costs_no_more_than_the_lines_the_log_can_show() -> None:
    """While a batch is on its way, a fast build's lines pile up in the batcher: it keeps the
    last of them (at least as many as the log holds) and counts the others."""
    posted: list[Message] = []
    batcher = EventBatcher(posted.append, clock=lambda: 0.0, keep_lines=10)
    batcher.flush()
    batcher(StepStarted(stage=1, stages=1, step=1, steps=1, instruction="RUN seq", time=1.0))
    batcher.flush()  # now one batch is on its way
    for i in range(1, 1001):
        batcher(LogLine.of(str(i), 1.0))
    batcher.handled()
    batcher.flush()
    [run] = posted[1].events
    assert isinstance(run, LogLines)
    assert 10 <= len(run) < 20 and run.dropped + len(run) == 1000
    assert run == [str(i) for i in range(run.dropped + 1, 1001)]


def interleaved(plan, lines: int = 700) -> Iterator[Event]:
    """Three steps, each printing lines, with a line that looks like a control sequence."""
    yield BuildStarted(build_id="x", profile="host-ro", context="c", tag="t", time=1.0)
    for step in (1, 2, 3):
        yield StepStarted(stage=1, stages=1, step=step, steps=3, instruction=f"RUN {step}",
                          time=float(step))
        for i in range(lines):
            yield LogLine(line=f"{step}.{i}", time=float(step))
        yield StepDone(stage=1, step=step, layer_id=f"{step:011d}", duration_s=1.0,
                       time=step + 0.5)
    yield LogLine(line="\x1b[2Jgone?", time=4.0)
    yield Done(status="succeeded", image_id="f" * 64, duration_s=4.0, steps_total=3, time=4.0)


async def test_the_log_shows_every_line_in_order_between_the_steps(history) -> None:
    app = make_app(ReplayEngine(history, stream=interleaved))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build_to_done(pilot)
        log = screen.query_one(LogView)
        assert log.total_lines == 2101
        assert list(log.lines) == [f"{step}.{i}" for step in (1, 2, 3) for i in range(700)] \
            + ["\\x1b[2Jgone?"]
        table = screen.query_one(StepTable)
        assert [table.status_of(f"1:{step}") for step in (1, 2, 3)] == ["done"] * 3
        assert table.get_cell("1:3", "layer") == "00000000003"


def many_lines(plan) -> Iterator[Event]:
    yield BuildStarted(build_id="x", profile="host-ro", context="c", tag="t", time=1.0)
    yield StepStarted(stage=1, stages=1, step=1, steps=1, instruction="RUN seq", time=1.0)
    for i in range(20_000):
        yield LogLine.of(str(i), 1.0)
    yield StepDone(stage=1, step=1, layer_id="0123456789a", duration_s=1.0, time=2.0)
    yield Done(status="succeeded", image_id="f" * 64, duration_s=1.0, steps_total=1, time=2.0)


async def test_a_slow_screen_never_gets_batches_back_to_back(history, monkeypatch) -> None:
    """Batches come faster than this screen draws them (each takes 80 ms here); the event loop
    still turns between any two of them (timers, frames and keys get their turn), and no line
    is lost: what came meanwhile goes in the next batch."""
    import asyncio
    import time

    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    seen: list[int] = []
    write_batch = LogView.write_batch

    def slow_write_batch(self: LogView, lines, dropped: int = 0) -> None:
        seen.append(turns)
        time.sleep(0.08)  # a slow machine's draw, blocking the event loop as real work does
        write_batch(self, lines, dropped)

    monkeypatch.setattr(LogView, "write_batch", slow_write_batch)
    app = make_app(ReplayEngine(history, stream=many_lines))
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        counter = asyncio.get_running_loop().create_task(count_turns())
        try:
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
            screen = app.screen
            await wait_for(pilot, lambda: screen.finished, what="Done")
        finally:
            counter.cancel()
        log = screen.query_one(LogView)
        assert log.total_lines == 20_000 and log.lines[-1] == "19999"
        assert len(seen) >= 2
        back_to_back = sum(a == b for a, b in zip(seen, seen[1:], strict=False))
        assert back_to_back == 0, f"{back_to_back} of {len(seen)} batches ran back to back"


async def test_batches_of_log_lines_redraw_neither_the_header_nor_the_step_table(
        history, monkeypatch) -> None:
    """A batch that changes no step leaves the table's cursor be, and the header is redrawn
    only when its text changed, without a layout pass (which redrew the whole screen)."""
    from textual.widgets import Static

    headers: list[tuple[str, bool]] = []
    moves: list[int] = []
    update, move_cursor = Static.update, StepTable.move_cursor

    def spy_update(self: Static, content="", *, layout: bool = True) -> None:
        if self.id == "build-header":
            headers.append((str(content), layout))
        update(self, content, layout=layout)

    def spy_move(self: StepTable, *args, **kwargs) -> None:
        moves.append(kwargs.get("row", -1))
        move_cursor(self, *args, **kwargs)

    monkeypatch.setattr(Static, "update", spy_update)
    monkeypatch.setattr(StepTable, "move_cursor", spy_move)
    app = make_app(ReplayEngine(history, stream=lambda plan: interleaved(plan, 100),
                                delay=0.002))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build_to_done(pilot)
        batches = screen.batcher.batches
    assert batches > 10  # (the delay spreads the 300 lines over many batches)
    assert headers and all(not layout for _, layout in headers)
    assert all(a != b for (a, _), (b, _) in zip(headers, headers[1:], strict=False))
    assert len(moves) <= 7  # a step started or ended, not a batch of lines


async def test_the_log_measures_a_batch_without_a_worker_thread() -> None:
    """Textual's Log started a thread worker per write to measure the new lines; each held the
    batch in reference cycles until a full collection (105 MB RSS for a million lines)."""
    from textual.app import App, ComposeResult

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView()

    app = Bare()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(LogView)
        before = len(app.workers)
        log.write_batch(["short", "\ttab", "\u5bbd\u5b57\u7b26", "x" * 300, "y" * 20])
        assert len(app.workers) == before
        await pilot.pause()
        assert log.virtual_size.width == 300
        log.write_batch(["\u5bbd" * 200])  # 200 wide characters: 400 cells
        await pilot.pause()
        assert log.virtual_size.width == 400
        log.write_batch(["a" * 401, "b"])  # printable ASCII: as wide as long
        await pilot.pause()
        assert log.virtual_size.width == 401
        log.write_batch(["\t" * 60, "c"])  # 60 tabs: 480 cells, though 60 characters
        await pilot.pause()
        assert log.virtual_size.width == 480


def test_the_runner_waits_for_the_screen_once_per_batch_in_a_flood() -> None:
    """With ``wait_s``, the ``wait_after``-th event that comes while a batch is on its way holds
    the runner's thread until the screen has handled that batch (the screen draws without the
    runner taking the GIL from it), and only once per batch: a screen that never answers costs
    one wait. Fewer events meanwhile (a build printing at its own pace) never wait."""
    import threading

    posted: list[Message] = []
    now = [0.0]
    batcher = EventBatcher(posted.append, interval=0.05, clock=lambda: now[0], wait_s=60.0,
                           wait_after=2)

    def from_the_runner(*events: Event) -> threading.Thread:
        thread = threading.Thread(target=lambda: [batcher(event) for event in events])
        thread.start()
        return thread

    batcher(LogLine.of("a", 1.0))  # nothing on its way: no wait
    batcher.flush()
    assert len(posted) == 1
    runner = from_the_runner(LogLine.of("b", 1.0))
    runner.join(10)
    assert not runner.is_alive()  # one event meanwhile: no flood, no wait
    runner = from_the_runner(LogLine.of("c", 1.0))
    runner.join(0.3)
    assert runner.is_alive()  # the second: waiting for the screen
    batcher.handled()
    runner.join(10)
    assert not runner.is_alive()
    # The next batch: the screen never answers; the runner waits wait_s for it, then goes on.
    batcher.flush()
    assert len(posted) == 2 and posted[1].events == [["b", "c"]]
    batcher._wait_s = 0.05  # noqa: SLF001 - a short wait, then a long one that must not come
    runner = from_the_runner(LogLine.of("d", 1.0), LogLine.of("e", 1.0))
    runner.join(10)
    assert not runner.is_alive()
    batcher._wait_s = 60.0  # noqa: SLF001
    runner = from_the_runner(LogLine.of("f", 1.0), LogLine.of("g", 1.0))
    runner.join(10)
    assert not runner.is_alive()  # (no second wait for the same batch)
    batcher.handled()
    batcher.flush()
    assert posted[2].events == [["d", "e", "f", "g"]]


def test_a_handled_batch_gives_the_runner_a_whole_interval() -> None:
    """The next batch is posted an interval after the screen handled the last, not after it
    was posted: the runner (which waited meanwhile) gets its turn."""
    posted: list[Message] = []
    now = [0.0]
    batcher = EventBatcher(posted.append, interval=0.05, clock=lambda: now[0])
    now[0] = 0.06
    batcher(LogLine.of("a", 1.0))
    assert len(posted) == 1
    now[0] = 0.10
    batcher.handled()  # it took the screen 40 ms
    now[0] = 0.13
    batcher(LogLine.of("b", 1.0))
    assert len(posted) == 1  # 70 ms after the post, but 30 ms after it was handled
    now[0] = 0.16
    batcher(LogLine.of("c", 1.0))
    assert len(posted) == 2 and posted[1].events == [["b", "c"]]


async def test_a_covered_build_screen_still_gets_every_batch(history) -> None:
    """The screen says it handled a batch once it is drawn (call_after_refresh); with the help
    screen over it, it draws nothing, and the batches must still come, to the last line."""
    from tui.screens.help import HelpScreen

    app = make_app(ReplayEngine(history, stream=lambda plan: (e for i, e in enumerate(
        many_lines(plan)) if i < 2002 or not isinstance(e, LogLine)), delay=0.001))
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert not screen.finished  # (the build goes on under the help screen)
        # (a liveness bound, not a timing: 2000 replayed events 1 ms apart take 6-14 s here,
        # more beside the integration tests)
        await wait_for(pilot, lambda: screen.finished, timeout=90,
                       what="Done under the help screen")
        assert isinstance(app.screen, HelpScreen)
        log = screen.query_one(LogView)
        assert log.total_lines == 2000 and log.lines[-1] == "1999"
