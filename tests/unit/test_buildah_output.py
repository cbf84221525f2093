"""Tests of the Buildah output parser against real logs (tests/data/buildah) and synthetic lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tui.engine.buildah_output import BuildahOutputParser, parse_lines
from tui.engine.events import (
    BlobCopied,
    BuildWarning,
    CacheHit,
    Committed,
    ConfigCopied,
    Event,
    Failed,
    ImageBuilt,
    ImageInfo,
    LogLine,
    ManifestWritten,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
    Tagged,
    event_from_json,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "buildah"
LOGS = sorted(DATA.glob("*.log"))
STEP_LINE = re.compile(r"^(\[\d+/\d+\] )?STEP \d+/\d+: ", re.MULTILINE)
HEX64 = re.compile(r"[0-9a-f]{64}")
# What only the trusted publish phase may say, out of band: never from the build's output.
FACTS = (ImageBuilt, ImageInfo, Pushed, PushStarted)


def lines_of(name: str) -> list[str]:
    return (DATA / f"{name}.log").read_text().splitlines()


def exit_code_of(lines: list[str]) -> int:
    return 1 if any(line.startswith("Error:") for line in lines) else 0


def parse(name: str, start: float = 1000.0, step_s: float = 1.0) -> list[Event]:
    lines = lines_of(name)
    return parse_lines(lines, exit_code_of(lines), start=start, step_s=step_s)


def typed(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, LogLine)]


def of(events: list[Event], cls: type[Event]) -> list:
    return [e for e in events if isinstance(e, cls)]


def facts(events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, FACTS)]


def test_enough_real_logs() -> None:
    assert len(LOGS) >= 20


# --- properties every real log must have -------------------------------------------------------


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_one_log_line_per_line_in_order(path: Path) -> None:
    lines = path.read_text().splitlines()
    events = parse_lines(lines, exit_code_of(lines))
    assert [e.line for e in of(events, LogLine)] == lines


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_log_line_comes_first_and_times_are_the_arrival_time(path: Path) -> None:
    parser = BuildahOutputParser()
    for i, line in enumerate(path.read_text().splitlines()):
        events = parser.feed(line, 50.0 + i)
        assert events[0] == LogLine(line=line, time=50.0 + i)
        assert not any(isinstance(e, LogLine) for e in events[1:])
        assert all(e.time == 50.0 + i for e in events)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_a_read_of_many_lines_parses_as_those_lines_one_by_one(path: Path) -> None:
    """``feed_all`` (the runner's path: a log read's lines, one arrival time) is ``feed`` of each
    line in turn, whatever the reads' sizes, also with one read holding the whole log."""
    lines = path.read_text().splitlines()
    one_by_one, by_reads, whole = (BuildahOutputParser() for _ in range(3))
    expected: list[Event] = []
    got: list[Event] = []
    for start in range(0, len(lines), 7):
        read = lines[start:start + 7]
        for line in read:
            expected += one_by_one.feed(line, float(start))
        got += by_reads.feed_all(read, float(start))
    assert got == expected
    assert [e.line for e in of(whole.feed_all(lines, 1.0), LogLine)] == lines
    assert by_reads.finish(1, 9.0) == one_by_one.finish(1, 9.0)
    assert (by_reads.steps_total, by_reads.cache_hits, by_reads.failed) == (
        one_by_one.steps_total, one_by_one.cache_hits, one_by_one.failed)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_each_step_done_at_most_once_and_after_its_start(path: Path) -> None:
    lines = path.read_text().splitlines()
    started: set[tuple[int, int]] = set()
    done: set[tuple[int, int]] = set()
    for event in parse_lines(lines, exit_code_of(lines)):
        if isinstance(event, StepStarted):
            started.add((event.stage, event.step))
        elif isinstance(event, StepDone):
            key = (event.stage, event.step)
            assert key in started and key not in done
            done.add(key)
            assert event.duration_s >= 0


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_failed_exactly_when_the_log_has_an_error(path: Path) -> None:
    lines = path.read_text().splitlines()
    parser = BuildahOutputParser()
    events: list[Event] = []
    for line in lines:
        events += parser.feed(line, 0.0)
    ending = parser.finish(exit_code_of(lines), 1.0)
    events += ending
    failures = of(events, Failed)
    assert facts(events) == []  # whatever the log: facts come out of band
    if exit_code_of(lines):
        assert len(failures) == 1
        assert parser.failed == failures[0]
        # The failing step is the last one started and never gets a StepDone.
        starts, dones = of(events, StepStarted), of(events, StepDone)
        if starts:
            assert (starts[-1].stage, starts[-1].step) not in {(d.stage, d.step) for d in dones}
    else:
        assert failures == [] and parser.failed is None
        # A good build ends with the image id, and closes every step it started before that:
        # finish has nothing left to close.
        assert HEX64.fullmatch(lines[-1])
        assert ending == []
        assert len(of(events, StepDone)) == len(of(events, StepStarted))
        assert len(of(events, Committed)) == 1


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_counters(path: Path) -> None:
    text = path.read_text()
    parser = BuildahOutputParser()
    events: list[Event] = []
    for line in text.splitlines():
        events += parser.feed(line, 0.0)
    assert parser.steps_total == len(STEP_LINE.findall(text)) == len(of(events, StepStarted))
    assert parser.cache_hits == text.count("--> Using cache ") == len(of(events, CacheHit))
    assert len(of(events, BuildWarning)) == text.count("level=warning")
    assert len(of(events, Tagged)) == text.count("Successfully tagged ")


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_json_round_trip(path: Path) -> None:
    lines = path.read_text().splitlines()
    for event in parse_lines(lines, exit_code_of(lines), start=1.7e9, step_s=0.25):
        assert event_from_json(event.to_json()) == event


