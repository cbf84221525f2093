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

The model (conservative, load scales both sides alike): the cache pays when the full run's steps
took more than ``FIXED_S + PER_STEP_S`` per step. A build with no full run in history yet uses the
cache (its pushes make the next build's measure possible). A profile with
``registry_cache_always = true`` skips the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.engine.history import BuildRecord

FIXED_S = 0.7
"""Seconds the cache costs whatever it holds: the index's pull, the publish phase's listing."""
PER_STEP_S = 0.25
"""Seconds one cached step costs: pulling its image (layers present) into the fresh store."""


@dataclass(frozen=True)
class Verdict:
    pays: bool
    why: str
    """Said with the build when the cache is left off ("" when it is used)."""


def judge(full_run: BuildRecord | None) -> Verdict:
    """The verdict for a build whose last full run (no step from cache) is ``full_run``."""
    if full_run is None or not full_run.steps:
        return Verdict(True, "")
    spent = sum(max(step.duration_s, 0.0) for step in full_run.steps)
    cost = FIXED_S + PER_STEP_S * len(full_run.steps)
    if spent > cost:
        return Verdict(True, "")
    return Verdict(False, (
        f"registry cache off for this build: its {len(full_run.steps)} steps took {spent:.1f} s "
        f"in the last full build, less than fetching their cache images costs (about "
        f"{cost:.1f} s); a profile with registry_cache_always = true uses it anyway"))
