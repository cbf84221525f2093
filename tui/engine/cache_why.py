"""Why a step ran instead of coming from the layer cache: the engine's ``CacheExplainer`` reads
a build's events as they pass (``Engine.recording``), compares every step that ran with the
earlier build it should have reused, and emits a ``CacheMiss`` with typed reasons.

Which earlier build: Buildah's cache is a chain per store, each step's layer keyed on its parent
layer and its own inputs (see tui.engine.cache_inputs for what those are). So a step is compared
with the step that followed the same parent layer in the newest build of this store that has it
(found by the layer id the step before reused), or, for the first step of a stage, with the last
build of the same context in the same store. Whatever it compares, it reports only what it
found: a miss nothing explains says "reason unknown" with what was checked. Reasons that are
certain come first and alone: ``--no-cache``, a fresh store, and an earlier step in the chain
that ran (the first such step is the cause; the rest follow from it).

A step is explained when it ends; the first step after a ``FROM`` of an image (and a ``COPY
--from`` an image) waits for the images' facts from the publish phase (``BaseImages``), or for
the end of a build that had none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui.engine.cache_inputs import BuildInputs, FileEntry, Listing, StepInput
from tui.engine.cache_reasons import (
    BuildArgChanged,
    EarlierBuildStopped,
    EarlierStepMissed,
    FileChange,
    FilesChanged,
    FreshStore,
    ImageChanged,
    InstructionChanged,
    MissReason,
    NoCache,
    NoEarlierBuild,
    OtherStore,
    Unknown,
    reason_from_dict,
)
from tui.engine.events import (
    BaseImages,
    CacheHit,
    CacheMiss,
    Done,
    Event,
    ImageFact,
    StepDone,
    StepStarted,
)
from tui.engine.history import BuildRecord, CacheMissRecord, CacheStep, History
from tui.engine.plan import BuildPlan
from tui.engine.profiles import Profile

MAX_LISTED = 20
"""Paths named per kind (added, removed, changed) in one reason; the rest are counted."""


def store_key(plan: BuildPlan, podman_url: str = "") -> str:
    """Which image store (so which layer cache) a build uses. A fresh store is new for every
    build; a project store is per profile and project, and per podman service when remote."""
    return profile_store_key(plan.profile, plan.project, podman_url if plan.remote else "",
                             plan.build_id)


def profile_store_key(profile: Profile, project: str, remote_url: str = "",
                      build_id: str = "") -> str:
    """``store_key`` from its parts (``buildcage why --profile P --project N``)."""
    if profile.store == "fresh":
        return f"fresh:{build_id}"
    if profile.store == "host":
        return "host"
    key = f"project:{profile.name}:{project}"
    return f"{key}@{remote_url}" if remote_url else key


def store_label(key: str) -> str:
    """``store_key`` for people."""
    if key.startswith("fresh:"):
        return "a fresh store"
    if key == "host":
        return "the host's store"
    if key.startswith("project:"):
        rest, _, where = key.partition("@")
        _, profile, project = (rest.split(":", 2) + ["", ""])[:3]
        on = f" on {where}" if where else ""
        return f"the store of project {project} (profile {profile}){on}"
    return key or "an unrecorded store"


def is_from(instruction: str) -> bool:
    """A FROM step: Buildah never takes it from the cache (it names the chain's start)."""
    return instruction.split(None, 1)[:1] == ["FROM"] or instruction[:5].upper() == "FROM "


@dataclass
class Ran:
    """A step of this build as its events told it."""

    stage: int
    step: int
    instruction: str
    outcome: str = "running"
    """running, from, cached, built, failed or canceled."""
    layer_id: str = ""


@dataclass
class Earlier:
    """An earlier build as the comparison needs it."""

    record: BuildRecord
    steps: dict[tuple[int, int], CacheStep] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.record.id or 0


class Lookup:
    """What the explainer asks history (one object, so tests can give their own)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._loaded: dict[int, Earlier] = {}

    def _earlier(self, record: BuildRecord | None) -> Earlier | None:
        if record is None or record.id is None:
            return None
        if record.id not in self._loaded:
            steps = {(c.stage, c.step): c for c in self.history.cache_steps(record.id)}
            self._loaded[record.id] = Earlier(record, steps)
        return self._loaded[record.id]

    def previous(self, context: str, store: str) -> Earlier | None:
        return self._earlier(self.history.last_build(context, store=store, explained=True))

    def elsewhere(self, context: str, store: str) -> BuildRecord | None:
        return self.history.last_build(context, other_store=store)

    def with_layer(self, store: str, layer_id: str) -> tuple[Earlier, int, int] | None:
        found = self.history.build_with_layer(store, layer_id)
        if found is None:
            return None
        earlier = self._earlier(self.history.get(found[0]))
        return None if earlier is None else (earlier, found[1], found[2])


class CacheExplainer:
    """Fed every event of one build; returns the ``CacheMiss`` events to pass on after each.
    ``record()`` gives what history keeps of the build for the next one's comparison."""

    def __init__(self, plan: BuildPlan, inputs: BuildInputs, lookup: Lookup, store: str) -> None:
        self.plan = plan
        self.inputs = inputs
        self.lookup = lookup
        self.store = store
        self.context = str(plan.context)
        self.ran: dict[tuple[int, int], Ran] = {}
        self.first_miss: dict[int, Ran] = {}
        """Per stage, the first step that ran."""
        self.bases: dict[str, ImageFact] | None = None
        self.misses: dict[tuple[int, int], CacheMiss] = {}
        self._deferred: list[Ran] = []
        self._previous: Earlier | None = None
        self._looked_up = False

    # -- the event stream ------------------------------------------------------------------------
    def feed(self, event: Event) -> list[Event]:
        if isinstance(event, StepStarted):
            self.ran[(event.stage, event.step)] = Ran(event.stage, event.step, event.instruction)
        elif isinstance(event, CacheHit):
            ran = self.ran.get((event.stage, event.step))
            if ran is not None:
                ran.outcome, ran.layer_id = "cached", event.layer_id
        elif isinstance(event, StepDone):
            return self._done(event)
        elif isinstance(event, BaseImages):
            self.bases = {image.ref: image for image in event.images}
            deferred, self._deferred = self._deferred, []
            return [self._explain(ran) for ran in deferred]
        return []

    def finish(self, done: Done) -> list[Event]:
        """Before the Done: steps that ran and never finished (the failing one), and those
        that waited for facts that never came."""
        out: list[CacheMiss] = []
        for ran in self.ran.values():
            if ran.outcome == "running":
                if is_from(ran.instruction):
                    ran.outcome = "from"
                    continue
                ran.outcome = "canceled" if done.status == "canceled" else "failed"
                self.first_miss.setdefault(ran.stage, ran)
                if self._needs_facts(ran) and self.bases is None:
                    self._deferred.append(ran)
                else:
                    out.append(self._explain(ran))
        deferred, self._deferred = self._deferred, []
        out += [self._explain(ran) for ran in deferred]
        ordered: list[Event] = [m for m in sorted(out, key=lambda m: (m.stage, m.step))]
        return ordered

    def _done(self, event: StepDone) -> list[Event]:
        ran = self.ran.get((event.stage, event.step))
        if ran is None:
            return []
        ran.layer_id = event.layer_id or ran.layer_id
        if event.cached:
            ran.outcome = "cached"
            return []
        if is_from(ran.instruction):
            ran.outcome = "from"
            return []
        ran.outcome = "built"
        self.first_miss.setdefault(ran.stage, ran)
        if self._needs_facts(ran) and self.bases is None:
            self._deferred.append(ran)
            return []
        return [self._explain(ran)]

    def _needs_facts(self, ran: Ran) -> bool:
        """Whether its reasons may include an image's change, known only from the facts."""
        if self.plan.no_cache or self.plan.profile.store == "fresh":
            return False
        current = self._input(ran)
        stage = self.inputs.stages[ran.stage - 1] if ran.stage <= len(self.inputs.stages) \
            else None
        if self._chain_cause(ran) is not None:
            return False  # explained by the earlier step alone
        if self._after_from(ran) and stage is not None and stage.base_ref:
            earlier = self._previous_build()
        elif current and current.copy_from and self.inputs.stage_index(current.copy_from) is None:
            earlier = self._reference(ran)[0]
        else:
            return False
        # Only when there are earlier facts to compare with: else it is explained at once.
        return earlier is not None and earlier.record.bases is not None

    def _after_from(self, ran: Ran) -> bool:
        before = self.ran.get((ran.stage, ran.step - 1))
        return before is not None and is_from(before.instruction)

    def _input(self, ran: Ran) -> StepInput | None:
        """The host's reading of this step, when it is the step Buildah ran."""
        step = self.inputs.step(ran.stage, ran.step)
        if step is None or (step.instruction != ran.instruction and step.command != "FROM"):
            return None
        return step

    # -- the reasons -----------------------------------------------------------------------------
    def _explain(self, ran: Ran) -> CacheMiss:
        reasons, compared = self.reasons(ran)
        miss = CacheMiss(stage=ran.stage, step=ran.step, instruction=ran.instruction,
                         reasons=tuple(reasons), compared_with=compared)
        self.misses[(ran.stage, ran.step)] = miss
        return miss

    def reasons(self, ran: Ran) -> tuple[list[MissReason], int | None]:
        if self.plan.no_cache:
            return [NoCache()], None
        if self.plan.profile.store == "fresh":
            return [FreshStore(profile=self.plan.profile.name)], None
        cause = self._chain_cause(ran)
        if cause is not None:
            return [cause], None
        earlier, key = self._reference(ran)
        if earlier is None:
            other = self.lookup.elsewhere(self.context, self.store)
            if other is not None and other.id is not None:
                return [OtherStore(build=other.id, store=store_label(self.store),
                                   previous_store=store_label(other.store),
                                   previous_profile=other.profile)], other.id
            return [NoEarlierBuild(store=store_label(self.store))], None
        return self._compare(ran, earlier, key), earlier.id

    def _chain_cause(self, ran: Ran) -> EarlierStepMissed | None:
        """The first step that ran before this one in its chain: its stage, then the stages
        it starts from (the one nearest the root wins: it is the first)."""
        found: EarlierStepMissed | None = None
        first = self.first_miss.get(ran.stage)
        if first is not None and first.step < ran.step:
            found = _missed(first, "")
        index = ran.stage
        seen = {index}
        while 1 <= index <= len(self.inputs.stages):
            parent = self.inputs.stages[index - 1].base_stage
            if parent is None or parent in seen:
                break
            seen.add(parent)
            if parent in self.first_miss:
                found = _missed(self.first_miss[parent], "base stage")
            index = parent
        return found

    def _previous_build(self) -> Earlier | None:
        if not self._looked_up:
            self._previous = self.lookup.previous(self.context, self.store)
            self._looked_up = True
        return self._previous

    def _reference(self, ran: Ran) -> tuple[Earlier | None, tuple[int, int]]:
        """The earlier build and step this step should have reused."""
        before = self.ran.get((ran.stage, ran.step - 1))
        if before is not None and not is_from(before.instruction) and before.layer_id:
            found = self.lookup.with_layer(self.store, before.layer_id)
            if found is not None:
                earlier, stage, step = found
                return earlier, (stage, step + 1)
        return self._previous_build(), (ran.stage, ran.step)

    def _compare(self, ran: Ran, earlier: Earlier, key: tuple[int, int]) -> list[MissReason]:
        reasons: list[MissReason] = []
        checked: list[str] = []
        current = self._input(ran)
        if current is None:
            checked.append("the Containerfile read on this host differs from the step Buildah "
                           "ran: its inputs were not compared")
        old = earlier.steps.get(key)
        if self._after_from(ran):
            self._compare_base(ran, earlier, key, reasons, checked)
        if old is None:
            if earlier.record.status == "succeeded" and _stage_seen(earlier, key[0]):
                reasons.append(InstructionChanged(old="", new=ran.instruction, build=earlier.id))
            else:
                reasons.append(EarlierBuildStopped(build=earlier.id))
            return reasons
        if old.instruction != ran.instruction:
            reasons.append(InstructionChanged(old=old.instruction, new=ran.instruction,
                                              build=earlier.id))
        else:
            checked.append(f"instruction: the same as in build #{earlier.id}")
        if current is not None:
            if current.command == "RUN":
                self._compare_args(current, old, earlier.id, reasons, checked)
            elif current.copies_context:
                self._compare_files(current, old, earlier.id, reasons, checked)
            elif current.copy_from:
                self._compare_copy_from(current, earlier, old, reasons, checked)
        if old.outcome in ("failed", "canceled"):
            reasons.append(EarlierBuildStopped(build=earlier.id, outcome=old.outcome))
        if not reasons:
            if old.layer_id:
                checked.append(f"build #{earlier.id} made layer {old.layer_id} for this step: "
                               "it may have been removed from the store since")
            reasons.append(Unknown(checked=tuple(checked), build=earlier.id))
        return reasons

    def _compare_base(self, ran: Ran, earlier: Earlier, key: tuple[int, int],
                      reasons: list[MissReason], checked: list[str]) -> None:
        if ran.stage > len(self.inputs.stages):
            checked.append("base image: not read on this host")
            return
        stage = self.inputs.stages[ran.stage - 1]
        if not stage.base_ref:
            return  # scratch, or another stage (its own steps are the chain)
        old_from = earlier.steps.get((key[0], key[1] - 1))
        old_ref = str(old_from.detail.get("base_ref", "")) if old_from else ""
        self._compare_image(stage.base_ref, old_ref, earlier, "base", reasons, checked)

    def _compare_image(self, ref: str, old_ref: str, earlier: Earlier, role: str,
                       reasons: list[MissReason], checked: list[str]) -> None:
        new = (self.bases or {}).get(ref)
        old_facts = earlier.record.bases
        old = (old_facts or {}).get(old_ref) if old_ref else None
        what = "base image" if role == "base" else f"image {ref}"
        if old_ref and old_ref != ref:
            reasons.append(ImageChanged(ref=ref, old_ref=old_ref,
                                        old_id=(old or {}).get("id", ""),
                                        new_id=new.id if new else "",
                                        old_digest=(old or {}).get("digest", ""),
                                        new_digest=new.digest if new else "", role=role,
                                        build=earlier.id))
        elif new is None or old is None:
            missing = "this build" if new is None else f"build #{earlier.id}"
            checked.append(f"{what}: its id was not recorded for {missing}")
        elif new.id != old.get("id", ""):
            reasons.append(ImageChanged(ref=ref, old_id=old.get("id", ""), new_id=new.id,
                                        old_digest=old.get("digest", ""),
                                        new_digest=new.digest, role=role, build=earlier.id))
        else:
            checked.append(f"{what}: the same id {new.id[:12]}")

    @staticmethod
    def _compare_args(current: StepInput, old: CacheStep, build: int,
                      reasons: list[MissReason], checked: list[str]) -> None:
        if "args" not in old.detail:
            checked.append(f"build arguments: not recorded for build #{build}")
            return
        before: dict[str, str] = old.detail["args"]
        secret = set(current.secret_args) | set(old.detail.get("secret_args", []))
        changed = False
        for name in sorted(set(before) | set(current.args)):
            if before.get(name) == current.args.get(name):
                continue
            changed = True
            if name in secret:
                reasons.append(BuildArgChanged(name=name, secret=True, build=build))
            else:
                reasons.append(BuildArgChanged(name=name, old=before.get(name),
                                               new=current.args.get(name), build=build))
        if not changed:
            checked.append(f"build arguments it sees: the same ({len(current.args)})")

    @staticmethod
    def _compare_files(current: StepInput, old: CacheStep, build: int,
                       reasons: list[MissReason], checked: list[str]) -> None:
        if current.files is None:
            checked.append(f"files it copies: not read ({current.files_note})")
            return
        if old.files is None:
            digest = str(old.detail.get("files_digest", ""))
            if not digest:
                checked.append(f"files it copies: not recorded for build #{build}")
            elif digest != current.files_digest():
                reasons.append(FilesChanged(build=build, listed=False))
            else:
                checked.append(f"{len(current.files)} files it copies: the same content, "
                               "mode and owner")
            return
        before = {path: FileEntry.from_list(values) for path, values in old.files.items()}
        found = diff_listings(before, current.files, build)
        if found is None:
            checked.append(f"{len(current.files)} files it copies: the same content, mode and "
                           "owner")
        else:
            reasons.append(found)

    def _compare_copy_from(self, current: StepInput, earlier: Earlier, old: CacheStep,
                           reasons: list[MissReason], checked: list[str]) -> None:
        stage = self.inputs.stage_index(current.copy_from)
        if stage is not None:
            if stage in self.first_miss:
                reasons.append(_missed(self.first_miss[stage], "copy --from"))
            else:
                checked.append(f"stage {current.copy_from}: every step came from cache")
            return
        old_ref = str(old.detail.get("copy_from", ""))
        self._compare_image(current.copy_from, old_ref, earlier, "copy --from", reasons,
                            checked)

    # -- what history keeps ----------------------------------------------------------------------
    def record(self) -> tuple[list[CacheStep], list[CacheMissRecord], dict[str, Any] | None]:
        steps = []
        # A file changed while the build ran may have been copied in another state than the
        # one read: no digest is kept for what a step copied (an unchanged build, which trusts
        # them, then runs; the next build's explanation says "not recorded").
        settled = self.inputs.settled()
        for (stage, step), ran in sorted(self.ran.items()):
            current = self._input(ran)
            detail: dict[str, Any] = {}
            files: dict[str, list[Any]] | None = None
            if current is not None:
                if current.command == "RUN":
                    detail["args"] = current.args
                    detail["secret_args"] = sorted(current.secret_args)
                if current.copy_from:
                    detail["copy_from"] = current.copy_from
                if current.copies_context and current.files is not None and not settled:
                    detail["files_note"] = "the context changed while the build ran"
                elif current.copies_context and current.files is not None:
                    detail["files_digest"] = current.files_digest()
                    files = {p: e.to_list() for p, e in current.files.items()}
                elif current.files_note:
                    detail["files_note"] = current.files_note
                if current.command == "FROM" and stage <= len(self.inputs.stages):
                    detail["base_ref"] = self.inputs.stages[stage - 1].base_ref
            steps.append(CacheStep(stage, step, ran.instruction, ran.layer_id, ran.outcome,
                                   detail, files))
        misses = [CacheMissRecord(m.stage, m.step, m.instruction, m.compared_with,
                                  [r.to_dict() for r in m.reasons])
                  for _key, m in sorted(self.misses.items())]
        bases = None if self.bases is None else {
            ref: {"id": image.id, "digest": image.digest} for ref, image in self.bases.items()}
        return steps, misses, bases


def earlier_files(lookup: Lookup, context: str, store: str) -> dict[str, FileEntry]:
    """The files the last build of this context in this store read, to reuse their digests."""
    previous = lookup.previous(context, store)
    listing: dict[str, FileEntry] = {}
    if previous is None:
        return listing
    for step in previous.steps.values():
        if not isinstance(step.files, dict):
            continue  # none kept (or a row no buildcage wrote)
        for path, values in step.files.items():
            try:
                listing[path] = FileEntry.from_list(values)
            except (TypeError, ValueError):
                continue
    return listing


def diff_listings(before: Listing, after: Listing, build: int) -> FilesChanged | None:
    """What Buildah's key sees differ between two listings, or None."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = []
    for path in sorted(set(before) & set(after)):
        what = before[path].differences(after[path])
        if what:
            changed.append(FileChange(path, what))
    if not (added or removed or changed):
        return None
    more = max(0, len(added) - MAX_LISTED) + max(0, len(removed) - MAX_LISTED) + \
        max(0, len(changed) - MAX_LISTED)
    return FilesChanged(added=tuple(added[:MAX_LISTED]), removed=tuple(removed[:MAX_LISTED]),
                        changed=tuple(changed[:MAX_LISTED]), more=more, build=build)


def _missed(ran: Ran, via: str) -> EarlierStepMissed:
    return EarlierStepMissed(stage=ran.stage, step=ran.step, instruction=ran.instruction,
                             via=via)


def _stage_seen(earlier: Earlier, stage: int) -> bool:
    return any(s == stage for s, _ in earlier.steps)



OUTCOMES = {"from": "", "cached": "cached", "built": "ran", "failed": "failed",
            "canceled": "canceled", "running": "ran"}
"""How ``buildcage why`` names what happened to a step."""


@dataclass(frozen=True)
class WhyStep:
    stage: int
    step: int
    instruction: str
    outcome: str
    """from, cached, built, failed or canceled (as recorded)."""
    layer_id: str = ""
    reasons: tuple[MissReason, ...] = ()
    compared_with: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "instruction": self.instruction,
                "outcome": self.outcome, "layer_id": self.layer_id,
                "compared_with": self.compared_with,
                "reasons": [reason.to_dict() for reason in self.reasons]}


@dataclass(frozen=True)
class WhyReport:
    """What ``buildcage why`` shows of one build of history."""

    build: BuildRecord
    steps: tuple[WhyStep, ...]
    recorded: bool
    """False for a build recorded before buildcage explained cache misses."""

    def to_dict(self) -> dict[str, Any]:
        b = self.build
        return {"build": b.id, "context": b.context, "profile": b.profile, "status": b.status,
                "started_at": b.started_at, "store": b.store, "store_label": store_label(b.store),
                "steps_total": b.steps_total, "cache_hits": b.cache_hits,
                "no_cache": b.no_cache, "unchanged": b.unchanged, "recorded": self.recorded,
                "steps": [step.to_dict() for step in self.steps]}


def why_report(history: History, record: BuildRecord) -> WhyReport:
    """The steps of a build of history with the reasons recorded for the ones that ran."""
    assert record.id is not None
    cache = history.cache_steps(record.id)
    misses = {(m.stage, m.step): m for m in history.cache_misses(record.id)}
    steps = []
    for c in cache:
        miss = misses.get((c.stage, c.step))
        reasons: tuple[MissReason, ...] = ()
        if miss is not None:
            reasons = tuple(_stored_reason(r) for r in miss.reasons)
        steps.append(WhyStep(c.stage, c.step, c.instruction, c.outcome, c.layer_id, reasons,
                             miss.compared_with if miss else None))
    if not cache:  # recorded before: only what the steps table has
        steps = [WhyStep(s.stage, s.step, s.instruction,
                         "cached" if s.cached else "from" if is_from(s.instruction) else "built")
                 for s in record.steps]
    return WhyReport(record, tuple(steps), bool(cache))


def _stored_reason(data: dict[str, Any]) -> MissReason:
    """A reason as history keeps it; one this buildcage cannot read (written by another
    version) is shown as such rather than failing the whole report."""
    try:
        return reason_from_dict(data)
    except (ValueError, TypeError):
        return Unknown(checked=(f"a reason this buildcage cannot read: {data.get('kind')!r}",))
