"""What is known about a running build, folded from its events (no Textual here).

The screen feeds each batch of events to ``BuildState.apply`` and then redraws only what changed,
so the table, header and panels all read one model and a test can check the model directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tui.engine.cache_reasons import MissReason
from tui.engine.events import (
    BlobCopied,
    BuildStarted,
    BuildWarning,
    CacheHit,
    CacheMiss,
    ConfigCopied,
    Done,
    Event,
    Failed,
    ImageBuilt,
    ImageInfo,
    ImageLoaded,
    LoadRefused,
    ManifestWritten,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
    Unchanged,
)

StepStatus = Literal["queued", "running", "cached", "done", "failed", "canceled", "skipped"]
FINISHED: tuple[StepStatus, ...] = ("cached", "done")


@dataclass
class StepRow:
    """One row of the step table; a queued row's instruction is unknown until it starts."""

    stage: int
    stages: int
    step: int
    steps: int
    instruction: str = ""
    status: StepStatus = "queued"
    duration_s: float | None = None
    layer_id: str = ""
    miss: tuple[MissReason, ...] = ()
    """Why it ran instead of coming from cache (the engine's CacheMiss), once known."""
    compared_with: int | None = None
    """The build of history the reasons compare with."""

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.step}"

    @property
    def why_short(self) -> str:
        """The first reason in a few words, and how many more there are."""
        if not self.miss:
            return ""
        more = f" +{len(self.miss) - 1}" if len(self.miss) > 1 else ""
        return self.miss[0].short() + more

    @property
    def why_full(self) -> str:
        """Every reason, in full."""
        return "; ".join(reason.full() for reason in self.miss)


@dataclass
class Transfer:
    """One pull or push as Buildah prints it: blobs seen, then the manifest written."""

    phase: Literal["pull", "push"]
    ref: str
    blobs: list[tuple[str, bool]] = field(default_factory=list)
    """(digest, skipped) in the order Buildah named them."""
    config: str = ""
    finished: bool = False
    digest: str = ""


@dataclass
class BuildState:
    rows: dict[str, StepRow] = field(default_factory=dict)
    stages: int = 1
    stage_steps: dict[int, int] = field(default_factory=dict)
    cache_hits: int = 0
    transfers: list[Transfer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    started: BuildStarted | None = None
    image_id: str = ""
    image_info: ImageInfo | None = None
    pushed: list[Pushed] = field(default_factory=list)
    failed: Failed | None = None
    loaded: ImageLoaded | None = None
    """Where the image went on the host (--load, or the result panel's key afterwards)."""
    load_refused: LoadRefused | None = None
    done: Done | None = None
    unchanged: Unchanged | None = None
    """Set when nothing changed since an earlier build: no container ran (its image is this
    build's)."""
    running: str | None = None
    """Key of the step in progress."""

    @property
    def steps_known(self) -> int:
        """Steps of the stages seen so far; later stages say their count when they start."""
        return sum(self.stage_steps.values())

    @property
    def all_stages_seen(self) -> bool:
        return len(self.stage_steps) >= self.stages

    @property
    def steps_finished(self) -> int:
        return sum(row.status in FINISHED for row in self.rows.values())

    def apply(self, event: Event) -> set[str]:
        """Fold one event in; return the keys of the step rows it changed. Events after
        Done are ignored: the final state must not move."""
        if self.done is not None:
            return set()
        if isinstance(event, StepStarted):
            return self._start(event)
        if isinstance(event, CacheHit | StepDone):
            return self._finish_step(event)
        if isinstance(event, Failed | Done):
            return self._end(event)
        if isinstance(event, CacheMiss):
            return self._miss(event)
        self._other(event)
        return set()

    def _miss(self, event: CacheMiss) -> set[str]:
        row = self.rows.get(f"{event.stage}:{event.step}")
        if row is None:
            return set()
        row.miss, row.compared_with = event.reasons, event.compared_with
        return {row.key}

    def _start(self, event: StepStarted) -> set[str]:
        self.stages = event.stages
        self.stage_steps[event.stage] = event.steps
        changed = set()
        row = self.rows.get(f"{event.stage}:{event.step}")
        if row is None:
            row = StepRow(event.stage, event.stages, event.step, event.steps)
            self.rows[row.key] = row
        row.instruction, row.status = event.instruction, "running"
        self.running = row.key
        changed.add(row.key)
        # The rest of this stage is known to come: show it queued.
        for step in range(event.step + 1, event.steps + 1):
            queued = StepRow(event.stage, event.stages, step, event.steps)
            if queued.key not in self.rows:
                self.rows[queued.key] = queued
                changed.add(queued.key)
        return changed

    def _finish_step(self, event: CacheHit | StepDone) -> set[str]:
        row = self.rows.get(f"{event.stage}:{event.step}")
        if row is None:
            return set()
        if isinstance(event, CacheHit):
            self.cache_hits += 1
            row.status, row.layer_id = "cached", event.layer_id
        else:
            row.status = "cached" if event.cached else "done"
            row.duration_s = event.duration_s
            row.layer_id = event.layer_id or row.layer_id
            if self.running == row.key:
                self.running = None
        return {row.key}

    def _end(self, event: Failed | Done) -> set[str]:
        changed: set[str] = set()
        if isinstance(event, Failed):
            self.failed = self.failed or event
            if self.running is not None:
                self.rows[self.running].status = "failed"
                changed.add(self.running)
                self.running = None
            return changed
        self.done = event
        self.image_id = event.image_id or self.image_id
        for row in self.rows.values():
            if row.status == "running":
                row.status = "failed" if event.status == "failed" else "canceled"
            elif row.status == "queued":
                row.status = "canceled" if event.status == "canceled" else "skipped"
            else:
                continue
            changed.add(row.key)
        self.running = None
        return changed

    def _other(self, event: Event) -> None:
        if isinstance(event, BuildStarted):
            self.started = event
        elif isinstance(event, PullStarted | PushStarted):
            phase: Literal["pull", "push"] = "pull" if isinstance(event, PullStarted) else "push"
            self.transfers.append(Transfer(phase, event.ref))
        elif isinstance(event, BlobCopied):
            self._transfer(event.phase).blobs.append((event.digest, event.skipped))
        elif isinstance(event, ConfigCopied):
            self._transfer(event.phase).config = event.digest
        elif isinstance(event, ManifestWritten):
            self._transfer(event.phase).finished = True
        elif isinstance(event, Pushed):
            self.pushed.append(event)
            self._transfer("push").digest = event.digest
        elif isinstance(event, ImageBuilt):
            self.image_id = event.image_id
        elif isinstance(event, ImageInfo):
            self.image_info = event
        elif isinstance(event, ImageLoaded):
            self.loaded = event
        elif isinstance(event, LoadRefused):
            self.load_refused = event
        elif isinstance(event, BuildWarning):
            self.warnings.append(event.message)
        elif isinstance(event, Unchanged):
            self.unchanged = event

    def _transfer(self, phase: Literal["pull", "push"]) -> Transfer:
        """The latest transfer of this phase; Buildah may copy before naming a ref (a FROM
        pull's ``Trying to pull`` can be missing), so start an unnamed one then."""
        for transfer in reversed(self.transfers):
            if transfer.phase == phase:
                if not transfer.finished or phase == "push":
                    return transfer
                break
        self.transfers.append(Transfer(phase, ""))
        return self.transfers[-1]
