"""The engine's front door for the TUI and the CLI: plans, profile summaries, builds, history.

Every method here may block (podman calls): the TUI calls them from thread workers only. Build
events are delivered through the ``on_event`` callback on the runner's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tui.engine.config import Config, load_config
from tui.engine.events import Done, Event, StepDone, StepStarted
from tui.engine.history import BuildRecord, History, StepRecord
from tui.engine.plan import BuildPlan
from tui.engine.planner import make_plan
from tui.engine.profiles import ProfileSet
from tui.engine.summary import ProfileSummary, summarize

EventSink = Callable[[Event], None]


@dataclass
class StepLog:
    """Collects per-step results from the event stream for the history record."""

    steps: dict[tuple[int, int], StepRecord] = field(default_factory=dict)
    instructions: dict[tuple[int, int], str] = field(default_factory=dict)

    def feed(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.instructions[(event.stage, event.step)] = event.instruction
        elif isinstance(event, StepDone):
            key = (event.stage, event.step)
            self.steps[key] = StepRecord(event.stage, event.step, self.instructions.get(key, ""),
                                         event.duration_s, event.cached)


class Engine:
    """One per process: holds config, profiles, the history database and the podman client."""

    def __init__(self, config: Config | None = None, history: History | None = None) -> None:
        self.config = config or load_config()
        self.profiles = ProfileSet.from_config(self.config.profiles)
        self._history = history
        self._client = None

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History()
        return self._history

    def client(self):  # -> podman.PodmanClient; typed loosely so importing stays cheap
        from tui.engine.podman_api import connect

        if self._client is None:
            self._client = connect(self.config.podman_url)
        return self._client

    def plan(self, context: str | Path, **options) -> BuildPlan:
        """See tui.engine.planner.make_plan for the options; raises PlanError."""
        return make_plan(context, config=self.config, **options)

    def summary(self, plan: BuildPlan) -> ProfileSummary:
        """Creates the builder container (never started), reads its facts, removes it."""
        from tui.engine.probe import probe_facts

        facts = probe_facts(self.client(), plan)
        median = self.history.median_duration(plan.profile.name, str(plan.context))
        return summarize(plan.profile, facts, median)

    def runner(self, plan: BuildPlan, on_event: EventSink, on: str = "local"):
        """A BuildRunner: call ``run()`` (blocking, returns Done) and ``cancel()`` from any thread.
        ``on="kube"`` runs the plan's Pod manifest instead of a plain container. Every finished
        build is recorded in history."""
        from tui.engine.runner import BuildRunner

        if on == "kube":
            from tui.engine.kube_runner import KubeRunner

            return KubeRunner(self.client(), plan, self.recording(plan, on_event))
        return BuildRunner(self.client(), plan, self.recording(plan, on_event))

    def recording(self, plan: BuildPlan, on_event: EventSink) -> EventSink:
        """Passes events on and records the build in history when its Done arrives."""
        steps = StepLog()

        def sink(event: Event) -> None:
            steps.feed(event)
            on_event(event)
            if isinstance(event, Done):
                self.record(plan, event, steps)

        return sink

    def record(self, plan: BuildPlan, done: Done, steps: StepLog) -> int:
        return self.history.add(BuildRecord(
            started_at=time.time() - done.duration_s,
            profile=plan.profile.name,
            context=str(plan.context),
            containerfile=str(plan.containerfile),
            tag=plan.tag,
            target=plan.push,
            status=done.status,
            duration_s=done.duration_s,
            steps_total=done.steps_total,
            cache_hits=done.cache_hits,
            image_id=done.image_id,
            pushed=done.pushed,
            build_args=dict(plan.build_args),
            stage_target=plan.target_stage,
            no_cache=plan.no_cache,
            warm=done.cache_hits > 0,
            steps=[steps.steps[k] for k in sorted(steps.steps)],
        ))
