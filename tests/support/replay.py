"""Replaying recorded builds: an Engine that needs no podman, for UI tests and screenshots.

``ReplayEngine`` has the surface of ``tui.engine.session.Engine`` (it is one, with ``summary`` and
``runner`` replaced): summaries come from recorded ``podman inspect`` JSON read through the real
``facts_from_inspect``/``summarize``, builds replay recorded event streams
(``tests/data/events/*.jsonl``) and are recorded into the real history like the engine does.
Lives with the tests, not in the package: the recordings it reads are under ``tests/data``, which
an installed wheel does not have. Never imports pytest (scripts/screenshots.py uses it too).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from tui.engine.config import Config
from tui.engine.events import (
    BuildStarted,
    CacheHit,
    Done,
    Event,
    Failed,
    ImageLoaded,
    Status,
    StepDone,
    StepStarted,
    event_from_json,
)
from tui.engine.facts import facts_from_inspect, overlay_fact
from tui.engine.history import BuildRecord, History, StepRecord
from tui.engine.plan import BuildPlan
from tui.engine.renderings import create_kwargs
from tui.engine.session import Engine, EventSink, Reach
from tui.engine.summary import ProfileSummary, summarize

if TYPE_CHECKING:  # (imported when used: the bench's first paint goes through this module)
    from podman import PodmanClient

    from tests.support.replay_debug import ReplayDebugSession
    from tui.engine.debug_record import DebugRecord
    from tui.engine.layer_reader import LayerSource
    from tui.engine.layers import LayerReport

DATA = Path(__file__).resolve().parents[1] / "data"
EVENTS = DATA / "events"
INSPECT = DATA / "inspect"
LAYERS = DATA / "layers"

StreamSource = str | Callable[[BuildPlan], Iterable[Event]]


def load_stream(name: str) -> list[Event]:
    """Events of ``tests/data/events/NAME.jsonl`` (or of a path to any .jsonl file)."""
    path = Path(name) if name.endswith(".jsonl") else EVENTS / f"{name}.jsonl"
    with path.open(encoding="utf-8") as lines:
        return [event_from_json(line) for line in lines if line.strip()]


class ReplayRunner:
    """Plays events to ``sink`` like BuildRunner: ``run()`` blocks, ``cancel()`` from any thread.

    ``pause_after=N`` stops after N events until ``cancel()`` (a build frozen mid-way, for
    screenshots and cancel tests). ``scale`` multiplies durations (for distinct profiles).
    """

    def __init__(self, events: Iterable[Event], sink: EventSink, plan: BuildPlan, *,
                 delay: float = 0.0, pause_after: int | None = None, scale: float = 1.0) -> None:
        self.plan = plan
        self._events = events
        self._sink = sink
        self._delay = delay
        self._pause_after = pause_after
        self._scale = scale
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _adapt(self, event: Event) -> Event:
        """The stream was recorded for another plan: give it this plan's names and pace."""
        if isinstance(event, BuildStarted):
            return dataclasses.replace(event, build_id=self.plan.build_id, tag=self.plan.tag,
                                       profile=self.plan.profile.name,
                                       context=str(self.plan.context))
        if self._scale != 1.0 and isinstance(event, StepDone | Done):
            return dataclasses.replace(event, duration_s=round(event.duration_s * self._scale, 3))
        return event

    def run(self) -> Done:
        first: float | None = None
        last, steps, hits, failed = 0.0, 0, 0, False
        for index, raw in enumerate(self._events):
            if index == self._pause_after:
                self._cancel.wait()
            # wait() rather than sleep(): a cancel ends the delay at once.
            if self._cancel.is_set() or (self._delay and self._cancel.wait(self._delay)):
                break
            event = self._adapt(raw)
            first = event.time if first is None else first
            last = event.time
            steps += isinstance(event, StepStarted)
            hits += isinstance(event, CacheHit)
            failed = failed or isinstance(event, Failed)
            self._sink(event)
            if isinstance(event, Done):
                return event
        status: Status = ("canceled" if self._cancel.is_set()
                          else "failed" if failed else "succeeded")
        done = Done(status=status, duration_s=round((last - (first or last)) * self._scale, 3),
                    steps_total=steps, cache_hits=hits, time=last)
        self._sink(done)
        return done


