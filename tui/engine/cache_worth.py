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

The model. Both sides scale with the machine's load (a loaded machine runs steps and pulls
alike slower), so the cost is counted in the build's own typical step: the median duration of
its RUN, COPY and ADD steps in that full run (on these workloads an ``echo`` or a small copy).
Pulling one cached step's image costs about PER_STEP of it, the index and the publish phase's
listing about FIXED of it (quiet machine: 0.19 s a pull and 0.7-1.0 s against 0.3 s a step).
The cache pays when the full run's steps took longer than ``typical * (FIXED + PER_STEP * n)``
for its n steps. With fewer than MIN_TYPICAL such steps there is no typical one to count in:
the absolute FIXED_S + PER_STEP_S a step are used. A build with no full run in history yet uses
the cache (its pushes make the next build's measure possible). A profile with
``registry_cache_always = true`` skips the rule. Not modelled: the size of the layers (a cache of
30 MB layers costs more to pull than one of small ones).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tui.engine.history import BuildRecord

FIXED = 3.0
"""The index and the publish phase's listing, in typical steps."""
PER_STEP = 0.6
"""Pulling one cached step's image (its layers already there), in typical steps."""
MIN_TYPICAL = 3
"""Fewer RUN/COPY/ADD steps than this: no typical step; the absolute costs below are used."""
FIXED_S = 0.7
PER_STEP_S = 0.25
"""Seconds, on this machine when quiet: the index and listing; one image's pull."""


@dataclass(frozen=True)
class Verdict:
    pays: bool
    why: str
    """Said with the build when the cache is left off ("" when it is used)."""


def judge(full_run: BuildRecord | None) -> Verdict:
    """The verdict for a build whose last full run (no step from cache) is ``full_run``."""
    if full_run is None or not full_run.steps:
        return Verdict(True, "")
    durations = [max(step.duration_s, 0.0) for step in full_run.steps]
    spent, n = sum(durations), len(durations)
    work = [max(step.duration_s, 0.0) for step in full_run.steps
            if step.instruction.split(maxsplit=1)[:1] in (["RUN"], ["COPY"], ["ADD"])
            or step.instruction[:4].upper() in ("RUN ", "COPY", "ADD ")]
    if len(work) >= MIN_TYPICAL:
        typical = statistics.median(work)
        cost = typical * (FIXED + PER_STEP * n)
    else:
        cost = FIXED_S + PER_STEP_S * n
    if spent > cost:
        return Verdict(True, "")
    return Verdict(False, (
        f"registry cache off for this build: its {n} steps took {spent:.1f} s in the last full "
        f"build, less than fetching their cache images costs (about {cost:.1f} s); a profile "
        "with registry_cache_always = true uses it anyway"))
