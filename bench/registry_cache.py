"""Bench of `isolated` with and without the registry layer cache against native `podman build`,
and of parallel stages (``--jobs``): side by side, rotated order, median of N rounds, as ratios.

Workloads: bench/workloads.py's (*tiny*, *data*, *steps*, examples/multistage).
Per round and workload: cold (``--no-cache``), warm (nothing changed), edit (one copied file
changed, bench/workloads.py's ``edit``). Not in the issue: *compile* = FROM + one CPU-heavy RUN
(64 MB of random bytes gzipped, a stand-in for a compile or a package install) + COPY + RUN,
where a cache has something to save. ``isolated`` keeps its cache in the local registry
(127.0.0.1:5000); ``isolated-nocache`` is the same profile with ``registry_cache = false``.

    .venv/bin/python bench/registry_cache.py [--rounds 3] [--no-jobs]
        [--workloads tiny,data,steps,multistage,compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import BASE, edit, make

from tui.engine.config import load_config
from tui.engine.events import CacheExported, Done, Event, Failed, LogLine, PhaseDone
from tui.engine.session import Engine
from tui.engine.text import visible

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ["native", "isolated-nocache", "isolated"]
KINDS = ["cold", "warm", "edit"]


def make_workloads(root: Path, names: list[str]) -> dict[str, Path]:
    """The bench's own workloads (bench/workloads.py), and *compile*."""
    out = {}
    for name in names:
        if name != "compile":
            out[name] = make(name, root)
            continue
        ctx = root / "compile"
        ctx.mkdir()
        (ctx / "Containerfile").write_text(
            f"FROM {BASE}\nRUN dd if=/dev/urandom bs=1M count=64 2>/dev/null | gzip -6 > /a.gz\n"
            "COPY app.txt /app.txt\nRUN cat /app.txt > /copy\n")
        (ctx / "app.txt").write_text("version 0\n")
        out[name] = ctx
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    root.chmod(0o755)
    return out


NATIVE_STORE = Path("/var/tmp/buildcage-bench-native")
"""The native builds' own podman store: other builds on this shared machine sweep the host
store's Buildah working containers (host-rw's clean-up), which failed native builds midway."""