# --- exact results on chosen logs ---------------------------------------------------------------


def test_simple_multi_step_exact_sequence() -> None:
    assert lines_of("simple-multi-step")[-1] == (
        "2d30b986b7eb339e82990dbd5e4d4802cdedeaf351d417c24b80a7e2bfd51478")
    assert typed(parse("simple-multi-step")) == [
        StepStarted(stage=1, stages=1, step=1, steps=4, instruction="FROM alpine", time=1000),
        StepDone(stage=1, step=1, layer_id="", duration_s=1, time=1001),
        StepStarted(stage=1, stages=1, step=2, steps=4, instruction="RUN echo helloworld",
                    time=1001),
        StepDone(stage=1, step=2, layer_id="be46a72e536", duration_s=2, time=1003),
        StepStarted(stage=1, stages=1, step=3, steps=4, instruction="RUN echo helloworld2",
                    time=1004),
        StepDone(stage=1, step=3, layer_id="fecbf463a1f", duration_s=2, time=1006),
        StepStarted(stage=1, stages=1, step=4, steps=4, instruction="RUN echo helloworld3",
                    time=1007),
        Committed(image="corpus-simple-multi-step", time=1009),
        # Buildah prints the last step's id after COMMIT: the step still gets it.
        StepDone(stage=1, step=4, layer_id="2d30b986b7e", duration_s=3, time=1010),
        Tagged(image="localhost/corpus-simple-multi-step:latest", time=1011),
        # The image id line (time 1012) says nothing more: the id comes out of band.
    ]


