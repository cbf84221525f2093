"""Whether the registry layer cache of a fresh store pays for a build, judged from the last full
run of the same build in history (every step ran): the cache is used only where the steps it
would skip took longer than pulling their images costs.

Why a rule at all: a cache image costs about what a cheap step costs. Each cached step needs an
image of its own in the fresh store (Buildah 1.28 looks a step up by an image whose top layer
sits on the current one: ``intermediateImageExists``), and pulling one, even with every layer
already there, is a process, two registry requests and a store commit. Measured here (bench,
README "Registry layer cache"): about 0.15-0.3 s per image, plus about 0.7 s for the index and
the publish phase's listing, against 0.2-0.4 s for a RUN step that echoes a line. So on builds of
cheap steps (the bench's *tiny*: FROM, 2 RUN, COPY) the cache made warm rebuilds slower than no
cache at all, and every cold build paid its pushes and per-step commits; on a step that really
works (a compile, a package install) it saves seconds.

What a hit saves is the work of its RUN steps only. A cached COPY or ADD (from the context or
from another stage) is no saving: its image brings the same bytes back through the registry, a
download and an unpacking where the build would have read and written them. Measured here (bench,
*data*: a 30 MB COPY, 200 files tarred by one RUN, two stages): its warm rebuild took 5.4 s with
the cache against 2.9 s without, and each cold build paid about 3 s more to push the six images
(2.0 s of it the pushes themselves, with or without compression). Counting its copies as savings,
the rule said "pays" or not on the noise of one run (steps of 0.2-0.9 s).

The model. Both sides scale with the machine's load (a loaded machine runs steps and pulls
alike slower), so the cost is counted in the build's own typical step: the median duration of
its RUN, COPY and ADD steps in that full run (on these workloads an ``echo`` or a small copy),
at most MAX_UNIT_S (beyond that a typical step is work, not a slow machine: a build of three
long compiles would otherwise count its image pulls in minutes). Pulling one cached step's image
costs about PER_STEP of it, the index about FIXED of it. A warm build that used exactly the
cache starts no publish container since the cache step's listing is read here
(tui.engine.cache_left); measured then (isolated, 3 runs each, the machine at 0.3 s an echo
step): *tiny* warm 2.81-3.18 s with the cache against 2.66-2.91 s without (the fetch 0.78 s
longer, the build 0.56 s shorter: FIXED + 4 pulls about 2.6 typical steps), *steps* warm
4.7-5.6 s against 7.4-7.7 s. The cache pays when the full run's RUN steps took longer than
``typical * (FIXED + PER_STEP * n)`` for its n steps. With fewer than MIN_TYPICAL RUN, COPY and
ADD steps there is no typical one to count in: the absolute FIXED_S + PER_STEP_S a step are
used. A build with no full run in history yet uses the cache (its pushes make the next build's
measure possible). A profile with ``registry_cache_always = true`` skips the rule. Not
modelled: the size of what a RUN step writes (a RUN that downloads 30 MB costs its pull too).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tui.engine.history import BuildRecord

FIXED = 1.2
"""The index (pulled beside the bases) and what is left of the publish phase's listing, in
typical steps (3.0 when every warm build ran the listing in a publish container)."""
MAX_UNIT_S = 1.0
"""The longest typical step counted as the machine's speed: an echo step took 0.9 s here under
load 6-8."""
PER_STEP = 0.6
"""Pulling one cached step's image (its layers already there), in typical steps."""
MIN_TYPICAL = 3
"""Fewer RUN/COPY/ADD steps than this: no typical step; the absolute costs below are used."""
FIXED_S = 0.35
PER_STEP_S = 0.25
"""Seconds, on this machine when quiet: the index and listing; one image's pull."""


@dataclass(frozen=True)
class Verdict:
    pays: bool
    why: str
    """Said with the build when the cache is left off ("" when it is used)."""


def _kind(instruction: str) -> str:
    """The instruction's keyword, as Buildah prints it or as written (``run make``)."""
    words = instruction.split(maxsplit=1)
    return words[0].upper() if words else ""


def judge(full_run: BuildRecord | None) -> Verdict:
    """The verdict for a build whose last full run (no step from cache) is ``full_run``."""
    if full_run is None or not full_run.steps:
        return Verdict(True, "")
    n = len(full_run.steps)
    runs = [max(s.duration_s, 0.0) for s in full_run.steps if _kind(s.instruction) == "RUN"]
    work = [max(s.duration_s, 0.0) for s in full_run.steps
            if _kind(s.instruction) in ("RUN", "COPY", "ADD")]
    saved = sum(runs)
    if len(work) >= MIN_TYPICAL:
        cost = min(statistics.median(work), MAX_UNIT_S) * (FIXED + PER_STEP * n)
    else:
        cost = FIXED_S + PER_STEP_S * n
    if saved > cost:
        return Verdict(True, "")
    return Verdict(False, (
        f"registry cache off for this build: its {len(runs)} RUN steps took {saved:.1f} s in "
        f"the last full build, less than fetching the images of its {n} steps costs (about "
        f"{cost:.1f} s); a cached COPY or ADD saves nothing (its image brings the same bytes "
        "back); a profile with registry_cache_always = true uses it anyway"))
