"""The CLI's two printers over the same events."""

from __future__ import annotations

import io
import json

from tui.cli_output import HumanPrinter, JsonPrinter
from tui.engine.events import CacheHit, Done, Failed, LogLine, StepDone, StepStarted, Unchanged


def test_json_printer_writes_one_object_per_event_and_errors_end_with_done():
    out = io.StringIO()
    printer = JsonPrinter(out)
    printer(StepStarted(stage=1, stages=2, step=3, steps=6, instruction="RUN x", time=1.0))
    printer(LogLine(line="hello", time=2.0))
    printer.error("build context 'x' does not exist")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in rows] == ["step_started", "log", "error", "done"]
    assert all("time" in r for r in rows)
    assert rows[0] == {"event": "step_started", "time": 1.0, "stage": 1, "stages": 2, "step": 3,
                       "steps": 6, "instruction": "RUN x"}
    assert rows[-1]["status"] == "failed"


def test_human_printer_reads_events_for_people():
    printer = HumanPrinter(io.StringIO())
    assert printer.render(StepStarted(stage=2, stages=2, step=4, steps=6,
                                      instruction="COPY --from=build /a /b")) \
        == "==> [2/2] step 4/6: COPY --from=build /a /b"
    assert printer.render(CacheHit(stage=1, step=2, layer_id="abc")) == "    cache hit abc"
    assert printer.render(StepDone(stage=1, step=2, layer_id="abc", duration_s=1.25)) \
        == "    done abc (1.2s)"
    assert printer.render(Failed(message="exit status 3", step="RUN false")) \
        == "FAILED at 'RUN false': exit status 3"
    done = Done(status="succeeded", image_id="f" * 64, duration_s=3.0, steps_total=4,
                cache_hits=3, pushed="r/x:1@sha256:1")
    assert printer.render(done) == ("buildcage: succeeded in 3.0s, 3/4 steps cached, image "
                                    "ffffffffffff, pushed r/x:1@sha256:1")
    assert HumanPrinter(io.StringIO(), quiet=True).render(LogLine(line="x")) is None


class ClosedPipe:
    """An output whose reader has gone: every write fails as a pipe into ``head`` does."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_printers_stop_writing_when_the_reader_goes():
    for printer_type in (HumanPrinter, JsonPrinter):
        out = ClosedPipe()
        printer = printer_type(out)  # type: ignore[arg-type]
        printer(StepStarted(stage=1, stages=1, step=1, steps=1, instruction="RUN x"))
        printer(LogLine(line="more"))  # the build goes on; nothing raised into the runner
        printer(Done(status="succeeded"))
        assert out.writes == 1 and printer.gone


def test_human_printer_folds_the_events_into_the_same_build_state_as_the_tui():
    printer = HumanPrinter(io.StringIO())
    printer(StepStarted(stage=1, stages=1, step=1, steps=2, instruction="FROM x"))
    printer(CacheHit(stage=1, step=1, layer_id="abc"))
    printer(StepStarted(stage=1, stages=1, step=2, steps=2, instruction="RUN false"))
    printer(Failed(message="exit status 1", step="RUN false"))
    printer(Done(status="failed"))
    state = printer.state
    assert [(r.instruction, r.status) for r in state.rows.values()] == [
        ("FROM x", "cached"), ("RUN false", "failed")]
    assert state.cache_hits == 1 and state.failed is not None and state.done is not None


def test_build_takes_podman_builds_short_quiet():
    from tui.cli import parser

    assert parser().parse_args(["build", "ctx", "-q"]).quiet is True
    assert parser().parse_args(["build", "ctx"]).quiet is False


def test_an_unchanged_build_is_said_before_its_steps():
    printer = HumanPrinter(io.StringIO())
    assert printer.render(Unchanged(build=12, image_id="a" * 64)) == (
        "==> unchanged since build #12: image aaaaaaaaaaaa is the result; no container ran")
    printer(Unchanged(build=12, image_id="a" * 64))
    assert printer.state.unchanged is not None and printer.state.unchanged.build == 12