def test_target_multi_stage_with_cache_hit() -> None:
    events = parse("target")
    steps = [(e.stage, e.stages, e.step, e.steps, e.instruction) for e in of(events, StepStarted)]
    assert steps == [
        (1, 3, 1, 3, "FROM ubuntu:latest"),
        (1, 3, 2, 3, "RUN touch /1"),
        (1, 3, 3, 3, "RUN touch hello"),
        (2, 3, 1, 3, "FROM alpine:latest AS mytarget"),
        (2, 3, 2, 3, "RUN touch /2"),
        (2, 3, 3, 3, "COPY --from=0 hello ."),
        (3, 3, 1, 3, "FROM busybox:latest AS mytarget2"),
        (3, 3, 2, 3, "RUN touch /3"),
        (3, 3, 3, 3, "COPY --from=1 hello ."),
    ]
    assert [(e.stage, e.step, e.layer_id) for e in of(events, CacheHit)] == [(1, 2, "37834ed355a")]
    assert [(e.stage, e.step, e.layer_id, e.cached) for e in of(events, StepDone)] == [
        (1, 1, "", False),
        (1, 2, "37834ed355a", True),
        (1, 3, "b80a9d978a8", False),
        (2, 1, "", False),
        (2, 2, "6a6249fb6dc", False),
        (2, 3, "f8bb79212f2", False),
        (3, 1, "", False),
        (3, 2, "3b3f5d781e7", False),
        (3, 3, "1acdf293d57", False),
    ]
    assert of(events, Committed) == [Committed(image="corpus-target", time=1015)]


def test_from_as_stage_boundary() -> None:
    events = parse("from-as")
    done = [(e.stage, e.step, e.layer_id) for e in of(events, StepDone)]
    assert done == [
        (1, 1, ""), (1, 2, "37834ed355a"), (1, 3, "5986c1f654c"), (1, 4, "efd15c5d044"),
        (2, 1, ""), (2, 2, "dea956f4fdb"),
    ]
    # The image id line closes nothing (the last step's `-->` did) and is no fact.
    assert lines_of("from-as")[-1].startswith("dea956f4fdb")
    assert facts(events) == []


def test_lone_from_stage_gets_its_layer_id() -> None:
    done = [(e.stage, e.step, e.layer_id) for e in of(parse("cache-scratch"), StepDone)]
    assert done == [(1, 1, "0c6acda5807"), (2, 1, ""), (2, 2, "fc4ef0b9825"),
                    (2, 3, "c36b11d8a26")]


def test_single_from_step_closed_by_commit_arrow() -> None:
    events = parse("pull")
    assert of(events, StepDone) == [
        StepDone(stage=1, step=1, layer_id="0c6acda5807", duration_s=2, time=1002)
    ]
    assert len(of(events, Tagged)) == 9


@pytest.mark.parametrize(
    ("name", "hits", "cached_steps"),
    [
        ("copy-create-relative-path", 2, [2, 3]),
        ("recurse", 2, [2, 3]),
        ("targetarch", 2, [2, 3]),
        ("with-arg", 1, [2]),
        ("layers-squash", 1, [2]),
        ("simple-multi-step", 0, []),
    ],
)
def test_cache_hits(name: str, hits: int, cached_steps: list[int]) -> None:
    parser = BuildahOutputParser()
    events: list[Event] = []
    for line in lines_of(name):
        events += parser.feed(line, 0.0)
    events += parser.finish(0, 0.0)
    assert parser.cache_hits == hits
    assert [e.step for e in of(events, StepDone) if e.cached] == cached_steps
    for hit in of(events, CacheHit):  # CacheHit and StepDone carry the same short id
        done = [d for d in of(events, StepDone) if d.step == hit.step]
        assert len(hit.layer_id) == 11 and done[0].layer_id == hit.layer_id


def test_cached_last_step_after_commit() -> None:
    events = typed(parse("copy-create-relative-path"))
    names = [e.name for e in events]
    assert names[-6:] == ["step_started", "cache_hit", "commit", "step_done", "tagged", "tagged"]
    assert events[-3] == StepDone(stage=1, step=3, layer_id="d1e29625b75", duration_s=3,
                                  cached=True, time=1007)


