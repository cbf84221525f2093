"""The parser on output captured from buildcage's own builders here (Buildah 1.28 in the builder
image): pulls, pushes with our protocol lines, cache-warm and failing builds, a --target build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.engine.buildah_output import parse_lines
from tui.engine.events import (
    BlobCopied,
    CacheHit,
    Failed,
    ImageBuilt,
    ImageInfo,
    LogLine,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
)

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "captured"
BASE = "127.0.0.1:5000/buildcage/busybox:latest"


def parse(name: str, exit_code: int = 0):
    lines = (CAPTURED / name).read_text().splitlines()
    return lines, parse_lines(lines, exit_code=exit_code, step_s=0.01)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURED.glob("*.log")))
def test_every_line_arrives_as_a_log_event(name):
    lines, events = parse(name, exit_code=3 if "broken" in name else 0)
    assert [e.line for e in of(events, LogLine)] == lines


def test_cold_multistage_pulls_then_pushes_with_a_digest():
    _, events = parse("project-multistage-cold-pull-push.log")
    assert [p.ref for p in of(events, PullStarted)] == [BASE]
    pulls = [b for b in of(events, BlobCopied) if b.phase == "pull"]
    pushes = [b for b in of(events, BlobCopied) if b.phase == "push"]
    assert len(pulls) == 1 and len(pushes) == 3
    assert [p.ref for p in of(events, PushStarted)] == ["127.0.0.1:5000/captured/multistage:1"]
    pushed = of(events, Pushed)
    assert len(pushed) == 1 and pushed[0].digest.startswith("sha256:")
    assert len(pushed[0].digest) == 71
    steps = of(events, StepStarted)
    assert [(s.stage, s.step) for s in steps][:2] == [(1, 1), (1, 2)]
    assert len(steps) == 12 and steps[-1].stages == 2
    assert len(of(events, ImageInfo)[0].layers) == 3
    assert of(events, Failed) == []


def test_warm_multistage_hits_the_cache_on_every_cacheable_step():
    _, events = parse("project-multistage-warm.log")
    cacheable = [(s.stage, s.step) for s in of(events, StepStarted)
                 if not s.instruction.startswith("FROM")]
    assert [(c.stage, c.step) for c in of(events, CacheHit)] == cacheable
    done = of(events, StepDone)
    assert all(d.cached for d in done if (d.stage, d.step) in cacheable)
    assert of(events, PullStarted) == []
    assert len(of(events, ImageBuilt)) == 1


def test_failing_build_names_the_step_and_its_exit_status():
    _, events = parse("host-ro-broken-exit3.log", exit_code=3)
    failed = of(events, Failed)
    assert len(failed) == 1
    assert failed[0].step == 'RUN echo "about to fail" && exit 3'
    assert failed[0].exit_code == 3
    assert {(d.stage, d.step) for d in of(events, StepDone)} == {(1, 1), (1, 2)}


def test_target_build_stops_at_the_named_stage():
    _, events = parse("isolated-multistage-target-pull.log")
    steps = of(events, StepStarted)
    assert [s.instruction.split()[0] for s in steps] == ["FROM", "ARG", "WORKDIR", "COPY", "RUN",
                                                         "RUN"]
    assert [p.ref for p in of(events, PullStarted)] == [BASE]
    assert len(of(events, ImageBuilt)) == 1


def test_run_output_without_a_newline_gets_buildahs_next_line_glued_on():
    # Real: `RUN printf abc` prints "abc--> f12304c2e6d"; the step still closes with its layer.
    lines, events = parse("host-ro-no-trailing-newline.log")
    assert any(line.startswith("abc--> ") for line in lines)
    done = {d.step: d.layer_id for d in of(events, StepDone)}
    assert done[2] == lines[2].removeprefix("abc--> ")
    assert len(done) == 3


def test_a_dropped_tail_glues_commit_to_the_last_partial_line():
    # Seen here under CPU load: Buildah dropped the last pipe-full of a RUN's output.
    lines = ["STEP 1/2: FROM x", "STEP 2/2: RUN seq 1 1000000", "1", "2", "991COMMIT img:1",
             "--> 2d30b986b7e", "Successfully tagged localhost/img:1", "2d30" + "a" * 60]
    events = parse_lines(lines)
    assert [e.image for e in events if e.name == "commit"] == ["img:1"]
    assert [(d.step, d.layer_id) for d in of(events, StepDone)] == [(1, ""), (2, "2d30b986b7e")]
    # Output that merely mentions such words is not mistaken for Buildah's lines.
    quiet = parse_lines(["STEP 1/1: RUN x", "git COMMIT abc --> later", "STEP 2 of 3: fine"])
    assert [e.name for e in quiet if e.name != "log"] == ["step_started", "step_done"]
