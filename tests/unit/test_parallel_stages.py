"""Parallel stages (issue 9): ``buildah bud --jobs N`` where the Containerfile has stages that do
not depend on each other, N read from the stage graph and capped by the CPU count."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.containerfile import parallel_stages, parse_containerfile
from tui.engine.planner import make_plan

ROOT = Path(__file__).resolve().parents[2]

CHAIN = """\
FROM base AS build
RUN make
FROM base
COPY --from=build /out /out
"""

FAN = """\
ARG BASE=busybox
FROM ${BASE} AS a
RUN a
FROM ${BASE} AS b
RUN b
FROM ${BASE} AS c
RUN --mount=type=bind,from=a,target=/a cp /a/x /x
FROM ${BASE}
COPY --from=1 /b /b
COPY --from=c /x /x
ADD --from=a /y /y
"""


@pytest.mark.parametrize(("text", "target", "width"), [
    ("FROM base\nRUN x\n", "", 1),
    (CHAIN, "", 1),
    # a and b first (c needs a), then c, then the final stage: at most two at once.
    (FAN, "", 2),
    # Only what the target needs counts: b alone.
    (FAN, "b", 1),
    # c needs a: a chain.
    (FAN, "c", 1),
    # A stage nobody needs is skipped by Buildah, so it adds no width.
    ("FROM x AS unused\nRUN u\nFROM y AS a\nRUN a\nFROM z\nCOPY --from=a / /\n", "", 1),
    # FROM an earlier stage is a dependency; a stage index as --from too.
    ("FROM x AS a\nFROM y AS b\nFROM a AS c\nCOPY --from=1 / /\n", "", 2),
    # --from naming an image (not a stage) adds nothing.
    ("FROM x AS a\nFROM y\nCOPY --from=docker.io/library/alpine /x /x\n", "", 1),
    ("", "", 1),
])
def test_width_of_the_stage_graph(text: str, target: str, width: int) -> None:
    assert parallel_stages(parse_containerfile(text), target) == width


def test_jobs_are_the_width_capped_by_the_cpu_count(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    wide = "".join(f"FROM busybox AS s{i}\nRUN s{i}\n" for i in range(6))
    wide += "FROM busybox\n" + "".join(f"COPY --from=s{i} /x /x{i}\n" for i in range(6))
    (ctx / "Containerfile").write_text(wide)

    def argv(cpus: int, **options) -> list[str]:
        monkeypatch.setattr("tui.engine.planner.os.cpu_count", lambda: cpus)
        return make_plan(ctx, config=Config(), profile="host-ro", **options).bud_argv()

    assert argv(2)[argv(2).index("--jobs") + 1] == "2"
    assert argv(16)[argv(16).index("--jobs") + 1] == "6"
    assert "--jobs" not in argv(1)
    # A remote podman service: its CPUs are not this machine's, so no guess.
    monkeypatch.setattr("tui.engine.planner.os.cpu_count", lambda: 8)
    remote = make_plan(ctx, config=Config(), profile="host-ro", remote=True).bud_argv()
    assert "--jobs" not in remote


def test_a_chain_gets_no_jobs_flag(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("tui.engine.planner.os.cpu_count", lambda: 8)
    plan = make_plan(ROOT / "examples" / "multistage", config=Config(), profile="host-ro")
    assert "--jobs" not in plan.bud_argv()


INTERLEAVED = """\
[1/3] STEP 1/3: FROM busybox AS a
[2/3] STEP 1/3: FROM busybox AS b
[2/3] STEP 2/3: RUN echo b1
[1/3] STEP 2/3: RUN echo a1
a1
b1
--> Using cache 1111111111111111111111111111111111111111111111111111111111111111
--> 1111111111a
[1/3] STEP 3/3: RUN echo a2
[2/3] STEP 3/3: RUN echo b2
--> 2222222222b
--> 3333333333c
[3/3] STEP 1/3: FROM busybox
[3/3] STEP 2/3: COPY --from=a /a1 /a1
[3/3] STEP 3/3: COPY --from=b /b1 /b1
[3/3] COMMIT x
--> 4444444444d
Successfully tagged localhost/x:latest
""".splitlines()


def test_interleaved_stages_still_give_every_step_once() -> None:
    """With --jobs Buildah prints two stages' lines interleaved, and its ``-->`` lines name no
    stage: each step is closed by the next STEP line of any stage, so its time and a cache mark
    may land on a neighbour (README says so); no step is lost or counted twice."""
    from tui.engine.buildah_output import BuildahOutputParser
    from tui.engine.events import StepDone, StepStarted

    parser = BuildahOutputParser()
    events = [e for i, line in enumerate(INTERLEAVED) for e in parser.feed(line, float(i))]
    events += parser.finish(0, 99.0)
    started = [(e.stage, e.step) for e in events if isinstance(e, StepStarted)]
    done = [(e.stage, e.step) for e in events if isinstance(e, StepDone)]
    assert sorted(started) == sorted(done) == [(s, n) for s in (1, 2, 3) for n in (1, 2, 3)]
    assert parser.steps_total == 9 and parser.cache_hits == 1
