"""The recorded streams, the replay runner and the event batcher the UI tests rely on."""

from __future__ import annotations

import importlib.util
import sys
import threading

import pytest
from ui_helpers import ROOT

from tests.support.replay import ReplayEngine, ReplayRunner, load_stream
from tui.batching import BuildEvents, EventBatcher, LogLines
from tui.engine.config import Config
from tui.engine.events import CacheHit, Done, LogLine, StepStarted
from tui.engine.history import History
from tui.state.build_state import BuildState

spec = importlib.util.spec_from_file_location(
    "make_streams", ROOT / "tests" / "data" / "events" / "make_streams.py")
make_streams = importlib.util.module_from_spec(spec)
sys.modules["make_streams"] = make_streams  # dataclasses look their module up while defining
spec.loader.exec_module(make_streams)


@pytest.mark.parametrize("stream", make_streams.STREAMS, ids=lambda s: s.name)
def test_recorded_streams_are_up_to_date(stream) -> None:
    """Regenerate with `python3 tests/data/events/make_streams.py` when this fails."""
    path = ROOT / "tests" / "data" / "events" / f"{stream.name}.jsonl"
    assert path.read_text() == make_streams.render(stream)
    events = load_stream(stream.name)
    assert isinstance(events[-1], Done)
    assert events[-1].status == ("failed" if stream.exit_code or stream.refused_by
                                 else "succeeded")


def test_warm_stream_has_cache_hits_and_a_push() -> None:
    done = load_stream("warm-push")[-1]
    assert (done.cache_hits, done.steps_total) == (3, 4)
    assert done.pushed.startswith("127.0.0.1:5000/demo/hello:x@sha256:")


def plan_for(tmp_path, profile="host-ro", no_cache=False):
    engine = ReplayEngine(History(tmp_path / "h.sqlite3"), config=Config())
    return engine, engine.plan(ROOT / "examples" / "hello", profile=profile, no_cache=no_cache)


def test_replay_runner_cancel_ends_with_canceled(tmp_path) -> None:
    _, plan = plan_for(tmp_path)
    seen = []
    runner = ReplayRunner(load_stream("warm-push"), seen.append, plan, pause_after=10)
    thread = threading.Thread(target=runner.run)
    thread.start()
    while len(seen) < 10:
        pass
    runner.cancel()
    thread.join(5)
    assert len(seen) == 11
    assert seen[-1].status == "canceled"
    assert seen[-1].steps_total == 2 and seen[-1].cache_hits == 1
    assert seen[0].profile == "host-ro" and seen[0].build_id == plan.build_id


def test_replay_engine_picks_cold_or_warm_and_records(tmp_path) -> None:
    engine, plan = plan_for(tmp_path, no_cache=True)
    done = engine.runner(plan, lambda e: None).run()
    assert done.cache_hits == 0
    _, warm = plan_for(tmp_path)
    assert engine.runner(warm, lambda e: None).run().cache_hits == 3
    assert [r.warm for r in engine.history.recent()] == [True, False]


def test_batcher_posts_per_interval_in_order_and_flushes_done() -> None:
    now = [0.0]
    posted: list[BuildEvents] = []
    batcher = EventBatcher(posted.append, interval=0.05, clock=lambda: now[0])
    for i in range(100):
        batcher(LogLine(line=str(i)))
    assert posted == []  # no time passed: still one batch in the making
    now[0] = 0.06
    batcher(LogLine(line="100"))
    # One run of log lines, as their text (tests/ui/test_batching.py has why).
    assert len(posted) == 1 and [list(e) for e in posted[0].events] == \
        [[str(i) for i in range(101)]]
    batcher(LogLine(line="101"))
    batcher.flush()
    assert len(posted) == 1  # the screen has not handled the first batch yet
    batcher.handled()
    batcher(Done(status="succeeded"))  # a Done goes at once
    lines = [line for m in posted for e in m.events if isinstance(e, LogLines) for line in e]
    assert lines == [str(i) for i in range(102)]
    assert isinstance(posted[-1].events[-1], Done)


def test_build_state_ignores_events_after_done() -> None:
    state = BuildState()
    state.apply(StepStarted(stage=1, stages=1, step=1, steps=2, instruction="FROM x"))
    assert [r.status for r in state.rows.values()] == ["running", "queued"]
    state.apply(CacheHit(stage=1, step=1, layer_id="abc"))
    state.apply(Done(status="canceled"))
    assert [r.status for r in state.rows.values()] == ["cached", "canceled"]
    assert state.apply(StepStarted(stage=1, stages=1, step=2, steps=2, instruction="RUN")) == set()