@pytest.mark.parametrize(
    ("name", "step", "exit_code", "message_start"),
    [
        ("exit42", 'RUN sh -c "exit 42"', 42, "while running runtime: exit status 42"),
        ("unrecognized", "BOGUS", None, 'Build error: Unknown instruction: "BOGUS"'),
        ("heredoc", "RUN <<EOF", None, "determining run uid: user: unknown user"),
        ("use-layers", "ADD http://0.0.0.0:${HTTP_SERVER_PORT}/README.md /tmp/", None,
         'reading "http://0.0.0.0:/README.md": Get'),
        ("run-privd", "RUN wget -c http://localhost:${HTTP_SERVER_PORT}/Dockerfile", 1,
         "while running runtime"),
        ("verify-cleanup", "RUN --mount=type=secret,id=secret-foo,dst=secret1.txt cat secret1.txt",
         1, "while running runtime: exit status 1"),
        ("dockerignore", "COPY subdir ./", None,
         'no items matching glob "/src/dockerignore/subdir"'),
        # Not "building at STEP": the step is the one that was open.
        ("copy-from",
         ("COPY --from=quay.io/libpod/testimage:20221018 /home/podman/testimage-id "
          "/home/busyboxpodman/copied-testimage-id"),
         None, "COPY --from=quay.io/libpod/testimage:20221018: no stage or image found"),
        ("base-with-arg", "FROM platform- AS final", None, "creating build container: invalid"),
        ("from-with-arg", "", None, "determining starting point for build: no FROM statement"),
    ],
)
def test_failures(name: str, step: str, exit_code: int | None, message_start: str) -> None:
    parser = BuildahOutputParser()
    for i, line in enumerate(lines_of(name)):
        parser.feed(line, float(i))
    assert parser.failed is not None
    assert parser.failed.step == step
    assert parser.failed.exit_code == exit_code
    assert parser.failed.message.startswith(message_start)
    assert parser.finish(125, 99.0) == []  # the Error: line already said it


def test_failed_step_has_no_step_done() -> None:
    events = typed(parse("exit42"))
    assert [e.name for e in events] == ["step_started", "step_done", "step_started", "failed"]


def test_multistage_failure_stage() -> None:
    events = parse("multiarch")
    assert [(e.stage, e.stages, e.step) for e in of(events, StepStarted)] == [(1, 2, 1), (1, 2, 2)]
    assert of(events, Failed)[0].step == "RUN cp /etc/apk/arch /root/arch-base"


def test_level_error_line_does_not_win_over_error_line() -> None:
    # unrecognized.log logs `level=error` before the real `Error: building at STEP`.
    failed = of(parse("unrecognized"), Failed)
    assert len(failed) == 1 and failed[0].step == "BOGUS"


def test_warnings_are_unescaped() -> None:
    warnings = of(parse("build-arg"), BuildWarning)
    assert [w.message for w in warnings] == [
        'missing "foo" build argument. Try adding "--build-arg foo=<VALUE>" to the command line'
    ]
    shell = of(parse("shell"), BuildWarning)[0].message
    assert shell.startswith("SHELL is not supported for OCI image format, [/bin/sh -c]")


def test_warnings_after_commit_do_not_steal_the_last_step() -> None:
    events = parse("onbuild")
    assert [e.layer_id for e in of(events, StepDone)] == ["", "67621d832f9", "f61748b7e16"]
    assert len(of(events, BuildWarning)) == 3


@pytest.mark.parametrize(
    ("name", "steps"),
    # use-layers' STEP 7 line is exactly 64 characters long, like an image id.
    [("preserve-volumes", 14), ("platform-sets-args", 10), ("heredoc", 4), ("use-layers", 7)],
)
def test_steps_total(name: str, steps: int) -> None:
    parser = BuildahOutputParser()
    for line in lines_of(name):
        parser.feed(line, 0.0)
    assert parser.steps_total == steps


def test_durations_use_arrival_times() -> None:
    parser = BuildahOutputParser()
    parser.feed("STEP 1/2: FROM alpine", 10.0)
    assert parser.feed("STEP 2/2: RUN make", 12.5)[1] == StepDone(
        stage=1, step=1, layer_id="", duration_s=2.5, time=12.5)
    parser.feed("compiling", 13.0)
    parser.feed("COMMIT", 20.0)
    events = parser.feed("--> 0123456789a", 21.0)
    assert events[1] == StepDone(stage=1, step=2, layer_id="0123456789a", duration_s=8.5,
                                 time=21.0)


# --- synthetic lines ----------------------------------------------------------------------------


