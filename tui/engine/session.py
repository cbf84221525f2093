"""The engine's front door for the TUI and the CLI: plans, profile summaries, builds, history.

A build is one path for every front end: ``prepare(request, confirmed=...)`` checks a
``BuildRequest`` and writes its plan files (raising a ``UserError`` saying what to change), and
``start(prepared, on_event)`` gives the ``Runner`` that runs it, locally or as a Kubernetes Pod.

Every method here may block (podman calls, a registry check): the TUI calls them from thread
workers only. Build events are delivered through ``on_event`` on the runner's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tui.engine.cache_worth import judge
from tui.engine.config import Config, load_config
from tui.engine.containerfile import parse_containerfile, read_containerfile
from tui.engine.events import (
    BuildWarning,
    Done,
    Event,
    ImageLoaded,
    LogLine,
    StepDone,
    StepStarted,
    Unchanged,
)
from tui.engine.history import BuildRecord, History, HistoryError, StepRecord
from tui.engine.plan import BuildPlan
from tui.engine.planner import PlanError, make_plan
from tui.engine.profiles import ProfileSet
from tui.engine.registry import OciTarget, check_reachable, parse_push_target
from tui.engine.request import BuildRequest, PreparedBuild, Runner
from tui.engine.summary import ProfileSummary, summarize

# podman is imported on first connection and the cache explanations with the first build, so
# importing the engine stays cheap (the TUI's first frame needs neither).
if TYPE_CHECKING:
    from podman import PodmanClient

    from tui.engine.cache_why import CacheExplainer
    from tui.engine.debug_record import DebugRecord, FailureLog
    from tui.engine.debug_shell import DebugSession
    from tui.engine.layer_reader import LayerSource
    from tui.engine.layers import LayerReport
    from tui.engine.runner import BuildRunner
    from tui.engine.unchanged import Candidate

EventSink = Callable[[Event], None]
DEFAULT_IDLE_TIMEOUT = 600.0
"""Seconds after its last build that a session builder is removed by the next sweep (the one
default: the CLI's --idle-timeout and tui.engine.session_builder take it from here)."""
Reach = Callable[[str, bool], tuple[bool, str]]
"""``reach(registry, tls_verify) -> (answers, message)``: does a push target's registry answer."""


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

    def __init__(self, config: Config | None = None, history: History | None = None,
                 reach: Reach = check_reachable) -> None:
        self.config = config or load_config()
        self.profiles = ProfileSet.from_config(self.config.profiles)
        self.reach = reach
        """Checks a push target's registry before a build (blocking)."""
        self._history = history
        self._client: PodmanClient | None = None
        self.session_idle_timeout = DEFAULT_IDLE_TIMEOUT
        """Seconds after its last build that a session builder goes (at the next sweep)."""
        self._sessions: set[tuple[Path, str]] = set()
        """The session builders this process built in (``end_sessions``)."""

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History()
        return self._history

    def client(self) -> PodmanClient:
        from tui.engine.podman_api import connect

        if self._client is None:
            self._client = connect(self.config.podman_url, self.config.podman_identity,
                                   self.config.podman_known_hosts)
        return self._client

    @property
    def remote(self) -> bool:
        """Whether the podman service runs on another host: every URL but a unix socket. The
        builder then gets copies of this machine's files, not bind mounts (``BuildPlan.remote``)."""
        return not self.config.podman_url.startswith(("unix://", "http+unix://"))

    def plan(self, context: str | Path, **options) -> BuildPlan:
        """See tui.engine.planner.make_plan for the options; raises PlanError."""
        return make_plan(context, config=self.config, **options)

    def plan_for(self, request: BuildRequest, *,
                 confirmed: bool | frozenset[str] = False) -> BuildPlan:
        """The request checked into a plan, with no side effects (for a look: the summary
        card); raises PlanError. A build goes through ``prepare``."""
        return self.plan(request.context, profile=request.profile or None,
                         containerfile=request.containerfile or None, tag=request.tag or None,
                         push=request.push, build_args=request.build_args,
                         secrets=request.secrets,
                         target_stage=request.target_stage, no_cache=request.no_cache,
                         project=request.project or None, confirmed=confirmed,
                         remote=self.remote,
                         load=request.load, load_overwrite=request.load_overwrite)

    def prepare(self, request: BuildRequest, *, confirmed: bool | frozenset[str] = False,
                check_push: bool = True) -> PreparedBuild:
        """Everything checked before a build, the same for every front end: the profile and its
        confirmation, the paths, the Containerfile (UTF-8, and readable by buildcage), and with
        ``check_push`` that the push target's registry answers. Writes the plan's files, so its
        ``podman run`` and Pod renderings run as printed. Raises a UserError saying what to
        change."""
        if self.remote and request.on == "kube":
            raise PlanError("--on kube plays Pods that mount this machine's files (hostPath): "
                            f"not on the podman service {self.config.podman_url!r} on another "
                            "host; run buildcage on the podman host for --on kube")
        if (request.load or request.load_overwrite) and request.on == "kube":
            raise PlanError("--load puts the image into this machine's podman store, which a "
                            "Kubernetes Pod's node does not share: --push it to a registry "
                            "instead, or build without --on kube")
        plan = self.plan_for(request, confirmed=confirmed)
        if request.on == "kube":
            from tui.engine.renderings import check_pod_form

            check_pod_form(plan)
        parse_containerfile(read_containerfile(plan.containerfile))
        if check_push and plan.load and not plan.load_overwrite:
            # Before building for minutes: a tag the load would refuse to move (the load
            # checks again when it happens; this is the early answer, and the TUI's question).
            from tui.engine.load import LoadConflict

            current = self.host_image_id(plan.tag)
            if current and not self.loaded_before(plan.tag, current):
                raise LoadConflict(plan.tag, current)
        target = parse_push_target(plan.push)
        if check_push and target is not None and not isinstance(target, OciTarget):
            ok, message = self.reach(target.registry, self.config.tls_verify_for(target.registry))
            if not ok:
                raise PlanError(f"push target {plan.push!r}: {message}")
        if check_push and plan.cache_repo:
            # A cache is a speed-up: a registry that does not answer turns it off for this
            # build (said as a warning), it does not stop the build.
            registry = plan.cache_repo.split("/", 1)[0]
            ok, message = self.reach(registry, self.config.tls_verify_for(registry))
            if not ok:
                plan = replace(plan, cache_repo="",
                               cache_note=f"registry cache off for this build: {message}")
        # Read from local history only (no network): also for `buildcage plan` and a debug
        # shell's rebuild, so what they print or run is what a build would.
        plan = self.cache_where_it_pays(plan)
        from tui.engine.stores import write_plan_files

        try:
            write_plan_files(plan)
        except OSError as exc:
            where = exc.filename or plan.data_dir
            raise PlanError(f"cannot write the build's files under {where}: "
                            f"{exc.strerror or exc} (XDG_DATA_HOME chooses where)") from exc
        return PreparedBuild(request, plan)

    def start(self, prepared: PreparedBuild, on_event: EventSink) -> Runner:
        """The runner of a prepared build (nothing runs until its ``run()``); connects to
        podman, so raises PodmanUnavailable when the service does not answer. Every build
        that ends is recorded in history before its Done is delivered."""
        return self.runner(prepared.plan, on_event, on=prepared.on,
                           session=prepared.request.session)

    # -- the image on the host (tui.engine.load) ---------------------------------------------------
    def host_image_id(self, tag: str) -> str:
        """The id of the host's image named ``tag``, "" when none; connects to podman."""
        from tui.engine.load import host_image_id

        return host_image_id(self.client(), tag)

    def loaded_before(self, tag: str, image_id: str) -> bool:
        """Whether buildcage loaded ``image_id`` under ``tag`` (history; no when it cannot say)."""
        try:
            return self.history.loaded_before(tag, image_id)
        except HistoryError:
            return False

    def load_built(self, plan: BuildPlan, image_id: str, *, overwrite: bool = False
                   ) -> ImageLoaded:
        """Loads a finished build's image into the host (blocking); raises LoadConflict when
        its tag names another image and ``overwrite`` is not given, LoadError otherwise."""
        from tui.engine.load import load_built

        loaded = load_built(self.client(), plan, image_id, loaded_before=self.loaded_before,
                            overwrite=overwrite)
        try:
            self.history.mark_loaded(image_id, loaded.tag)
        except HistoryError:
            pass  # loaded all the same; only the tag rule's memory of it is missing
        return loaded

    def run_argv(self, image_id: str) -> list[str]:
        """``podman run --rm -it`` of a loaded image, on the service it was loaded into."""
        from tui.engine.load import run_argv

        return run_argv(self.config.podman_url, image_id)

    def layer_source(self, image: str = "", *, last: bool = False, profile: str = "",
                     project: str = "") -> LayerSource:
        """Which image ``buildcage layers [IMAGE | --last]`` means, in which store (see
        tui.engine.layer_reader.find_source); raises a UserError."""
        from tui.engine.layer_reader import find_source

        return find_source(self, image, last=last, profile=profile, project=project)

    def layers(self, source: LayerSource) -> LayerReport:
        """What each layer of the image holds, and dive's waste measures: a kept report, or
        read from the store by a short-lived trusted container (blocks; raises a UserError)."""
        from tui.engine.layer_reader import read_layers

        return read_layers(self, source)

    def summary(self, plan: BuildPlan, session: bool = False) -> ProfileSummary:
        """Creates the builder container (never started), reads its facts, removes it;
        ``session``: the facts of the session builder the build would run in, from its real
        build container, when there is one."""
        from tui.engine.probe import probe_facts, session_facts

        plan = self.probed(plan)
        facts = (session_facts(self.client(), plan) if session else None) or \
            probe_facts(self.client(), plan)
        return summarize(plan.profile, facts, self.median(plan), plan.cache_repo,
                         plan.overlay_reason)

    def probed(self, plan: BuildPlan) -> BuildPlan:
        """``plan`` with the overlay a kernel overlay probe current for this kernel and podman
        chooses (tui.engine.overlay). When none is recorded for its kind of builder, probes it
        first: one builder container, about 3 s, once after the kernel or podman changed.
        Raises PodmanUnavailable when podman does not answer."""
        from tui.engine.overlay import (
            LOCAL,
            current_record,
            ensure_probe,
            namespace_kind,
            service_key,
        )
        from tui.engine.planner import with_overlay

        if plan.profile.overlay != "auto":
            return plan
        kind = namespace_kind(plan.profile.userns)
        service = service_key(self.config.podman_url) if self.remote else LOCAL
        record = current_record(plan.data_dir, service)
        # A local record is checked against this kernel and podman here; a remote service's
        # only by asking it (two API calls).
        if record is None or kind not in record.answers or service != LOCAL:
            record = ensure_probe(self.client(), self.config.builder_image, plan.data_dir,
                                  (kind,), service=service)
        return with_overlay(plan, record)

    def cache_where_it_pays(self, plan: BuildPlan) -> BuildPlan:
        """``plan`` without its registry cache where the last full run of this build says the
        cache costs more than it saves (tui.engine.cache_worth), unless the profile says
        ``registry_cache_always``; the build says why (``cache_note``)."""
        if not plan.cache_repo or plan.profile.registry_cache_always:
            return plan
        verdict = judge(self.last_full_run(plan))
        return plan if verdict.pays else replace(plan, cache_repo="", cache_note=verdict.why)

    def last_full_run(self, plan: BuildPlan) -> BuildRecord | None:
        """The newest build like ``plan`` in which every step ran; None when history cannot
        say (a history that cannot be read leaves the cache on)."""
        try:
            return self.history.last_full_run(plan.profile.name, str(plan.context),
                                              str(plan.containerfile), plan.target_stage)
        except HistoryError:
            return None

    def median(self, plan: BuildPlan) -> float | None:
        """Median time of recent builds like this one; None when history cannot say."""
        try:
            return self.history.median_duration(plan.profile.name, str(plan.context))
        except HistoryError:
            return None

    def runner(self, plan: BuildPlan, on_event: EventSink, on: str = "local",
               session: bool = False) -> Runner:
        """The runner for ``start`` (replaced by tests' replay engines): ``on="kube"`` runs the
        plan's Pod manifest instead of a plain container; ``session`` runs it in a session
        builder (tui.engine.session_runner) when one can serve it, else one-shot with a note."""
        from tui.engine.runner import BuildRunner

        plan = self.probed(plan)
        if on == "kube":
            if session:
                on_event = noted(on_event, "not in a session builder: --on kube plays a Pod "
                                           "per phase")
            from tui.engine.kube_runner import KubeRunner

            return KubeRunner(self.client(), plan, self.recording(plan, on_event))
        explainer = self.explainer(plan)
        key = self.plan_key(plan)
        runner: BuildRunner | None = None
        if session:
            from tui.engine.session_plan import refusal

            reason = refusal(plan)
            if not reason:
                from tui.engine.session_runner import SessionRunner

                session_runner = SessionRunner(self.client(), plan,
                                               self._recording(plan, on_event, explainer,
                                                               key),
                                               idle_timeout=self.session_idle_timeout)
                session_runner.used = lambda sid: self._sessions.add((plan.data_dir, sid))
                runner = session_runner
            else:
                on_event = noted(on_event, f"not in a session builder: {reason}; this build "
                                           "makes its own containers")
        if runner is None:
            runner = BuildRunner(self.client(), plan,
                                 self._recording(plan, on_event, explainer, key))
        runner.loaded_before = self.loaded_before
        runner.unchanged = self.unchanged_check(plan, explainer, key)
        return runner

    def plan_key(self, plan: BuildPlan) -> str:
        """``unchanged.plan_key`` of the plan, read now (with the build's inputs); "" for a
        plan that is never taken as unchanged (``unchanged.refusal``), or when it cannot be
        read: history's key, or a Containerfile that no longer parses (the build says why)."""
        from tui.engine.unchanged import plan_key, refusal

        if refusal(plan):
            return ""
        try:
            return plan_key(plan, self.history.secret_key())
        except (HistoryError, ValueError, OSError):
            return ""

    def unchanged_check(self, plan: BuildPlan, explainer: CacheExplainer | None,
                        key: str | None = None) -> Callable[[], Candidate | None] | None:
        """What the runner asks, under the store's lock, to know whether this build would
        repeat the last one in its store step for step (tui.engine.unchanged): the explainer's
        reading of the Containerfile and the context, and the plan key read with it (``key``;
        read now when None), against history's newest build there. None where an unchanged
        build must run all the same (``unchanged.refusal``: no key then) or history cannot be
        read."""
        from tui.engine.unchanged import find

        key = self.plan_key(plan) if key is None else key
        if explainer is None or not key:
            return None

        def check() -> Candidate | None:
            # Read again: the Containerfile, an ignore file or the builder image may have
            # changed since the runner was made (a wait for the store's lock, say), and so may
            # the context (review 3: an edit during that wait was taken as unchanged).
            if self.plan_key(plan) != key or not explainer.inputs.settled():
                return None
            earlier = explainer.lookup.previous(explainer.context, explainer.store)
            return find(plan, explainer.inputs, earlier, key)

        return check

    def end_sessions(self) -> list[str]:
        """Removes the session builders this process built in, but one a build (of another
        process) runs in now (the TUI, when it exits); returns what could not be removed."""
        from tui.engine.session_builder import sweep

        left: list[str] = []
        for data in {data for data, _ in self._sessions}:
            only = {sid for d, sid in self._sessions if d == data}
            left += sweep(self.client(), data, everything=True, only=only)[1]
        self._sessions.clear()
        return left

    def recording(self, plan: BuildPlan, on_event: EventSink) -> EventSink:
        """Passes events on, with the ``CacheMiss`` events that explain the steps that ran
        (``explainer``), and records the build in history when its Done arrives, before
        passing the Done on (and, for a build that failed in a step, what a debug shell
        needs). History that cannot be written, or an explanation that fails, is a warning:
        the build itself went as its Done says."""
        return self._recording(plan, on_event, self.explainer(plan), self.plan_key(plan))

    def _recording(self, plan: BuildPlan, on_event: EventSink,
                   explainer: CacheExplainer | None, key: str) -> EventSink:
        """``recording`` with the explainer and the plan key made already (the runner asks
        them too)."""
        from tui.engine.debug_record import FailureLog

        steps = StepLog()
        failures = FailureLog()
        broken: list[str] = []
        unchanged: list[Unchanged] = []

        def explain(event: Event) -> list[Event]:
            if explainer is None or broken:
                return []
            try:
                if isinstance(event, Done):
                    return explainer.finish(event)
                return explainer.feed(event)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the build
                broken.append(f"{type(exc).__name__}: {exc}")
                return [BuildWarning(message=f"cache explanations stopped: {broken[0]}")]

        def sink(event: Event) -> None:
            if type(event) is LogLine:  # most events by far (a million for some builds)
                on_event(event)
                return
            steps.feed(event)
            failures.feed(event)
            if isinstance(event, Unchanged):
                unchanged.append(event)
            if not isinstance(event, Done):
                on_event(event)
                for extra in explain(event):
                    on_event(extra)
                return
            for extra in explain(event):
                on_event(extra)
            kept = key
            if key and not unchanged and self.plan_key(plan) != key:
                kept = ""  # the Containerfile or an ignore file was edited while it ran:
                # Buildah may have read either, so the next build runs
            try:
                self.record(plan, event, steps, None if broken else explainer, kept,
                            unchanged=bool(unchanged) and event.status == "succeeded")
            except HistoryError as exc:
                on_event(BuildWarning(message=f"not recorded in history: {exc}",
                                      time=event.time))
            if event.status == "failed":
                self._record_failure(plan, failures, event, on_event)
            on_event(event)

        return sink

    def explainer(self, plan: BuildPlan) -> CacheExplainer | None:
        """Reads what the plan's steps are keyed on (the Containerfile, build arguments, the
        context files COPY/ADD read) and the earlier builds to compare with; None when history
        cannot be read (the build goes on, unexplained)."""
        from tui.engine.cache_inputs import read_inputs
        from tui.engine.cache_why import CacheExplainer, Lookup, earlier_files, store_key

        try:
            lookup = Lookup(self.history)
            store = store_key(plan, self.config.podman_url)
            key = self.history.secret_key()
            earlier = {} if plan.profile.store == "fresh" else \
                earlier_files(lookup, str(plan.context), store)
            inputs = read_inputs(plan, key, earlier, files=plan.profile.store != "fresh")
        except (HistoryError, OSError):
            return None
        return CacheExplainer(plan, inputs, lookup, store)

    # -- a shell where a build failed (tui.engine.debug_shell) ------------------------------------
    @staticmethod
    def _record_failure(plan: BuildPlan, failures: FailureLog, done: Done,
                        on_event: EventSink) -> None:
        """What a debug shell needs of a build that failed in a step (DATA/debug)."""
        from tui.engine.debug_record import save_record

        record = failures.record(plan, done.time)
        if record is None:
            return
        try:
            save_record(record, plan.data_dir)
        except OSError as exc:
            on_event(BuildWarning(message=f"no debug shell for this build: {exc}",
                                  time=done.time))

    def failure(self, *, build_id: str = "", context: Path | None = None) -> DebugRecord:
        """The failed build a shell opens for (see debug_record.find_record); DebugError when
        there is none."""
        from tui.engine.config import data_dir
        from tui.engine.debug_record import find_record

        return find_record(data_dir(), build_id=build_id, context=context)

    def debug_record(self, build_id: str) -> DebugRecord | None:
        """The record of a build that failed in a step, None when it left none."""
        from tui.engine.debug_record import DebugError

        try:
            return self.failure(build_id=build_id)
        except DebugError:
            return None

    def debug(self, record: DebugRecord, *, secrets: tuple[tuple[str, str], ...] = (),
              build_args: tuple[tuple[str, str], ...] = (),
              confirmed: bool | frozenset[str] = False,
              on_event: EventSink | None = None,
              on_note: Callable[[str], None] | None = None) -> DebugSession:
        """A debug session for ``record`` (nothing runs before its ``prepare()``): the same
        request, checked again as a build is (profile, confirmation, paths). ``secrets``: the
        build's --secret inputs, needed only when the session rebuilds (a fresh store).
        ``build_args``: the values of its secret-looking build arguments (the record kept only
        their names), always needed (the shell's environment has them, as the step's had)."""
        from tui.engine.debug_record import DebugError
        from tui.engine.debug_shell import DebugSession

        if self.remote:
            raise DebugError(f"a debug shell runs on this terminal against the podman service "
                             f"on this machine, not {self.config.podman_url!r}: run buildcage "
                             "on the podman host")
        if record.failed.problem:
            raise DebugError(record.failed.problem)
        rebuild = not record.base
        given = {name for name, _src in secrets}
        missing = [name for name in record.secret_ids if name not in given]
        if rebuild and missing:
            raise DebugError(f"the {record.profile} store kept nothing, so the shell rebuilds, "
                             f"and the build read --secret {', '.join(missing)}: give "
                             f"{'them' if len(missing) > 1 else 'it'} again "
                             "(--secret id=NAME,src=FILE)")
        values = dict(build_args)
        unknown = [name for name in record.withheld_args if name not in values]
        if unknown:
            raise DebugError(f"build argument{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)} looked like a secret, so buildcage kept no "
                             f"value for the shell: give {'them' if len(unknown) > 1 else 'it'} "
                             "again (--build-arg NAME=VALUE)")
        request = record.request(secrets if rebuild else (),
                                 tuple((name, values[name]) for name in record.withheld_args))
        plan = self.prepare(request, confirmed=confirmed, check_push=False).plan
        if rebuild:
            plan = plan.debug_rebuild()
        return DebugSession(self.client(), plan, record, podman_url=self.config.podman_url,
                            on_event=on_event, on_note=on_note)

    def record(self, plan: BuildPlan, done: Done, steps: StepLog,
               explainer: CacheExplainer | None = None, key: str = "",
               unchanged: bool = False) -> int:
        """Adds the build to history; ``key``: its plan key, read before it ran;
        ``unchanged``: it was an unchanged build (nothing ran)."""
        cache, misses, bases = explainer.record() if explainer is not None else ([], [], None)
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
            loaded=done.loaded,
            steps=[steps.steps[k] for k in sorted(steps.steps)],
            store=explainer.store if explainer is not None else "",
            bases=bases,
            plan_key=key,
            unchanged=unchanged,
        ), cache=cache, misses=misses)


def noted(on_event: EventSink, note: str) -> EventSink:
    """``on_event`` with a warning told before the build's first event."""
    told = False

    def sink(event: Event) -> None:
        nonlocal told
        if not told:
            told = True
            on_event(BuildWarning(message=note))
        on_event(event)

    return sink
