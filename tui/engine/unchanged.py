"""An unchanged build starts no container: when nothing Buildah keys the build's steps on has
changed since the last build of this context in the same store, and that build's image is still
under the tag, that image is the result, as Buildah's run would have made it (every step a cache
hit, the tag on the same image id: measured here, three host-ro rebuilds of examples/hello gave
one id).

Why: a rebuild in a builder container costs the container's start (0.05 s here, traced),
Buildah's own run (0.155 s for a FROM + 2 RUN + COPY build), the wait's answer after the exit
(0.055 s) and the calls around them (0.05 s), against native ``podman build``'s whole 0.14-0.17 s
(bench/results.md). The check here reads history and a few store records: 0.02-0.05 s a build.

What is compared (``find``), each as ``tui.engine.cache_inputs`` reads it for the cache
explanations, so with the rules measured there:

* the plan (``plan_key``): profile, builder image, overlay, Buildah's arguments (tag,
  Containerfile, target, build argument names, secret ids, --layers), build argument values
  (secret-looking ones as history's HMAC), context and project: all as the earlier build's;
* every step of the Containerfile, in order, as the earlier build's steps (the text Buildah
  printed), none of them failed or canceled there;
* a RUN step's build arguments; a COPY/ADD's context files (content, mode, owner: one digest),
  only when every file could be read (a URL, a variable buildcage does not follow, an
  unreadable file: the build runs); a ``--from`` the same;
* every image a stage starts from or a ``COPY --from`` reads: the id the store resolves its
  name to now (the writable store first, then the host's for host-ro, as c/storage looks) is
  the id the earlier build recorded.

Then, under the store's lock and after ``store_heal`` (``verify``; ``host-rw`` has neither: the
host's store is nobody's to lock, and it sees no other store): the tag still names the earlier
build's image in the store, with a readable manifest, and every step's layer is still there.
The image's facts are read from the store as any build's read here are (``store_files``:
hostile files).

A reading that is good enough to explain a miss but not to skip a build is never trusted
(``StepInput.inexact``: a source naming a variable, one with a bracket or a backslash, an
ignore file that takes paths back in; a source that is a link, an ignore file beside the
Containerfile: not read at all), and a build whose context changed while it ran records no
file digest (``BuildInputs.settled``). An attacker's read of this found each of these (and
more, now part of what is compared: xattrs, special files' types, hard links).

Never for a fresh store (it keeps nothing), ``--no-cache``, a push, ``--load``, a remote podman
service, a Pod, a store with other additional stores, or a plan without ``--layers`` (Buildah
would not look in its cache): each of those has work a container must do.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.engine.cache_inputs import BuildInputs, StepInput, ignore_files_beside, sha256_of
from tui.engine.events import CacheHit, Event, ImageFact, StepDone, StepStarted
from tui.engine.history import CacheStep
from tui.engine.ignorefile import IGNORE_FILES
from tui.engine.image_facts import ImageFacts
from tui.engine.plan import BuildPlan
from tui.engine.secret_args import withhold

if TYPE_CHECKING:
    from tui.engine.cache_why import Earlier

OUTCOMES = frozenset({"from", "cached", "built"})
"""What an earlier step must have come to: a step that failed or was canceled left no layer."""


@dataclass(frozen=True)
class Candidate:
    """An earlier build this one would repeat exactly, from history; ``verify`` then checks the
    store still holds what it made."""

    build: int
    """Its id in history."""
    image_id: str
    steps: tuple[CacheStep, ...]
    """Its steps as history's cache record has them (in order): replayed as cache hits."""
    stages: int
    bases: Mapping[str, str]
    """Every external image the build reads (as the Containerfile names it) -> the id the
    earlier build read."""

    @property
    def steps_total(self) -> int:
        return len(self.steps)

    @property
    def cache_hits(self) -> int:
        return sum(1 for step in self.steps if step.outcome != "from")


