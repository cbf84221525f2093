"""The parser on output captured from buildcage's own builders here (Buildah 1.28 in the builder
image): pulls, pushes, cache-warm and failing builds, a --target build.

These logs were captured when one container built and pushed, printing `buildcage: ...` protocol
lines; those are plain log lines now. `phased` replays a log as the runner now feeds it: the
build, then (from the first `buildcage: ` line) the publish phase, after `begin_push()`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.engine.buildah_output import BuildahOutputParser, parse_lines
from tui.engine.events import (
    BlobCopied,
    CacheHit,
    ConfigCopied,
    Failed,
    ImageBuilt,
    ImageInfo,
    LogLine,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
    Tagged,
)

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "captured"
BASE = "127.0.0.1:5000/buildcage/busybox:latest"
LOGS = sorted(p.name for p in CAPTURED.glob("*.log"))
FACTS = (ImageBuilt, ImageInfo, Pushed, PushStarted)


def parse(name: str, exit_code: int = 0):
    lines = (CAPTURED / name).read_text().splitlines()
    return lines, parse_lines(lines, exit_code=exit_code, step_s=0.01)


def phased(name: str):
    """The build's lines, then the publish phase's after ``begin_push()``, as the runner does."""
    lines = (CAPTURED / name).read_text().splitlines()
    cut = next((i for i, line in enumerate(lines) if line.startswith("buildcage: ")), len(lines))
    parser = BuildahOutputParser()
    events = []
    for i, line in enumerate(lines[:cut]):
        events += parser.feed(line, i * 0.01)
    events += parser.finish(0, cut * 0.01)
    parser.begin_push()
    for i, line in enumerate(lines[cut:], cut):
        events += parser.feed(line, i * 0.01)
    events += parser.finish(0, len(lines) * 0.01)
    return lines, events, parser


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("name", LOGS)
def test_every_line_arrives_as_a_log_event(name):
    lines, events = parse(name, exit_code=3 if "broken" in name else 0)
    assert [e.line for e in of(events, LogLine)] == lines


@pytest.mark.parametrize("name", LOGS)
def test_no_fact_comes_from_the_output(name):
    # These logs hold real `buildcage: manifest/push/pushed` lines and image ids: still no fact.
    _, events = parse(name, exit_code=3 if "broken" in name else 0)
    assert [e for e in events if isinstance(e, FACTS)] == []
    if "broken" not in name:
        _, events, parser = phased(name)
        assert [e for e in events if isinstance(e, FACTS)] == []
        assert parser.failed is None and of(events, Failed) == []


@pytest.mark.parametrize("name", [n for n in LOGS if "push" in n])
def test_push_blobs_are_a_push_once_the_runner_says_so(name):
    lines, events, _ = phased(name)
    cut = lines.index(next(line for line in lines if line.startswith("buildcage: push ")))
    pushed = [line.split()[2] for line in lines[cut:] if line.startswith("Copying blob ")]
    assert len(pushed) == 3
    assert [b.digest for b in of(events, BlobCopied) if b.phase == "push"] == pushed
    assert [c.phase for c in of(events, ConfigCopied)][-1] == "push"
    # Unphased (one stream, no begin_push), the same lines stay a pull's.
    _, flat = parse(name)
    assert {b.phase for b in of(flat, BlobCopied)} == {"pull"}


def test_cold_multistage_pulls_then_pushes():
    lines, events, parser = phased("project-multistage-cold-pull-push.log")
    assert [p.ref for p in of(events, PullStarted)] == [BASE]
    pulls = [b for b in of(events, BlobCopied) if b.phase == "pull"]
    pushes = [b for b in of(events, BlobCopied) if b.phase == "push"]
    assert len(pulls) == 1 and len(pushes) == 3
    # The pushed digest, the layer sizes and the image id are in the log, and not taken from it.
    assert any(line.startswith("buildcage: pushed ") for line in lines)
    assert any(line.startswith("buildcage: manifest ") for line in lines)
    assert [e for e in events if isinstance(e, FACTS)] == []
    steps = of(events, StepStarted)
    assert [(s.stage, s.step) for s in steps][:2] == [(1, 1), (1, 2)]
    assert len(steps) == 12 and steps[-1].stages == 2
    # Every step closes within the build, the last by the `-->` after COMMIT.
    done = of(events, StepDone)
    assert [(d.stage, d.step) for d in done] == [(s.stage, s.step) for s in steps]
    assert done[-1].layer_id == "47928365048"
    assert [t.image for t in of(events, Tagged)] == ["localhost/buildcage/multistage:latest"]
    assert of(events, Failed) == [] and parser.failed is None


def test_warm_multistage_hits_the_cache_on_every_cacheable_step():
    _, events = parse("project-multistage-warm.log")
    cacheable = [(s.stage, s.step) for s in of(events, StepStarted)
                 if not s.instruction.startswith("FROM")]
    assert [(c.stage, c.step) for c in of(events, CacheHit)] == cacheable
    done = of(events, StepDone)
    assert all(d.cached for d in done if (d.stage, d.step) in cacheable)
    assert of(events, PullStarted) == []
    assert len(done) == len(of(events, StepStarted))
    assert of(events, ImageBuilt) == []


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
    assert [d.step for d in of(events, StepDone)] == [1, 2, 3, 4, 5, 6]
    assert of(events, ImageBuilt) == []


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
