"""Benchmark every profile against native `podman build` and Docker+BuildKit, side by side.

Workloads (generated, see bench/workloads.py): tiny, data, steps and examples/multistage; each
cold (no cache), warm (nothing changed, after the cold build), again (the same rebuild once more:
an unchanged build where buildcage keeps a store) and after a one-file edit. Each round runs every
contestant on a workload in a rotated order, so that the machine's noise falls on all alike;
ratios compare times of the same round (median over rounds). Then the event pipeline: parser
throughput, a million-line build through the CLI per profile and through the TUI, first paint.
Every figure is written to bench/results.md beside its target, *met* or *missed*.

The registry layer cache: ``isolated`` keeps its cache in the configured registry (the local
127.0.0.1:5000 here) where the last full run of a build says it pays; ``isolated-always`` uses it
always (``registry_cache_always``), ``isolated-nocache`` never (``registry_cache = false``), so
the rows show what the cache does and what the rule chose. ``--jobs`` adds cold builds with the
automatic ``--jobs`` against one job (a fan of two independent stages, and examples/multistage's
chain).
``--only`` picks contestants (a smoke run: ``--rounds 1 --workloads tiny --only
native,isolated-nocache,isolated --no-buildkit --no-micro``).

``--session`` adds ``host-ro+session`` and ``project+session``: the profile built in a session
builder (tui.engine.session_runner: its phase containers kept, stopped, between builds, each
build starting them afresh). Each workload's session is made by an untimed build before the
first round, so the timed builds are the ones a session serves.

``--profiles`` adds profiles of the config (BUILDCAGE_CONFIG) as contestants, e.g. a built-in
with ``overlay = "fuse"`` beside it; the targets are judged on the built-in profiles only. Run it
with a fresh XDG_DATA_HOME: a project store made with fuse-overlayfs keeps it (see
tui/engine/overlay.py). Each profile's overlay (the kernel's or fuse-overlayfs) is chosen before
the clock starts (``Engine.probed``) and said in the report.

    .venv/bin/python bench/run.py [--rounds 3] [--workloads tiny,data,steps,multistage,compile]
                                  [--only native,buildkit,host-ro,...] [--jobs]
                                  [--profiles isolated-fuse,host-ro-fuse] [--session]
                                  [--no-buildkit] [--no-micro] [--out bench/results.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from buildkit import BuildKit, Unavailable
from micro import cli_million_rss, parser_in_a_child, tui
from workloads import BASE, EXTRA, NAMES, edit, make

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.config import load_config
from tui.engine.events import (
    CacheExported,
    Done,
    Event,
    Failed,
    LogLine,
    PhaseDone,
    Unchanged,
)
from tui.engine.session import Engine
from tui.engine.text import visible

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["host-ro", "isolated", "project", "host-rw"]
SESSIONS = ["host-ro+session", "project+session"]
"""Contestants built in a session builder (``--session``): PROFILE+session."""
NOCACHE = "isolated-nocache"
"""isolated without its registry cache (a profile the bench adds to its config)."""
ALWAYS = "isolated-always"
"""isolated with its registry cache even where the last full run says it does not pay
(``registry_cache_always``; tui.engine.cache_worth), in a cache repository of its own."""
KINDS = ("cold", "warm", "again", "edit")
"""cold: ``--no-cache``; warm: the rebuild after it; again: that rebuild once more (after a
build that used the cache: buildcage's kept stores then start no container, an unchanged
build); edit: one copied file changed."""

Key = tuple[str, str, str]
"""(workload, contestant, cold|warm|again|edit)."""


NATIVE_PARENT = Path("/var/tmp")
"""Where each run makes the native builds' own podman store (the disk buildcage's stores are
on). Its own: other builds on this shared machine sweep the host store's Buildah working
containers (host-rw's clean-up), which failed native builds midway. New for every run: a
store kept from run to run had grown to 1,462 images (every cold build leaves its last
images behind), and native's warm *tiny* took 0.62-0.72 s in it against 0.32-0.35 s in a new
one (measured here): every ratio to native was flattered twofold. buildcage's own stores are
new for every run too (the bench's data directory)."""


def _native_podman(store: Path, *args: str) -> list[str]:
    return ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"), *args]


@contextmanager
def native_store() -> Iterator[Path]:
    """A new podman store for the native builds of one run, with the base pulled before any
    clock starts (as BuildKit gets it, and as the host store holds it for buildcage); removed
    at the end."""
    store = Path(tempfile.mkdtemp(prefix="buildcage-bench-native-", dir=NATIVE_PARENT))
    try:
        subprocess.run(_native_podman(store, "pull", "-q", "--tls-verify=false", BASE),
                       check=True, capture_output=True)
        yield store
    finally:
        subprocess.run(_native_podman(store, "rmi", "-a", "-f"), check=False,
                       capture_output=True)
        shutil.rmtree(store, ignore_errors=True)


def host_store_images() -> str:
    """How many images the host's store holds (host-ro reads their lists at every phase,
    host-rw builds there), for the report."""
    out = subprocess.run(["podman", "images", "-a", "--format", "{{.Repository}}"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return "unknown"
    names = out.stdout.split()
    return f"{len(names)} images, {names.count('<none>')} of them untagged"


FAILURES: list[str] = []
"""Builds that failed and were run once more, with why (said in the results)."""


def native(store: Path, context: Path, cold: bool) -> float:
    """`podman build` on the host (its output read by the same parser, for parity), in a store
    of its own (same driver and disk); a failure is said and run once more (shared podman)."""
    argv = _native_podman(store, "build", "--tls-verify=false", "--layers", "--pull=missing", "-t",
                          f"localhost/bench/native-{context.name}:latest")
    if cold:
        argv.append("--no-cache")
    for attempt in (1, 2):
        start = time.perf_counter()
        out = subprocess.run([*argv, str(context)], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if out.returncode == 0:
            parser = BuildahOutputParser()
            for line in (out.stdout + out.stderr).splitlines():
                parser.feed(line, time.time())
            return seconds
        FAILURES.append(f"native {context.name} (attempt {attempt}): {out.stderr.strip()[-300:]}")
        print(f"FAILED {FAILURES[-1]}", flush=True)
    raise SystemExit("native podman build failed twice")


TRUSTED: dict[Key, list[float]] = defaultdict(list)
"""Seconds of the trusted phases (fetch, publish) per buildcage build."""
PHASES: dict[Key, list[dict[str, float]]] = defaultdict(list)
"""Seconds of each phase per buildcage build."""
HITS: dict[Key, list[int]] = defaultdict(list)
UNCHANGED: dict[Key, list[bool]] = defaultdict(list)
"""Per build: whether it was an unchanged build, which started no container
(tui.engine.unchanged)."""
CACHE: dict[Key, str] = {}
"""The registry cache's update of the last build (``images N, K pushed`` or its error)."""


class BuildFailed(Exception):
    pass


def buildcage(engine: Engine, context: Path, profile: str, cold: bool, key: Key,
              cpus: int | None = None) -> float:
    """One build; a failure is said and run once more (other helpers share the podman)."""
    for attempt in (1, 2):
        try:
            return _buildcage(engine, context, profile, cold, key, cpus)
        except BuildFailed as exc:
            FAILURES.append(f"{profile} {key[0]} {key[2]} (attempt {attempt}): {exc}")
            print(f"FAILED {FAILURES[-1]}", flush=True)
    raise SystemExit(f"{profile} build of {context.name} failed twice")


def _buildcage(engine: Engine, context: Path, name: str, cold: bool, key: Key,
               cpus: int | None) -> float:
    profile, _, session = name.partition("+")
    done: list[Done] = []
    phases: dict[str, float] = {}
    cache: list[CacheExported] = []
    failed: list[str] = []
    tail: list[str] = []
    unchanged: list[Unchanged] = []

    def keep(event: Event) -> None:
        if isinstance(event, Done):
            done.append(event)
        elif isinstance(event, Unchanged):
            unchanged.append(event)
        elif isinstance(event, PhaseDone):
            phases[event.phase] = event.duration_s
        elif isinstance(event, CacheExported):
            cache.append(event)
        elif isinstance(event, Failed):
            failed.append(event.message)
        elif isinstance(event, LogLine):
            tail.append(event.line)
            del tail[:-5]

    suffix = "-always" if profile == ALWAYS else ""
    plan = engine.plan(context, profile=profile, no_cache=cold, confirmed=True,
                       project=f"bench-{context.name}{suffix}")
    plan = engine.cache_where_it_pays(plan)  # as Engine.prepare does for every build
    if cpus is not None:
        plan = dataclasses.replace(plan, cpus=cpus)
    start = time.perf_counter()
    engine.runner(plan, keep, session=bool(session)).run()
    seconds = time.perf_counter() - start
    if not done or done[-1].status != "succeeded":
        raise BuildFailed("; ".join(failed)[-400:] + " | last lines: " + " / ".join(tail))
    TRUSTED[key].append(sum(v for k, v in phases.items() if k != "build"))
    PHASES[key].append(phases)
    HITS[key].append(done[-1].cache_hits)
    UNCHANGED[key].append(bool(unchanged))
    if cache:
        c = cache[-1]
        CACHE[key] = c.error or f"{c.images} images, {c.pushed} pushed"
    return seconds


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def phase_medians(key: Key) -> list[float]:
    """Median seconds of the fetch, build and publish phases of ``key``'s builds."""
    return [med([p.get(phase, 0.0) for p in PHASES[key]])
            for phase in ("fetch", "build", "publish")]


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        config = load_config()
        config.profiles[NOCACHE] = {"base": "isolated", "registry_cache": False}
        config.profiles[ALWAYS] = {"base": "isolated", "registry_cache_always": True}
        self.engine = Engine(config)
        self.times: dict[Key, list[float]] = defaultdict(list)
        self.ratio_native: dict[Key, list[float]] = defaultdict(list)
        self.ratio_buildkit: dict[Key, list[float]] = defaultdict(list)
        self.buildkit: BuildKit | None = None
        self.notes: list[str] = []
        self.micro: dict[str, float] = {}
        self.host_store = "unknown"
        self.native = NATIVE_PARENT
        """This run's native store (``native_store``), once made."""
        self.jobs: list[str] = []
        self.overlay: dict[str, str] = {}
        """Which overlay each profile's builds use (``Engine.probed``: probed before the clock)."""

    def contestants(self) -> list[str]:
        every = ["native", *(["buildkit"] if self.buildkit else []), *PROFILES, NOCACHE, ALWAYS,
                 *(p for p in self.opts.profiles if p not in (*PROFILES, NOCACHE, ALWAYS)),
                 *(SESSIONS if self.opts.session else [])]
        return [c for c in every
                if not self.opts.only or c in self.opts.only or c in self.opts.profiles]

    def profiles(self) -> list[str]:
        """The buildcage contestants of this run."""
        return [c for c in self.contestants() if c not in ("native", "buildkit")]

    def run_one(self, workload: str, ctx: Path, name: str, kind: str, round_no: int) -> float:
        if kind == "edit":
            edit(ctx, round_no * 100 + hash(name) % 97)
        # Untimed, before every contestant's build alike: a person's pause between builds. A
        # build ends when its last container has exited (conmon's exit file); podman's own
        # clean-up of that container goes on for about 50 ms (measured), and a build started
        # at once pays the rest at its first request for that container.
        time.sleep(self.opts.gap)
        cold = kind == "cold"
        if name == "native":
            return native(self.native, ctx, cold)
        if name == "buildkit":
            assert self.buildkit is not None
            return self.buildkit.build(ctx, cold)
        return buildcage(self.engine, ctx, name, cold, (workload, name, kind))

    def run_jobs(self, scratch: Path) -> None:
        """Cold builds (``--no-cache``, no registry cache) with the automatic ``--jobs`` and
        with one job, in alternating order."""
        work = "RUN dd if=/dev/urandom bs=1M count=24 2>/dev/null | gzip -9 > /out.gz\n"
        fan = scratch / "fan"
        fan.mkdir()
        (fan / "Containerfile").write_text(
            f"FROM {BASE} AS a\n{work}FROM {BASE} AS b\n{work}"
            f"FROM {BASE}\nCOPY --from=a /out.gz /a.gz\nCOPY --from=b /out.gz /b.gz\n")
        fan.chmod(0o755)
        (fan / "Containerfile").chmod(0o644)
        contexts = {"fan (2 independent stages)": fan,
                    "examples/multistage (a chain)": ROOT / "examples" / "multistage"}
        for name, context in contexts.items():
            argv = self.engine.plan(context, profile=NOCACHE, confirmed=True).bud_argv()
            flag = argv[argv.index("--jobs") + 1] if "--jobs" in argv else "none"
            auto: list[float] = []
            one: list[float] = []
            for round_no in range(self.opts.rounds):
                pair: list[tuple[list[float], int | None]] = [(auto, None), (one, 1)]
                for into, cpus in (pair if round_no % 2 == 0 else pair[::-1]):
                    into.append(buildcage(self.engine, context, NOCACHE, True,
                                          ("jobs", NOCACHE, "cold"), cpus))
                    print(f"round {round_no + 1} jobs {name}: "
                          f"{'auto' if cpus is None else 'one'} {into[-1]:.2f}s", flush=True)
            self.jobs.append(f"| {name} | --jobs {flag} | {med(auto):.2f} | {med(one):.2f} | "
                             f"{med(auto) / med(one):.2f} |")

    def overlays(self, scratch: Path) -> None:
        """Each profile's overlay, chosen (and probed if need be) before any clock starts."""
        first = make(self.opts.workloads[0], scratch)
        for name in self.profiles():
            plan = self.engine.plan(first, profile=name.partition("+")[0], confirmed=True,
                                    project=f"bench-{first.name}")
            self.overlay[name] = self.engine.probed(plan).overlay

    def builds(self, scratch: Path) -> None:
        self.overlays(scratch)
        for workload in self.opts.workloads:
            ctx = make(workload, scratch)
            for name in self.contestants():
                if name in SESSIONS:  # the session made before any timed build
                    buildcage(self.engine, ctx, name, False, (workload, name, "setup"))
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
                    if ("native", kind) in this:
                        self.ratio_native[(workload, name, kind)].append(
                            seconds / this[("native", kind)])
                    if ("buildkit", kind) in this:
                        self.ratio_buildkit[(workload, name, kind)].append(
                            seconds / this[("buildkit", kind)])

    def micros(self, scratch: Path) -> None:
        self.micro["parser"] = parser_in_a_child()
        print(f"parser: {self.micro['parser']:,.0f} lines/s", flush=True)
        for profile in PROFILES:
            rss, seconds = cli_million_rss(profile, BASE, scratch)
            self.micro[f"cli_rss:{profile}"] = rss
            self.micro[f"cli_s:{profile}"] = seconds
            print(f"million lines, CLI, {profile}: {rss:.0f} MB peak, {seconds:.1f}s", flush=True)
        # Medians of a few child runs: on this VM one run's worst stall or first paint varied
        # by half from one minute to the next on a quiet machine (116-184 ms; 0.79-1.09 s).
        runs = [tui("million") for _ in range(3)]
        for key in runs[0]:
            values = [run[key] for run in runs]
            self.micro[f"tui_{key}"] = max(values) if key == "rss_mb" else med(values)
        self.micro["first_paint_s"] = med([tui("paint")["first_paint_s"] for _ in range(5)])
        print(f"TUI: {self.micro}", flush=True)

    def run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="buildcage-bench-") as tmp, ExitStack() as stack:
            scratch = Path(tmp)
            if self.opts.buildkit:
                self.buildkit = BuildKit(BASE)
                try:
                    self.buildkit.start()
                except Unavailable as exc:
                    self.notes.append(f"Docker+BuildKit skipped: {exc}")
                    self.buildkit = None
            scratch.chmod(0o755)  # the workloads are readable, as a project's usually are
            self.host_store = host_store_images()
            self.native = stack.enter_context(native_store())
            try:
                if self.opts.workloads:  # (--workloads "": the event pipeline's figures only)
                    self.builds(scratch)
                if self.opts.jobs:
                    self.run_jobs(scratch)
            finally:
                if self.buildkit:
                    self.buildkit.stop()
                self.engine.end_sessions()
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

    def why_worst(self, runners: str | list[str], kind: str) -> str:
        """Where the worst of ``runners``' ``kind`` builds spent its time, from this run's own
        figures: the workload, native's time, each phase's, the rest (the runner's own calls,
        containers made and removed), and the registry cache's part where it ran."""
        names = [runners] if isinstance(runners, str) else runners
        ratio, workload, name = max((med(self.ratio_native[(w, n, kind)]), w, n)
                                    for w in self.opts.workloads for n in names)
        key = (workload, name, kind)
        total = med(self.times[key])
        fetch, build, publish = phase_medians(key)
        rest = max(0.0, total - fetch - build - publish)
        native = med(self.times[(workload, "native", kind)])
        parts = [f"{name} {workload}: {total:.2f} s against native's {native:.2f} s",
                 f"fetch {fetch:.2f} s, build {build:.2f} s, publish {publish:.2f} s, the "
                 f"rest {rest:.2f} s"]
        if key in CACHE:
            parts.append(f"registry cache: {CACHE[key]}")
        if any(UNCHANGED[key]):
            parts.append(f"{sum(UNCHANGED[key])} of {len(UNCHANGED[key])} unchanged (no "
                         "container)")
        nocache = (workload, NOCACHE, kind)
        if name == "isolated" and self.times.get(nocache):
            parts.append(f"without the cache ({NOCACHE}) {med(self.ratio_native[nocache]):.2f}x")
        return "; ".join(parts)

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
            "rounds. cold = `--no-cache`; warm = unchanged rebuild (after the cold one: "
            "Buildah picks which of the matching layers to reuse, so buildcage runs it); "
            "again = the same rebuild once more (after a build that used the cache: where "
            "buildcage keeps a store, nothing runs, an unchanged build); edit = one copied "
            "file changed. One-shot builds, except the `+session` rows (a session builder). "
            f"Before each build, untimed and alike for all, a pause of {o.gap:g} s (a "
            "person's between builds: podman's clean-up of a build's last container goes on "
            "for about 50 ms after the build ended at its exit). "
            "Native builds in a podman store of their own, new for this run, the base image "
            "pulled into it before any clock; the host's store (read by host-ro, built in by "
            f"host-rw) held {self.host_store} at the start.",
            "",
        ]
        lines += [f"> {note}" for note in self.notes] + ([""] if self.notes else [])
        if self.overlay:
            lines += ["Overlay of each profile's builds: " + ", ".join(
                f"{p} {self.overlay[p]}" for p in self.profiles() if p in self.overlay)
                + " (`kernel`: the kernel's overlay; `fuse`: fuse-overlayfs).", ""]
        for workload in o.workloads:
            lines += [f"## {workload}", "", "| runner | " + " | ".join(KINDS) + " |",
                      "| --- |" + " --- |" * len(KINDS)]
            for name in self.contestants():
                lines.append(f"| {name} | " + " | ".join(
                    self.cell((workload, name, k)) for k in KINDS) + " |")
            lines.append("")
        lines += ["## What the trusted phases cost", "",
                  "Median seconds of fetch + publish per build (RUN steps run in a container "
                  "with no network; pulls and pushes in trusted ones; see the threat model):",
                  "", "| workload | " + " | ".join(f"{p} {k}" for p in self.profiles()
                                                      for k in KINDS)
                  + " |", "| --- |" + " --- |" * (len(self.profiles()) * len(KINDS))]
        for workload in o.workloads:
            lines.append(f"| {workload} | " + " | ".join(
                f"{med(TRUSTED[(workload, p, k)]):.2f}" for p in self.profiles() for k in KINDS)
                + " |")
        lines += self.cache_report()
        lines += self.phase_report()
        lines += ["", "## Targets (issue 9), from this run", "",
                  "| target | measured | target | verdict | why, where missed |",
                  "| --- | --- | --- | --- | --- |"]
        ran = set(self.profiles())
        # Build targets only when builds ran (``--workloads ""``: the event pipeline's only).
        natives = "native" in self.contestants() and bool(o.workloads)
        if natives and "isolated" in ran:
            iso_cold = max(med(self.ratio_native[(w, "isolated", "cold")]) for w in o.workloads)
            lines.append(self.target(
                "isolated cold vs native cold (worst workload)", iso_cold, 1.0,
                why=self.why_worst("isolated", "cold")))
        kept = [p for p in PROFILES if p != "isolated" and p in ran]
        sessions = [p for p in SESSIONS if p in ran]
        if natives and sessions:
            warm = max(med(self.ratio_native[(w, p, "warm")]) for w in o.workloads
                       for p in sessions)
            lines.append(self.target("warm rebuild in a session vs native warm (worst)", warm,
                                     1.0, why=self.why_worst(sessions, "warm")))
            again = max(med(self.ratio_native[(w, p, "again")]) for w in o.workloads
                        for p in sessions)
            lines.append(self.target("the same rebuild again in a session vs native (worst)",
                                     again, 1.0, why=self.why_worst(sessions, "again")))
            edit_r = max(med(self.ratio_native[(w, p, "edit")]) for w in o.workloads
                         for p in sessions)
            lines.append(self.target("one-file edit in a session vs native edit (worst)",
                                     edit_r, 1.2, why=self.why_worst(sessions, "edit")))
        if natives and kept:
            warm = max(med(self.ratio_native[(w, p, "warm")]) for w in o.workloads for p in kept)
            lines.append(self.target("warm rebuild vs native warm (worst cached profile, "
                                     "one-shot)", warm, 1.0, why=self.why_worst(kept, "warm")))
            again = max(med(self.ratio_native[(w, p, "again")]) for w in o.workloads
                        for p in kept)
            lines.append(self.target("the same rebuild again vs native (worst cached profile, "
                                     "one-shot)", again, 1.0, why=self.why_worst(kept, "again")))
            edit_r = max(med(self.ratio_native[(w, p, "edit")]) for w in o.workloads
                         for p in kept)
            lines.append(self.target("one-file edit vs native edit (worst cached profile, "
                                     "one-shot)", edit_r, 1.2, why=self.why_worst(kept, "edit")))
        if natives and "isolated" in ran:
            iso_warm = max(med(self.ratio_native[(w, "isolated", "warm")]) for w in o.workloads)
            lines.append(self.target("isolated warm vs native warm (registry cache)",
                                     iso_warm, 2.0, why=self.why_worst("isolated", "warm")))
        if self.micro:
            m = self.micro
            lines.append(self.target("parser throughput", m["parser"], 200_000, " lines/s",
                                     digits=0, lower_is_better=False))
            worst = max(m[f"cli_rss:{p}"] for p in PROFILES)
            lines.append(self.target("million-line build, CLI `--json`, peak RSS (worst "
                                     "profile)", worst, 100, " MB", 0))
            lines.append(self.target("million-line build, TUI, worst gap between 20 ms ticks "
                                     "(median of 3 runs)",
                                     m["tui_worst_stall_ms"], 100, " ms", 0))
            lines.append(self.target("million-line build, TUI, peak RSS", m["tui_rss_mb"], 150,
                                     " MB", 0))
            lines.append(self.target("TUI first paint (headless, from interpreter start, "
                                     "median of 5)",
                                     m["first_paint_s"], 1.0, " s"))
            lines += ["", "Million-line CLI builds: " + ", ".join(
                f"{p} {m[f'cli_rss:{p}']:.0f} MB in {m[f'cli_s:{p}']:.0f} s" for p in PROFILES)
                + "."]
        if FAILURES:
            lines += ["", "## Builds that failed and ran again", "",
                      *(f"- {visible(f)}" for f in FAILURES)]
        only = f" --only {','.join(o.only)}" if o.only else ""
        only += f" --profiles {','.join(o.profiles)}" if o.profiles else ""
        lines += ["", "Every secure profile's ratio to BuildKit is the `BK` figure in the tables; "
                  "the long goal is parity.", "",
                  f"Command: `.venv/bin/python bench/run.py --rounds {o.rounds} --workloads "
                  f"{','.join(o.workloads)}{only}{' --jobs' if o.jobs else ''}"
                  f"{'' if o.buildkit else ' --no-buildkit'}{'' if o.micro else ' --no-micro'}"
                  f"{' --session' if o.session else ''}"
                  f"{f' --gap {o.gap:g}' if o.gap != 0.25 else ''}`",
                  ""]
        return "\n".join(lines)

    def phase_report(self) -> list[str]:
        """Where a build's time goes, one-shot against in a session: each phase (from its
        container's start to its end, as PhaseDone says) and the rest (locks, sweeps,
        inputs, pins, container create and removal, facts)."""
        runners = [p for p in ("host-ro", "host-ro+session", "project", "project+session")
                   if p in self.profiles()]
        if not any(r in SESSIONS for r in runners):
            return []
        lines = ["", "## One-shot against a session builder: where the time goes", "",
                 "Median seconds per build: each phase as PhaseDone measures it (its "
                 "container's start to its exit), and the rest of the wall time; *unchanged*: "
                 "how many of the builds were unchanged builds, which start no container "
                 "(tui/engine/unchanged.py).", "",
                 "| workload | runner | kind | total | fetch | build | publish | rest "
                 "| unchanged |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for workload in self.opts.workloads:
            for runner in runners:
                for kind in KINDS:
                    key = (workload, runner, kind)
                    parts = phase_medians(key)
                    total = med(self.times[key])
                    skipped = UNCHANGED[key]
                    lines.append(f"| {workload} | {runner} | {kind} | {total:.2f} | "
                                 + " | ".join(f"{v:.2f}" for v in parts)
                                 + f" | {total - sum(parts):.2f} | "
                                 f"{sum(skipped)}/{len(skipped)} |")
        return lines

    def cache_report(self) -> list[str]:
        """isolated with and without its registry cache: hits, the cache's update, phases."""
        runners = [p for p in ("isolated", ALWAYS, NOCACHE) if p in self.profiles()]
        if not runners:
            return []
        lines = ["", "## The registry layer cache (isolated)", "",
                 "`isolated` pulls its project's cache in the fetch phase and pushes what the "
                 "build used in the publish phase, where the last full run of the build says "
                 f"it pays (tui/engine/cache_worth.py); `{ALWAYS}` uses it always; `{NOCACHE}` "
                 "is the same profile without it. Median seconds per phase; hits = cached steps "
                 "(median); an empty *cache after* = the cache was left off.", "",
                 "| workload | runner | kind | fetch | build | publish | hits | cache after |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for workload in self.opts.workloads:
            for runner in runners:
                for kind in KINDS:
                    key = (workload, runner, kind)
                    cells = [f"{v:.2f}" for v in phase_medians(key)]
                    hits = f"{med([float(h) for h in HITS[key]]):.0f}" if HITS[key] else ""
                    lines.append(f"| {workload} | {runner} | {kind} | " + " | ".join(cells)
                                 + f" | {hits} | {CACHE.get(key, '')} |")
        if self.jobs:
            lines += ["", f"## Parallel stages ({NOCACHE}, cold builds)", "",
                      "| context | chosen | automatic s | one job s | ratio |",
                      "| --- | --- | --- | --- | --- |", *self.jobs]
        return lines


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _pause(text: str) -> float:
    """``--gap``: seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= seconds <= 60:
        raise argparse.ArgumentTypeError(f"a pause of 0 to 60 seconds, not {text}")
    return seconds


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--workloads", default=",".join(NAMES),
                      type=lambda s: [w for w in s.split(",") if w])
    args.add_argument("--no-buildkit", dest="buildkit", action="store_false")
    args.add_argument("--no-micro", dest="micro", action="store_false")
    args.add_argument("--only", default="", type=lambda s: [c for c in s.split(",") if c],
                      help="contestants to run (native, buildkit, the profiles, "
                           f"{NOCACHE}); default all")
    args.add_argument("--profiles", default="", type=lambda s: [p for p in s.split(",") if p],
                      help="more contestants: profiles of the config (e.g. one with "
                           'overlay = "fuse"); the targets are judged on the built-ins')
    args.add_argument("--jobs", action="store_true",
                      help="also cold builds with the automatic --jobs against one job")
    args.add_argument("--session", action="store_true",
                      help="also host-ro and project built in a session builder "
                           "(PROFILE+session)")
    args.add_argument("--gap", type=_pause, default=0.25,
                      help="seconds of pause (untimed) before each timed build, every "
                           "contestant alike: a person's pause between builds (default 0.25)")
    args.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    opts = args.parse_args()
    unknown = set(opts.workloads) - set(NAMES) - set(EXTRA)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; known: "
                         f"{', '.join(NAMES + EXTRA)}")
    # buildcage as installed: pip compiles a wheel's modules; this machine (and CI) sets
    # PYTHONDONTWRITEBYTECODE=1, so a checkout edited since scripts/venv.sh compiled it would
    # compile every changed module again in each CLI build and TUI start measured here
    # (measured: the TUI's first paint 0.70-0.90 s with byte-code, 1.10 s in a bench without).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "tui")], check=True)
    engine = Engine(load_config())
    for name in opts.profiles:
        try:
            engine.profiles.get(name)  # an unknown name stops here, before any build
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    strangers = set(opts.only) - {"native", "buildkit", *PROFILES, NOCACHE, ALWAYS,
                                  *opts.profiles, *(SESSIONS if opts.session else [])}
    if strangers:
        raise SystemExit(f"unknown contestants {sorted(strangers)}")
    if opts.only and "buildkit" not in opts.only:
        opts.buildkit = False
    Bench(opts).run()


if __name__ == "__main__":
    main()