def refusal(plan: BuildPlan) -> str:
    """Why this plan always runs its containers; "" when an unchanged build may skip them."""
    if plan.profile.store == "fresh":
        return "a fresh store keeps no image"
    if plan.no_cache:
        return "--no-cache"
    if plan.layers is False:
        return "no layer cache (--layers=false)"
    if plan.push:
        return "it pushes"
    if plan.load or plan.load_overwrite:
        return "--load"
    if plan.remote:
        return "a remote podman service"
    if plan.profile.extra_stores:
        return "additional image stores"
    return ""


def plan_key(plan: BuildPlan, key: bytes) -> str:
    """One digest of what in the plan, beside each step's own inputs, makes the build: kept in
    history with every build, compared by ``find``; "" when the builder image's id cannot be
    read (then nothing is taken as unchanged). Read when the build's inputs are read
    (``Engine.runner``), before it runs. Secret-looking build argument values go in as
    history's HMAC of them (``secret_args.withhold``), never in clear.

    The Containerfile's whole text is in it (a FROM's flags and stage, the ARGs before the
    first FROM, parser directives: nothing of it is left to the step comparison), and the
    context's ignore files as they are (what a ``!`` took back in is not listed otherwise)."""
    builder_id = _host_image_id(plan.builder_image)
    if not builder_id:
        return ""  # which Buildah builds cannot be said: no build is taken as unchanged
    what: dict[str, Any] = {
        "profile": asdict(plan.profile),
        "builder": plan.builder_image,
        "builder_id": builder_id,
        "overlay": plan.overlay,
        "bud": plan.bud_argv(),
        "args": withhold(dict(plan.build_args), key),
        "context": str(plan.context),
        "containerfile": str(plan.containerfile),
        "text": _file_digest(plan.containerfile),
        # (and the ones Buildah reads beside the Containerfile first: made while the build
        # waited for the store, one is not in what was read)
        "ignore": [_file_digest(path) for path in
                   [*(plan.context / name for name in IGNORE_FILES),
                    *ignore_files_beside(plan.containerfile)]],
        "project": plan.project,
        # A snapshot (a private copy for a user-namespaced builder) keeps no hard link, xattr
        # or special file, and gives every file root: what Buildah copies is another thing.
        "snapshot": plan.context_snapshot is not None,
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _host_image_id(ref: str) -> str:
    """The id the host's store gives ``ref`` (the builder image: another Buildah may key or
    build otherwise), "" when its records do not say."""
    from tui.engine.hostpaths import HOST_STORE
    from tui.engine.store_files import StoreFileError, find_image, read_images

    try:
        found = find_image(read_images(HOST_STORE), ref)
    except StoreFileError:
        return ""
    return str(found["id"]) if found is not None else ""


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, all of them (not followed), or why there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return f"none: {exc.errno}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a file"
        return sha256_of(fd)
    except OSError as exc:
        return f"unreadable: {exc.errno}"
    finally:
        os.close(fd)


def find(plan: BuildPlan, inputs: BuildInputs, earlier: Earlier | None,
         key: str) -> Candidate | None:
    """The earlier build (``tui.engine.cache_why.Earlier``: the last build of this context in
    this store, with its cache record) when this plan would repeat it step for step; None
    otherwise. ``key``: this plan's ``plan_key``. Reads nothing but its arguments."""
    if earlier is None or refusal(plan):
        return None
    record = earlier.record
    if record.id is None or record.status != "succeeded" or record.plan_key != key \
            or len(record.image_id) != 64 or not isinstance(record.bases, dict) or inputs.note:
        return None
    old = [earlier.steps[k] for k in sorted(earlier.steps)]
    now = [step for stage in inputs.stages for step in stage.steps]
    if not now or len(old) != len(now):
        return None
    for before, step in zip(old, now, strict=True):
        if (before.stage, before.step) != (step.stage, step.step) \
                or before.outcome not in OUTCOMES or not _same(before, step, inputs):
            return None
    bases: dict[str, str] = {}
    for ref in _images(inputs):
        fact = record.bases.get(ref)
        image_id = fact.get("id") if isinstance(fact, dict) else None
        if not isinstance(image_id, str) or len(image_id) != 64:
            return None  # not recorded: nothing to say it is the same
        bases[ref] = image_id
    return Candidate(build=record.id, image_id=record.image_id, steps=tuple(old),
                     stages=len(inputs.stages), bases=bases)


def _same(before: CacheStep, step: StepInput, inputs: BuildInputs) -> bool:
    """Whether Buildah keys ``step`` as it keyed ``before``."""
    detail = before.detail
    if step.command == "FROM":
        # Buildah prints a FROM with its arguments applied: the base is compared, not the text.
        stage = inputs.stages[step.stage - 1]
        return detail.get("base_ref", "") == stage.base_ref and \
            before.instruction.split(None, 1)[:1] == ["FROM"]
    if before.instruction != step.instruction:
        return False
    if step.command == "RUN":
        return "args" in detail and detail["args"] == step.args
    if step.command in ("COPY", "ADD"):
        if step.copy_from:
            return detail.get("copy_from") == step.copy_from
        return step.files is not None and not step.inexact and \
            detail.get("files_digest") == step.files_digest()
    return True  # ENV, WORKDIR, LABEL...: their text as written


def _images(inputs: BuildInputs) -> list[str]:
    """The external images the build reads: stage bases and ``COPY --from`` images."""
    refs = [stage.base_ref for stage in inputs.stages if stage.base_ref]
    refs += [step.copy_from for stage in inputs.stages for step in stage.steps
             if step.copy_from and inputs.stage_index(step.copy_from) is None]
    return list(dict.fromkeys(refs))


def verify(plan: BuildPlan, candidate: Candidate) -> ImageFacts | None:
    """The image's facts, read from the plan's store, when the store still holds what the
    candidate made and every base resolves to the id it read; None otherwise (the build runs).
    Run under the store's lock, after ``store_heal``: a record whose layers an additional store
    no longer holds is gone by then."""
    from tui.engine.hostpaths import HOST_STORE
    from tui.engine.store_files import (
        StoreFileError,
        find_image,
        manifest_digest,
        read_images,
        read_store_facts,
    )
    from tui.engine.stores import store_root

    root = store_root(plan)
    if root is None:
        return None
    try:
        records = read_images(str(root))
        host = read_images(HOST_STORE) if plan.profile.host_store_ro else []
    except StoreFileError:
        return None
    record = find_image(records, plan.tag)
    if record is None or record.get("id") != candidate.image_id:
        return None
    host_bases: dict[str, ImageFact] = {}
    for ref, image_id in candidate.bases.items():
        found = find_image(records, ref)  # c/storage: the writable store first
        if found is None and host:
            found = find_image(host, ref)
            if found is not None:
                host_bases[ref] = ImageFact(ref=ref, id=str(found["id"]),
                                            digest=manifest_digest(found))
        if found is None or found.get("id") != image_id:
            return None
    # Every step's layer is still there (an image per step, its id as Buildah printed it, in
    # either store for host-ro): else Buildah would run that step, and the "cache hit"
    # replayed for it would be false.
    ids = {str(r.get("id", "")) for r in [*records, *host]}
    for step in candidate.steps:
        if step.outcome != "from" and not (step.layer_id and any(
                i.startswith(step.layer_id) for i in ids)):
            return None
    facts = read_store_facts(plan, host_bases, str(root))
    return facts if facts.image_id == candidate.image_id else None


def replay(candidate: Candidate, now: float) -> list[Event]:
    """The earlier build's steps as the events of a build whose every step came from the cache
    (its layer ids, its instructions as Buildah printed them), all at ``now``."""
    per_stage: dict[int, int] = {}
    for step in candidate.steps:
        per_stage[step.stage] = per_stage.get(step.stage, 0) + 1
    events: list[Event] = []
    for step in candidate.steps:
        events.append(StepStarted(stage=step.stage, stages=candidate.stages, step=step.step,
                                  steps=per_stage[step.stage], instruction=step.instruction,
                                  time=now))
        if step.outcome == "from":
            events.append(StepDone(stage=step.stage, step=step.step, layer_id=step.layer_id,
                                   duration_s=0.0, time=now))
            continue
        events.append(CacheHit(stage=step.stage, step=step.step, layer_id=step.layer_id,
                               time=now))
        events.append(StepDone(stage=step.stage, step=step.step, layer_id=step.layer_id,
                               duration_s=0.0, cached=True, time=now))
    return events