def registry_answers(host: str, tls_verify: bool) -> tuple[bool, str]:
    """The replay engine's registry check: every registry answers (nothing is pushed)."""
    return True, f"{host} answered (replay)"


class ReplayEngine(Engine):
    """An Engine whose containers are recordings. ``stream`` picks what a build replays: a
    stream name, a function of the plan, or None for warm/cold by the plan (``no_cache`` or a
    profile without cache replays the cold pull-and-push build, others the warm one)."""

    def __init__(self, history: History, *, config: Config | None = None,
                 stream: StreamSource | None = None, delay: float = 0.0,
                 pause_after: int | None = None, scale: dict[str, float] | None = None,
                 summary_error: Exception | None = None, summary_delay: float = 0.0,
                 inspect_dir: Path = INSPECT, reach: Reach = registry_answers,
                 host_images: dict[str, str] | None = None,
                 layers: str | Exception = "layered") -> None:
        super().__init__(config=config or Config(), history=history, reach=reach)
        self.stream = stream
        self.delay = delay
        self.pause_after = pause_after
        self.scale = scale or {}
        self.summary_error = summary_error
        self.summary_delay = summary_delay
        self.inspect_dir = inspect_dir
        self.runners: list[ReplayRunner] = []
        """Every runner handed out, in order (tests look at their plans)."""
        self.layer_report = layers
        """What ``layers()`` gives: a report recorded in tests/data/layers (by name), or an
        error it raises."""
        self.layer_sources: list[LayerSource] = []
        """Every source the layers screen asked for, in order."""
        self.last_on = ""
        self.last_session = False
        self.summaries_in_session: list[bool] = []
        """Where the last build was asked to run ("local" or "kube")."""
        self.host_images: dict[str, str] = dict(host_images or {})
        """The host store as the load sees it: tag -> image id."""
        self.loads: list[tuple[str, bool]] = []
        """(image id, overwrite) of every load after a build (``load_built``), in order."""
        self.debug_sessions: list[ReplayDebugSession] = []
        """Every debug session handed out, in order."""

    def debug(self, record: DebugRecord, *, secrets: tuple[tuple[str, str], ...] = (),
              build_args: tuple[tuple[str, str], ...] = (),
              confirmed: bool | frozenset[str] = False, on_event: EventSink | None = None,
              on_note: Callable[[str], None] | None = None) -> ReplayDebugSession:
        from tests.support.replay_debug import replay_debug

        return replay_debug(self, record)

    def layers(self, source: LayerSource) -> LayerReport:
        """A recorded report (``buildcage layers --json`` of a real build), no podman."""
        from tui.engine.layers import LayerReport

        self.layer_sources.append(source)
        if isinstance(self.layer_report, Exception):
            raise self.layer_report
        path = LAYERS / f"{self.layer_report}.json"
        report = LayerReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return dataclasses.replace(report, image_id=source.image)  # the build's, as asked

    def client(self) -> PodmanClient:
        raise RuntimeError("the replay engine has no podman connection")

    def summary(self, plan: BuildPlan, session: bool = False) -> ProfileSummary:
        self.summaries_in_session.append(session)
        if self.summary_delay:
            time.sleep(self.summary_delay)
        if self.summary_error is not None:
            raise self.summary_error
        path = self.inspect_dir / f"{plan.profile.name}.json"
        if not path.is_file():  # a user profile: show the facts of the default layout
            path = self.inspect_dir / "host-ro.json"
        # As the real probe: a created container's inspect shows no overlay volume.
        facts = facts_from_inspect(json.loads(path.read_text(encoding="utf-8")),
                                   overlay_volumes=create_kwargs(plan).get("overlay_volumes"))
        # The recorded storage.conf path may or may not exist here: the plan's own text says
        # the same, the same way on every machine.
        facts = dataclasses.replace(facts, overlay=overlay_fact(plan.storage_conf()))
        median = self.history.median_duration(plan.profile.name, str(plan.context))
        return summarize(plan.profile, facts, median, plan.cache_repo, plan.overlay_reason)

    def events_for(self, plan: BuildPlan) -> Iterable[Event]:
        if callable(self.stream):
            return self.stream(plan)
        if self.stream is not None:
            return load_stream(self.stream)
        cold = plan.no_cache or not (plan.profile.keeps_cache or plan.cache_repo)
        if plan.load and not cold:
            return load_stream("warm-push-load")
        return load_stream("cold-pull-push" if cold else "warm-push")

    def host_image_id(self, tag: str) -> str:
        return self.host_images.get(tag, "")

    def load_built(self, plan: BuildPlan, image_id: str, *, overwrite: bool = False
                   ) -> ImageLoaded:
        """The real tag rule (tui.engine.load.check_tag) on ``host_images``; no podman."""
        from tui.engine.load import LoadConflict, check_tag

        self.loads.append((image_id, overwrite))
        refused = check_tag(_HostImages(self.host_images), plan.tag, image_id,
                            overwrite=overwrite, loaded_before=self.loaded_before)
        if refused is not None:
            raise LoadConflict(refused.tag, refused.host_image_id)
        self.host_images[plan.tag] = image_id
        self.history.mark_loaded(image_id, plan.tag)
        return ImageLoaded(image_id=image_id, tag=plan.tag, tags=(plan.tag,))

    def runner(self, plan: BuildPlan, on_event: EventSink, on: str = "local",
               session: bool = False) -> ReplayRunner:
        self.last_on = on
        self.last_session = session
        runner = ReplayRunner(self.events_for(plan), self.recording(plan, on_event), plan,
                              delay=self.delay, pause_after=self.pause_after,
                              scale=self.scale.get(plan.profile.name, 1.0))
        self.runners.append(runner)
        return runner