def test_commit_without_name_and_finish_closes_open_step() -> None:
    events = typed(parse_lines(["STEP 1/1: FROM scratch", "COMMIT"], 0, start=5, step_s=1))
    assert events == [
        StepStarted(stage=1, stages=1, step=1, steps=1, instruction="FROM scratch", time=5),
        Committed(image="", time=6),
        StepDone(stage=1, step=1, layer_id="", duration_s=2, time=7),
    ]


def test_run_output_that_looks_like_buildah_is_not_misread() -> None:
    image = "a" * 64
    events = typed(parse_lines([
        "STEP 1/2: FROM alpine",
        "STEP 2/2: RUN ./build.sh",
        "--> installing packages",  # not a hex id
        image,  # a 64-hex line printed by the step
        "Successfully built nothing",
        "COMMIT x",
        "--> 0123456789a",
        "b" * 64,
    ]))
    assert [e.name for e in events] == ["step_started", "step_done", "step_started", "commit",
                                        "step_done"]
    assert events[-1].layer_id == "0123456789a"


def test_instruction_containing_quote_colon() -> None:
    instr = 'RUN echo "a": b'
    events = typed(parse_lines([
        f"STEP 1/1: {instr}",
        f'Error: building at STEP "{instr}": while running runtime: exit status 3',
    ], 1))
    assert events[-1] == Failed(message="while running runtime: exit status 3", step=instr,
                                exit_code=3, time=0.0)


def test_finish_without_error_line() -> None:
    parser = BuildahOutputParser()
    parser.feed("STEP 1/2: FROM alpine", 0.0)
    parser.feed("STEP 2/2: RUN sleep 1000", 1.0)
    events = parser.finish(137, 9.0)
    assert events == [Failed(message="exit status 137", step="RUN sleep 1000", exit_code=137,
                             time=9.0)]
    assert parser.finish(137, 10.0) == []


def test_finish_uses_last_error_log_line() -> None:
    events = parse_lines([
        'time="2026-01-01T00:00:00Z" level=error msg="first"',
        'time="2026-01-01T00:00:00Z" level=error msg="disk \\"full\\""',
    ], exit_code=125)
    assert of(events, Failed) == [Failed(message='disk "full"', exit_code=125, time=0.0)]


def test_level_error_alone_with_exit_zero_is_not_a_failure() -> None:
    events = parse_lines(['time="x" level=error msg="cleanup: busy"', "ERRO[0001] meh"], 0)
    assert of(events, Failed) == []


def test_tty_style_warning_and_error() -> None:
    events = parse_lines(["WARN[0000] the cache is cold", "ERRO[0003] it broke"], exit_code=2)
    assert typed(events) == [
        BuildWarning(message="the cache is cold", time=0.0),
        Failed(message="it broke", exit_code=2, time=0.0),
    ]


def test_pull_lines() -> None:
    events = typed(parse_lines([
        "STEP 1/1: FROM docker.io/library/alpine:3.19",
        "Trying to pull docker.io/library/alpine:3.19...",
        "Getting image source signatures",
        "Copying blob sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8",
        "Copying blob 9b0f5b8d6b3c skipped: already exists",
        "Copying blob 31e352740f53 done",
        "Copying blob 31e352740f53 done",  # repeated by a redraw: reported once
        "Copying config sha256:05455a08881ea9cf0e752bc48e61bbd71a34c029bb13df01e40e3e70e0d007bd",
        "Writing manifest to image destination",
        "Storing signatures",
    ]))
    assert events[1:] == [
        PullStarted(ref="docker.io/library/alpine:3.19", time=0.0),
        BlobCopied(digest="sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8",
                   phase="pull", time=0.0),
        BlobCopied(digest="9b0f5b8d6b3c", phase="pull", skipped=True, time=0.0),
        BlobCopied(digest="31e352740f53", phase="pull", time=0.0),
        ConfigCopied(digest="sha256:05455a08881ea9cf0e752bc48e61bbd71a34c029bb13df01e40e3e70e0d007bd",
                     phase="pull", time=0.0),
        ManifestWritten(phase="pull", time=0.0),
        StepDone(stage=1, step=1, layer_id="", duration_s=0.0, time=0.0),
    ]


