"""Benchmark every profile against native `podman build`, side by side, as ratios.

Each round runs every contestant once, cold (no cache) then warm (same store, nothing changed),
in a rotated order, so that the machine's noise falls on all of them alike. The native build's
output is parsed by the same Buildah parser as buildcage's, so both report the same events.

    .venv/bin/python bench/run.py [--rounds 3] [--context DIR] [--out bench/results.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.config import load_config
from tui.engine.events import Done, Event, PhaseDone
from tui.engine.session import Engine

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["host-ro", "isolated", "project", "host-rw"]


def native(context: Path, cold: bool) -> tuple[float, int]:
    """`podman build` on the host; returns (seconds, cache hits) read through our parser."""
    argv = ["podman", "build", "--layers", "--pull=missing", "-t", "localhost/bench/native:latest"]
    if cold:
        argv.append("--no-cache")
    start = time.perf_counter()
    out = subprocess.run([*argv, str(context)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    parser = BuildahOutputParser()
    for line in (out.stdout + out.stderr).splitlines():
        parser.feed(line, time.time())
    return seconds, parser.cache_hits


TRUSTED: dict[tuple[str, str], list[float]] = defaultdict(list)
"""(profile, cold|warm) -> seconds of the trusted phases (fetch, publish) per build."""


def buildcage(engine: Engine, context: Path, profile: str, cold: bool) -> tuple[float, int]:
    done: list[Done] = []
    trusted: list[float] = []

    def keep(event: Event) -> None:
        if isinstance(event, Done):
            done.append(event)
        elif isinstance(event, PhaseDone) and event.phase != "build":
            trusted.append(event.duration_s)

    plan = engine.plan(context, profile=profile, no_cache=cold, confirmed=True,
                       project="bench")
    start = time.perf_counter()
    engine.runner(plan, keep).run()
    seconds = time.perf_counter() - start
    if done[-1].status != "succeeded":
        raise SystemExit(f"{profile} build failed")
    TRUSTED[(profile, "cold" if cold else "warm")].append(sum(trusted))
    return seconds, done[-1].cache_hits


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--context", type=Path, default=ROOT / "examples" / "multistage")
    args.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    opts = args.parse_args()
    engine = Engine(load_config())
    contestants = ["native", *PROFILES]
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    hits: dict[tuple[str, str], int] = {}
    for round_no in range(opts.rounds):
        shift = round_no % len(contestants)
        order = contestants[shift:] + contestants[:shift]
        this_round: dict[tuple[str, str], float] = {}
        for name in order:
            for phase in ("cold", "warm"):
                cold = phase == "cold"
                if name == "native":
                    seconds, cached = native(opts.context, cold)
                else:
                    seconds, cached = buildcage(engine, opts.context, name, cold)
                this_round[(name, phase)] = seconds
                times[(name, phase)].append(seconds)
                hits[(name, phase)] = cached
                print(f"round {round_no + 1} {name:9} {phase}: {seconds:6.2f}s "
                      f"({cached} cache hits)", flush=True)
        for (name, phase), seconds in this_round.items():
            ratios[(name, phase)].append(seconds / this_round[("native", phase)])
    lines = [
        "# buildcage against native `podman build`",
        "",
        f"Context `{opts.context.relative_to(ROOT)}`, {opts.rounds} rounds, "
        f"{time.strftime('%Y-%m-%d')}, {platform.node()} ({platform.machine()}), "
        "wall seconds per build including container start and clean-up. Ratio: the profile's "
        "time over native's in the same round (median over rounds); below 1 is faster.",
        "",
        "| runner | cold median s | cold ratio | warm median s | warm ratio | warm cache hits |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in contestants:
        row = [name]
        for phase in ("cold", "warm"):
            row += [f"{statistics.median(times[(name, phase)]):.2f}",
                    f"{statistics.median(ratios[(name, phase)]):.2f}"]
        row.append(str(hits[(name, "warm")]))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## What the phases cost",
        "",
        "A build's RUN steps run in a container with no network; pulling bases (fetch, only "
        "when the store lacks one) and reading the image's facts and pushing (publish) run in "
        "trusted containers of their own (see the README's threat model). Median seconds of "
        "those trusted phases per build, included in the times above:",
        "",
        "| profile | cold: fetch + publish s | share of cold | warm: fetch + publish s "
        "| share of warm |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in PROFILES:
        row = [name]
        for phase in ("cold", "warm"):
            spent = statistics.median(TRUSTED[(name, phase)])
            row += [f"{spent:.2f}", f"{spent / statistics.median(times[(name, phase)]):.0%}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Command: `.venv/bin/python bench/run.py "
              f"--rounds {opts.rounds} --context {opts.context.relative_to(ROOT)}`", ""]
    opts.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