class _HostImages:
    """Enough of a PodmanClient for ``check_tag``: ``images.get(tag).id``."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.images = self
        self._tags = tags

    def get(self, name: str) -> SimpleNamespace:
        from podman.errors import ImageNotFound

        if name not in self._tags:
            raise ImageNotFound(name)
        return SimpleNamespace(id=self._tags[name])


class FrozenClock:
    """A clock for the build timer that only moves when told (screenshots never change)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_demo_history(history: History, examples: Path) -> None:
    """Five builds at fixed times (2025-11-29 from 07:06 UTC), the newest of examples/hello."""
    steps = [StepRecord(1, 1, "FROM 127.0.0.1:5000/buildcage/busybox:latest", 0.1, False),
             StepRecord(1, 2, "COPY greeting.txt /greeting.txt", 0.2, True),
             StepRecord(1, 3, 'RUN echo "built by buildcage" > /built-by', 0.2, True),
             StepRecord(1, 4, 'CMD ["cat", "/greeting.txt"]', 0.3, True)]
    pushed = ("127.0.0.1:5000/demo/hello:x@sha256:"
              "7fe85a8e3cb772c67bbc69c61b69410306d2f09cdae45de16fec1349fbd1c3bd")
    rows = [("isolated", "/srv/src/hello", "succeeded", 9.4, 0, 4, ""),
            ("host-ro", "/srv/src/hello", "succeeded", 3.0, 3, 4, pushed),
            ("host-ro", "/srv/src/broken", "failed", 5.2, 0, 7, ""),
            ("project", "/srv/src/multistage", "canceled", 1.4, 1, 3, ""),
            ("host-ro", str(examples / "hello"), "succeeded", 2.8, 3, 4, "")]
    for i, (profile, context, status, duration, hits, total, ref) in enumerate(rows):
        history.add(BuildRecord(
            started_at=1_764_400_000.0 + i * 600, profile=profile, context=context,
            containerfile=f"{context}/Containerfile", tag="localhost/buildcage/hello:latest",
            target=ref.split("@")[0], status=status, duration_s=duration, steps_total=total,
            cache_hits=hits, pushed=ref, steps=steps if hits == 3 else [],
            image_id="ab9d8035ec09" * 5 + "1e0c" if status == "succeeded" else "",
        ))
