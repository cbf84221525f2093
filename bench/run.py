"""Benchmark every profile against native `podman build` and Docker+BuildKit, side by side.

Workloads (generated, see bench/workloads.py): tiny, data, steps and examples/multistage; each
cold (no cache), warm (nothing changed) and after a one-file edit. Each round runs every
contestant on a workload in a rotated order, so that the machine's noise falls on all alike;
ratios compare times of the same round (median over rounds). Then the event pipeline: parser
throughput, a million-line build through the CLI per profile and through the TUI, first paint.
Every figure is written to bench/results.md beside its target, *met* or *missed*.

    .venv/bin/python bench/run.py [--rounds 3] [--workloads tiny,data,steps,multistage]
                                  [--profiles host-ro,isolated,project,host-rw]
                                  [--no-buildkit] [--no-micro] [--out bench/results.md]

``--profiles`` may name profiles of the config too (BUILDCAGE_CONFIG), e.g. a built-in with
``overlay = "fuse"`` beside it; the targets are judged on the built-in profiles only. Run it
with a fresh XDG_DATA_HOME: a project store made with fuse-overlayfs keeps it (see
tui/engine/overlay.py), and each row says which overlay its builds used.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from buildkit import BuildKit, Unavailable
from micro import cli_million_rss, parser_lines_per_second, tui
from workloads import BASE, NAMES, edit, make

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.config import load_config
from tui.engine.events import Done, Event, Failed, PhaseDone
from tui.engine.session import Engine

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["host-ro", "isolated", "project", "host-rw"]
KINDS = ("cold", "warm", "edit")

Key = tuple[str, str, str]
"""(workload, contestant, cold|warm|edit)."""


def native(context: Path, cold: bool) -> float:
    """`podman build` on the host (its output read by the same parser, for parity)."""
    argv = ["podman", "build", "--layers", "--pull=missing", "-t", "localhost/bench/native:latest"]
    if cold:
        argv.append("--no-cache")
    start = time.perf_counter()
    out = subprocess.run([*argv, str(context)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"native build of {context.name} failed ({out.returncode}): "
                         f"{out.stderr[-500:]}")
    seconds = time.perf_counter() - start
    parser = BuildahOutputParser()
    for line in (out.stdout + out.stderr).splitlines():
        parser.feed(line, time.time())
    return seconds


TRUSTED: dict[Key, list[float]] = defaultdict(list)
"""Seconds of the trusted phases (fetch, publish) per buildcage build."""


def buildcage(engine: Engine, context: Path, profile: str, cold: bool, key: Key) -> float:
    done: list[Done] = []
    trusted: list[float] = []
    failures: list[str] = []

    def keep(event: Event) -> None:
        if isinstance(event, Done):
            done.append(event)
        elif isinstance(event, Failed):
            failures.append(event.message)
        elif isinstance(event, PhaseDone) and event.phase != "build":
            trusted.append(event.duration_s)

    plan = engine.plan(context, profile=profile, no_cache=cold, confirmed=True,
                       project=f"bench-{context.name}")
    start = time.perf_counter()
    engine.runner(plan, keep).run()
    seconds = time.perf_counter() - start
    if done[-1].status != "succeeded":
        raise SystemExit(f"{profile} build of {context.name} failed: "
                         f"{'; '.join(failures) or done[-1].status}")
    TRUSTED[key].append(sum(trusted))
    return seconds


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.engine = Engine(load_config())
        self.times: dict[Key, list[float]] = defaultdict(list)
        self.ratio_native: dict[Key, list[float]] = defaultdict(list)
        self.ratio_buildkit: dict[Key, list[float]] = defaultdict(list)
        self.buildkit: BuildKit | None = None
        self.notes: list[str] = []
        self.micro: dict[str, float] = {}
        self.profiles: list[str] = opts.profiles
        self.builtins = [p for p in PROFILES if p in self.profiles]
        """The profiles the targets are judged on."""
        self.overlay: dict[str, str] = {}
        """Which overlay each profile's builds use (``Engine.probed``: probed before the clock)."""

    def contestants(self) -> list[str]:
        return ["native", *(["buildkit"] if self.buildkit else []), *self.profiles]

    def run_one(self, workload: str, ctx: Path, name: str, kind: str, round_no: int) -> float:
        if kind == "edit":
            edit(ctx, round_no * 100 + hash(name) % 97)
        cold = kind == "cold"
        if name == "native":
            return native(ctx, cold)
        if name == "buildkit":
            assert self.buildkit is not None
            return self.buildkit.build(ctx, cold)
        return buildcage(self.engine, ctx, name, cold, (workload, name, kind))

    def builds(self, scratch: Path) -> None:
        first = make(self.opts.workloads[0], scratch)
        for name in self.profiles:
            plan = self.engine.plan(first, profile=name, confirmed=True,
                                    project=f"bench-{first.name}")
            self.overlay[name] = self.engine.probed(plan).overlay
        for workload in self.opts.workloads:
            ctx = make(workload, scratch)
            for round_no in range(self.opts.rounds):
                names = self.contestants()
                shift = round_no % len(names)
                this: dict[tuple[str, str], float] = {}
                for name in names[shift:] + names[:shift]:
                    for kind in KINDS:
                        seconds = self.run_one(workload, ctx, name, kind, round_no)
                        this[(name, kind)] = seconds
                        self.times[(workload, name, kind)].append(seconds)
                        print(f"{workload:10} round {round_no + 1} {name:9} {kind}: "
                              f"{seconds:6.2f}s", flush=True)
                for (name, kind), seconds in this.items():
                    self.ratio_native[(workload, name, kind)].append(
                        seconds / this[("native", kind)])
                    if ("buildkit", kind) in this:
                        self.ratio_buildkit[(workload, name, kind)].append(
                            seconds / this[("buildkit", kind)])

    def micros(self, scratch: Path) -> None:
        self.micro["parser"] = parser_lines_per_second()
        print(f"parser: {self.micro['parser']:,.0f} lines/s", flush=True)
        for profile in self.builtins:
            rss, seconds = cli_million_rss(profile, BASE, scratch)
            self.micro[f"cli_rss:{profile}"] = rss
            self.micro[f"cli_s:{profile}"] = seconds
            print(f"million lines, CLI, {profile}: {rss:.0f} MB peak, {seconds:.1f}s", flush=True)
        for key, value in tui("million").items():
            self.micro[f"tui_{key}"] = value
        self.micro["first_paint_s"] = tui("paint")["first_paint_s"]
        print(f"TUI: {self.micro}", flush=True)

    def run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="buildcage-bench-") as tmp:
            scratch = Path(tmp)
            if self.opts.buildkit:
                self.buildkit = BuildKit(BASE)
                try:
                    self.buildkit.start()
                except Unavailable as exc:
                    self.notes.append(f"Docker+BuildKit skipped: {exc}")
                    self.buildkit = None
            try:
                self.builds(scratch)
            finally:
                if self.buildkit:
                    self.buildkit.stop()
            if self.opts.micro:
                self.micros(scratch)
        self.opts.out.write_text(self.report())
        print(self.report())

    # -- the report ---------------------------------------------------------------------------
    def cell(self, key: Key) -> str:
        seconds = med(self.times[key])
        parts = [f"{seconds:.2f}"]
        if key[1] != "native":
            parts.append(f"{med(self.ratio_native[key]):.2f}x")
        if self.buildkit is not None or self.ratio_buildkit.get(key):
            if key[1] != "buildkit" and self.ratio_buildkit.get(key):
                parts.append(f"BK {med(self.ratio_buildkit[key]):.1f}x")
        return " / ".join(parts)

    @staticmethod
    def target(what: str, value: float, limit: float, unit: str = "x", digits: int = 2,
               lower_is_better: bool = True, why: str = "") -> str:
        met = value <= limit if lower_is_better else value >= limit
        sign = "≤" if lower_is_better else "≥"
        verdict = "**met**" if met else "**missed**"
        return (f"| {what} | {value:,.{digits}f}{unit} | {sign} {limit:,.{digits}f}{unit} "
                f"| {verdict} | {'' if met else why} |")

    def report(self) -> str:
        o = self.opts
        lines = [
            "# buildcage against native `podman build` and Docker+BuildKit",
            "",
            f"{o.rounds} rounds, {time.strftime('%Y-%m-%d')}, {platform.node()} "
            f"({platform.machine()}, {_cpus()} CPUs). Wall seconds per build, including "
            "container start and clean-up; each cell: median seconds / ratio to native "
            "`podman build` in the same round / ratio to Docker+BuildKit (`BK`), medians over "
            "rounds. cold = `--no-cache`; warm = unchanged rebuild; edit = one copied file "
            "changed. One-shot builds (no session builder).",
            "",
        ]
        lines += [f"> {note}" for note in self.notes] + ([""] if self.notes else [])
        lines += ["Overlay of each profile's builds: " + ", ".join(
            f"{p} {self.overlay.get(p, '?')}" for p in self.profiles)
            + " (`kernel`: the kernel's overlay; `fuse`: fuse-overlayfs).", ""]
        for workload in o.workloads:
            lines += [f"## {workload}", "", "| runner | cold | warm | edit |",
                      "| --- | --- | --- | --- |"]
            for name in self.contestants():
                lines.append(f"| {name} | " + " | ".join(
                    self.cell((workload, name, k)) for k in KINDS) + " |")
            lines.append("")
        lines += ["## What the trusted phases cost", "",
                  "Median seconds of fetch + publish per build (RUN steps run in a container "
                  "with no network; pulls and pushes in trusted ones; see the threat model):",
                  "", "| workload | " + " | ".join(f"{p} {k}" for p in self.profiles
                                                  for k in KINDS)
                  + " |", "| --- |" + " --- |" * (len(self.profiles) * len(KINDS))]
        for workload in o.workloads:
            lines.append(f"| {workload} | " + " | ".join(
                f"{med(TRUSTED[(workload, p, k)]):.2f}" for p in self.profiles for k in KINDS)
                + " |")
        lines += ["", "## Targets (issue 9), from this run", "",
                  "| target | measured | target | verdict | why, where missed |",
                  "| --- | --- | --- | --- | --- |"]
        if "isolated" in self.builtins:
            iso_cold = max(med(self.ratio_native[(w, "isolated", "cold")])
                           for w in o.workloads)
            lines.append(self.target(
                "isolated cold vs native cold (worst workload)", iso_cold, 1.0,
                why="three containers (fetch, build, publish) against podman's in-process "
                    f"build ({self.overlay.get('isolated', '?')} overlay)"))
        kept = [p for p in self.builtins if p != "isolated"]
        if kept:
            warm = max(med(self.ratio_native[(w, p, "warm")]) for w in o.workloads for p in kept)
            lines.append(self.target("warm rebuild vs native warm (worst cached profile, "
                                     "one-shot: no session builder yet)", warm, 1.0,
                                     why="container start per phase (~0.2-0.3 s each) on a "
                                         "sub-second build"))
            edit_r = max(med(self.ratio_native[(w, p, "edit")]) for w in o.workloads
                         for p in kept)
            lines.append(self.target("one-file edit vs native edit (worst cached profile, "
                                     "one-shot)", edit_r, 1.2, why="as warm, plus the commits"))
        if "isolated" in self.builtins:
            iso_warm = max(med(self.ratio_native[(w, "isolated", "warm")]) for w in o.workloads)
            lines.append(self.target("isolated warm vs native warm (no registry cache yet)",
                                     iso_warm, 2.0, why="a fresh store rebuilds every step"))
        if self.micro:
            m = self.micro
            lines.append(self.target("parser throughput", m["parser"], 200_000, " lines/s",
                                     digits=0, lower_is_better=False))
            worst = max(m[f"cli_rss:{p}"] for p in self.builtins)
            lines.append(self.target("million-line build, CLI `--json`, peak RSS (worst "
                                     "profile)", worst, 100, " MB", 0))
            lines.append(self.target("million-line build, TUI, worst gap between 20 ms ticks",
                                     m["tui_worst_stall_ms"], 100, " ms", 0))
            lines.append(self.target("million-line build, TUI, peak RSS", m["tui_rss_mb"], 150,
                                     " MB", 0))
            lines.append(self.target("TUI first paint (headless, from interpreter start)",
                                     m["first_paint_s"], 1.0, " s"))
            lines += ["", "Million-line CLI builds: " + ", ".join(
                f"{p} {m[f'cli_rss:{p}']:.0f} MB in {m[f'cli_s:{p}']:.0f} s"
                for p in self.builtins)
                + "."]
        lines += ["", "Every secure profile's ratio to BuildKit is the `BK` figure in the tables; "
                  "the long goal is parity.", "",
                  f"Command: `.venv/bin/python bench/run.py --rounds {o.rounds} --workloads "
                  f"{','.join(o.workloads)}{self.flags()}`", ""]
        return "\n".join(lines)


    def flags(self) -> str:
        o = self.opts
        return ((f" --profiles {','.join(self.profiles)}" if self.profiles != PROFILES else "")
                + ("" if o.buildkit else " --no-buildkit") + ("" if o.micro else " --no-micro"))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--workloads", default=",".join(NAMES),
                      type=lambda s: [w for w in s.split(",") if w])
    args.add_argument("--profiles", default=",".join(PROFILES),
                      type=lambda s: [p for p in s.split(",") if p])
    args.add_argument("--no-buildkit", dest="buildkit", action="store_false")
    args.add_argument("--no-micro", dest="micro", action="store_false")
    args.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    opts = args.parse_args()
    unknown = set(opts.workloads) - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; known: {', '.join(NAMES)}")
    engine = Engine(load_config())
    for name in opts.profiles:
        engine.profiles.get(name)  # an unknown name stops here, before any build
    Bench(opts).run()


if __name__ == "__main__":
    main()