def test_blob_lines_after_begin_push_are_a_push() -> None:
    parser = BuildahOutputParser()
    assert parser.phase == "pull"
    events: list[Event] = []
    for i, line in enumerate([
        "STEP 1/1: FROM docker.io/library/alpine:3.19",
        "Trying to pull docker.io/library/alpine:3.19...",
        "Copying blob sha256:aaaa",
    ]):
        events += parser.feed(line, float(i))
    events += parser.finish(0, 3.0)  # as the runner does before the publish phase
    parser.begin_push()
    assert parser.phase == "push"
    lines = [
        "Getting image source signatures",
        "Copying blob sha256:aaaa",  # pulled before: pushed now, so reported again
        "Copying blob sha256:bbbb skipped: already exists",
        "Copying blob sha256:bbbb skipped: already exists",  # a redraw: reported once
        "Copying config sha256:cccc",
        "Writing manifest to image destination",
        "Storing signatures",
    ]
    for i, line in enumerate(lines, 4):
        events += parser.feed(line, float(i))
    assert typed(events) == [
        StepStarted(stage=1, stages=1, step=1, steps=1,
                    instruction="FROM docker.io/library/alpine:3.19", time=0.0),
        PullStarted(ref="docker.io/library/alpine:3.19", time=1.0),
        BlobCopied(digest="sha256:aaaa", phase="pull", time=2.0),
        StepDone(stage=1, step=1, layer_id="", duration_s=3.0, time=3.0),
        BlobCopied(digest="sha256:aaaa", phase="push", time=5.0),
        BlobCopied(digest="sha256:bbbb", phase="push", skipped=True, time=6.0),
        ConfigCopied(digest="sha256:cccc", phase="push", time=8.0),
        ManifestWritten(phase="push", time=9.0),
    ]
    assert parser.finish(0, 11.0) == []
    assert parser.failed is None


def test_protocol_lines_are_just_log_lines() -> None:
    # `buildcage: ...` lines once steered the parser; now only the runner does.
    parser = BuildahOutputParser()
    for line in [
        "buildcage: push registry.example:5000/app:1",
        "buildcage: pushed registry.example:5000/app:1 sha256:dddd",
        'buildcage: manifest {"layers":[{"size":5}]}',
        "buildcage: something we do not know yet",
    ]:
        assert parser.feed(line, 1.0) == [LogLine(line=line, time=1.0)]
        assert parser.phase == "pull"
    assert parser.feed("Copying blob sha256:aaaa", 2.0)[1].phase == "pull"
    parser.begin_push()
    parser.feed("buildcage: pushed registry.example:5000/app:1 sha256:dddd", 3.0)
    assert parser.phase == "push"  # neither can a line end the push
    assert not hasattr(parser, "pushed") and not hasattr(parser, "image_info")
    assert not hasattr(parser, "image_id")


def test_push_failure() -> None:
    parser = BuildahOutputParser()
    parser.begin_push()
    events = parser.feed("Error: writing blob: no space left on device", 0.0)
    events += parser.finish(125, 1.0)
    assert typed(events) == [Failed(message="writing blob: no space left on device", time=0.0)]
    assert parser.failed == events[1]