def native(context: Path, cold: bool) -> float:
    argv = ["podman", "--root", str(NATIVE_STORE / "root"), "--runroot",
            str(NATIVE_STORE / "run"), "build", "--tls-verify=false", "--layers",
            "--pull=missing", "-q",
            "-t", f"localhost/bench/native-{context.name}:latest"]
    if cold:
        argv.append("--no-cache")
    for attempt in (1, 2):
        start = time.perf_counter()
        out = subprocess.run([*argv, str(context)], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            return time.perf_counter() - start
        # The shared podman: another helper's clean-up can remove an image mid-build. Once more.
        print(f"native build failed ({attempt}): {out.stderr.strip()[-300:]}", flush=True)
    raise SystemExit("native podman build failed twice")


PHASES: dict[tuple[str, str, str], list[dict[str, float]]] = defaultdict(list)
"""(runner, workload, kind) -> per build: seconds of each phase."""
HITS: dict[tuple[str, str, str], int] = {}
CACHE: dict[tuple[str, str, str], str] = {}


FAILURES: list[str] = []
"""Builds that failed and were run again, with why (said in the results)."""


def buildcage(engine: Engine, context: Path, workload: str, profile: str, kind: str,
              cpus: int | None = None) -> float:
    for attempt in (1, 2):
        try:
            return _buildcage(engine, context, workload, profile, kind, cpus)
        except BuildFailed as exc:
            FAILURES.append(f"{profile} {workload} {kind} (attempt {attempt}): {exc}")
            print(f"FAILED {FAILURES[-1]}", flush=True)
    raise SystemExit(f"{profile} {workload} {kind} failed twice")


class BuildFailed(Exception):
    pass


def _buildcage(engine: Engine, context: Path, workload: str, profile: str, kind: str,
               cpus: int | None) -> float:
    done: list[Done] = []
    failed: list[str] = []
    phases: dict[str, float] = {}
    cache: list[CacheExported] = []
    tail: list[str] = []

    def keep(event: Event) -> None:
        if isinstance(event, Done):
            done.append(event)
        elif isinstance(event, PhaseDone):
            phases[event.phase] = event.duration_s
        elif isinstance(event, CacheExported):
            cache.append(event)
        elif isinstance(event, Failed):
            failed.append(event.message)
        elif isinstance(event, LogLine):
            tail.append(event.line)
            del tail[:-5]

    plan = engine.plan(context, profile=profile, no_cache=kind == "cold", confirmed=True,
                       project=f"bench-{workload}")
    if cpus is not None:
        plan = dataclasses.replace(plan, cpus=cpus)
    start = time.perf_counter()
    engine.runner(plan, keep).run()
    seconds = time.perf_counter() - start
    if done[-1].status != "succeeded":
        raise BuildFailed("; ".join(failed)[-400:] + " | last lines: " + " / ".join(tail))
    PHASES[(profile, workload, kind)].append(phases)
    HITS[(profile, workload, kind)] = done[-1].cache_hits
    if cache:
        c = cache[-1]
        CACHE[(profile, workload, kind)] = c.error or f"{c.images} images, {c.pushed} pushed"
    return seconds


def run_rows(engine: Engine, workloads: dict[str, Path], rounds: int):
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    ratios: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for round_no in range(rounds):
        for workload, context in workloads.items():
            shift = round_no % len(RUNNERS)
            order = RUNNERS[shift:] + RUNNERS[:shift]
            seen: dict[tuple[str, str], float] = {}
            for i, runner in enumerate(order):
                for kind in KINDS:
                    if kind == "edit":
                        edit(context, round_no * 10 + i)
                    if runner == "native":
                        seconds = native(context, kind == "cold")
                    else:
                        seconds = buildcage(engine, context, workload, runner, kind)
                    seen[(runner, kind)] = seconds
                    times[(runner, workload, kind)].append(seconds)
                    print(f"round {round_no + 1} {workload:10} {runner:16} {kind}: "
                          f"{seconds:6.2f}s", flush=True)
            for (runner, kind), seconds in seen.items():
                ratios[(runner, workload, kind)].append(seconds / seen[("native", kind)])
    return times, ratios


def run_jobs(engine: Engine, root: Path, rounds: int) -> list[str]:
    """Cold builds (``--no-cache``) with the automatic ``--jobs`` and with one job."""
    fan = root / "fan"
    fan.mkdir()
    work = "RUN dd if=/dev/urandom bs=1M count=24 2>/dev/null | gzip -9 > /out.gz\n"
    (fan / "Containerfile").write_text(
        f"FROM {BASE} AS a\n{work}FROM {BASE} AS b\n{work}"
        f"FROM {BASE}\nCOPY --from=a /out.gz /a.gz\nCOPY --from=b /out.gz /b.gz\n")
    fan.chmod(0o755)
    (fan / "Containerfile").chmod(0o644)
    contexts = {"fan (2 independent stages)": fan,
                "examples/multistage (a chain)": ROOT / "examples" / "multistage"}
    rows = []
    for name, context in contexts.items():
        auto, one = [], []
        jobs = engine.plan(context, profile="isolated-nocache", confirmed=True).bud_argv()
        flag = jobs[jobs.index("--jobs") + 1] if "--jobs" in jobs else "none"
        for round_no in range(rounds):
            pair = [("auto", None), ("one", 1)]
            for label, cpus in (pair if round_no % 2 == 0 else pair[::-1]):
                seconds = buildcage(engine, context, "jobs", "isolated-nocache", "cold", cpus)
                (auto if label == "auto" else one).append(seconds)
                print(f"round {round_no + 1} jobs {name}: {label} {seconds:.2f}s", flush=True)
        rows.append(f"| {name} | --jobs {flag} | {statistics.median(auto):.2f} | "
                    f"{statistics.median(one):.2f} | "
                    f"{statistics.median(auto) / statistics.median(one):.2f} |")
    return rows


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--workloads", default="tiny,data,steps,multistage,compile")
    args.add_argument("--no-jobs", action="store_true", help="skip the --jobs rows")
    args.add_argument("--out", type=Path, default=ROOT / "bench" / "registry-cache.md")
    opts = args.parse_args()
    config = load_config()
    config.profiles["isolated-nocache"] = {"base": "isolated", "registry_cache": False}
    engine = Engine(config)
    with tempfile.TemporaryDirectory(prefix="buildcage-bench-") as tmp:
        chosen = make_workloads(Path(tmp), opts.workloads.split(","))
        times, ratios = run_rows(engine, chosen, opts.rounds)
        jobs = [] if opts.no_jobs else run_jobs(engine, Path(tmp), opts.rounds)
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "# isolated with the registry layer cache, against native `podman build`",
        "",
        f"{opts.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()} "
        f"({platform.machine()}, 2 cores), load average at the end {' '.join(load)}: other "
        "helpers' builds and tests ran on the same machine and podman service meanwhile, so "
        "compare ratios from the same round, not seconds between runs. Native builds use a "
        f"podman store of their own ({NATIVE_STORE}: the host store's working containers were "
        "swept by other builds' clean-up mid-build), same driver and disk. Wall seconds per build "
        "(buildcage: container starts and clean-up included), median over rounds; ratio = "
        "the runner's time over native's in the same round (median of the ratios).",
        "",
        "| workload | runner | cold s | warm s | edit s | cold × | warm × | edit × "
        "| warm hits | cache after warm |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workload in chosen:
        for runner in RUNNERS:
            row = [workload, runner]
            row += [f"{statistics.median(times[(runner, workload, k)]):.2f}" for k in KINDS]
            row += [f"{statistics.median(ratios[(runner, workload, k)]):.2f}" for k in KINDS]
            row.append(str(HITS.get((runner, workload, "warm"), "")))
            row.append(CACHE.get((runner, workload, "warm"), ""))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Where isolated's time goes (median seconds per phase)", "",
              "| workload | runner | kind | fetch | build | publish |",
              "| --- | --- | --- | --- | --- | --- |"]
    for workload in chosen:
        for runner in RUNNERS[1:]:
            for kind in KINDS:
                spent = PHASES[(runner, workload, kind)]
                cells = [f"{statistics.median(p.get(ph, 0.0) for p in spent):.2f}"
                         for ph in ("fetch", "build", "publish")]
                lines.append(f"| {workload} | {runner} | {kind} | " + " | ".join(cells) + " |")
    if jobs:
        lines += ["", "## Parallel stages (isolated without cache, cold builds)", "",
                  "| context | chosen | automatic s | one job s | ratio |",
                  "| --- | --- | --- | --- | --- |", *jobs]
    if FAILURES:
        lines += ["", "## Builds that failed and ran again", "",
                  *(f"- {visible(f)}" for f in FAILURES)]
    lines += ["", f"Command: `.venv/bin/python bench/registry_cache.py --rounds {opts.rounds} "
              f"--workloads {opts.workloads}`", ""]
    opts.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