def test_output_cannot_forge_facts() -> None:
    digest = "sha256:" + "e" * 64
    hostile = [
        "buildcage: push reg/x:1",
        "Copying blob sha256:ffff",  # still the build's phase: a line cannot start a push
        f"buildcage: pushed reg/x:1 {digest}",
        'buildcage: manifest {"layers":[{"size":1}]}',
        "f" * 64,  # an image id while the step runs: its output
        "COMMIT x",
        "a" * 64,  # after a COMMIT: closes the step, but is no image id
        "Successfully tagged evil",
        "b" * 64,  # no step open: nothing at all
    ]
    lines = ["STEP 1/2: FROM alpine", "STEP 2/2: RUN ./evil.sh", *hostile]
    parser = BuildahOutputParser()
    events: list[Event] = []
    for i, line in enumerate(lines):
        events += parser.feed(line, float(i))
    events += parser.finish(0, float(len(lines)))
    assert facts(events) == []
    assert parser.failed is None
    assert [e.line for e in of(events, LogLine)] == lines
    assert typed(events) == [
        StepStarted(stage=1, stages=1, step=1, steps=2, instruction="FROM alpine", time=0.0),
        StepDone(stage=1, step=1, layer_id="", duration_s=1.0, time=1.0),
        StepStarted(stage=1, stages=1, step=2, steps=2, instruction="RUN ./evil.sh", time=1.0),
        BlobCopied(digest="sha256:ffff", phase="pull", time=3.0),
        Committed(image="x", time=7.0),
        StepDone(stage=1, step=2, layer_id="", duration_s=7.0, time=8.0),
        Tagged(image="evil", time=9.0),
    ]
    assert parser.phase == "pull"
    assert parser.steps_total == 2 and parser.cache_hits == 0


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_begin_push_changes_nothing_but_the_phase(path: Path) -> None:
    # The same output in a push says no more, and no less, than in a build: still no fact.
    lines = path.read_text().splitlines()
    parser = BuildahOutputParser()
    parser.begin_push()
    events: list[Event] = []
    for i, line in enumerate(lines):
        events += parser.feed(line, float(i))
    events += parser.finish(exit_code_of(lines), float(len(lines)))
    assert events == parse_lines(lines, exit_code_of(lines), step_s=1.0)
    assert facts(events) == []


def test_many_plain_lines() -> None:
    lines = ["STEP 1/2: FROM alpine", "STEP 2/2: RUN seq 200000"]
    lines += [str(i) for i in range(1, 200_001)]
    parser = BuildahOutputParser()
    count = 0
    for line in lines:
        count += sum(isinstance(e, LogLine) for e in parser.feed(line, 0.0))
    assert count == len(lines)
    assert parser.steps_total == 2 and parser.failed is None


def test_image_id_closes_a_step_left_open_by_commit() -> None:
    image = "c" * 64
    events = typed(parse_lines(["STEP 1/1: RUN true", "COMMIT x", image], start=0, step_s=1))
    assert [e.name for e in events] == ["step_started", "commit", "step_done"]
    assert events[2] == StepDone(stage=1, step=1, layer_id="", duration_s=2, time=2)


def test_image_id_with_no_step_open_says_nothing() -> None:
    image = "c" * 64
    assert parse_lines([image]) == [LogLine(line=image, time=0.0)]
    events = parse_lines(["STEP 1/1: FROM scratch", "Successfully tagged x", image])
    assert [e.name for e in events if e.name != "log"] == ["step_started", "step_done", "tagged"]


def test_only_the_first_error_line_fails() -> None:
    events = parse_lines([
        "STEP 1/1: RUN false",
        'Error: building at STEP "RUN false": while running runtime: exit status 1',
        "Error: cleaning up: device busy",
    ], exit_code=1)
    assert of(events, Failed) == [Failed(message="while running runtime: exit status 1",
                                         step="RUN false", exit_code=1, time=0.0)]


def test_failed_step_stays_failed_whatever_finish_says() -> None:
    parser = BuildahOutputParser()
    events: list[Event] = []
    for line in lines_of("exit42"):
        events += parser.feed(line, 0.0)
    events += parser.finish(0, 1.0)
    assert [e.step for e in of(events, StepDone)] == [1]


def test_repeated_cache_line_counts_once() -> None:
    hexid = "d" * 64
    parser = BuildahOutputParser()
    events: list[Event] = []
    for line in ["STEP 1/2: FROM a", "STEP 2/2: ARG x", f"--> Using cache {hexid}",
                 f"--> Using cache {hexid}", "--> ddddddddddd"]:
        events += parser.feed(line, 0.0)
    assert parser.cache_hits == 1
    assert len(of(events, CacheHit)) == 1
    assert [e.cached for e in of(events, StepDone)] == [False, True]
