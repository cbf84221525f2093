"""Running a BuildPlan in a builder container through podman-py, as a stream of typed events.

The output is read as it comes (see tui.engine.logs for why not through ``follow``) and parsed
once into events; every line arrives, once, in order, the last ones included.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podman import PodmanClient
from podman.errors import ImageNotFound, NotFound

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.events import BuildStarted, Done, Event, Failed
from tui.engine.facts import SecurityFacts, facts_from_inspect
from tui.engine.logs import ApiLogPoller, LogFileTail
from tui.engine.plan import BuildPlan
from tui.engine.renderings import create_kwargs
from tui.engine.stores import prepare, release

EventSink = Callable[[Event], None]


class BuildRunner:
    """Runs one plan. ``run()`` blocks and returns the Done event; ``cancel()`` is thread-safe."""

    def __init__(self, client: PodmanClient, plan: BuildPlan, on_event: EventSink) -> None:
        self.client = client
        self.plan = plan
        self.on_event = on_event
        self.parser = BuildahOutputParser()
        self.poll_interval = 0.1
        """Seconds between reads of new output while the builder runs (when none was new)."""
        self.use_log_file = True
        """Read the k8s-file log directly when podman is local (exact and cheap)."""
        self._canceled = threading.Event()
        self._container = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self._canceled.set()
        with self._lock:
            container = self._container
        if container is not None:
            try:
                container.kill()
            except Exception:  # already gone or exiting: run() cleans up either way
                pass

    @property
    def canceled(self) -> bool:
        return self._canceled.is_set()

    def run(self) -> Done:
        started = time.time()
        state = None
        error: Failed | None = None
        exit_code = -1
        try:
            state = prepare(self.client, self.plan)
            if not self.canceled:
                exit_code = self._run_container()
        except ImageNotFound:
            error = Failed(message=f"builder image {self.plan.builder_image} not found: run "
                                   "provision/provision.sh (or `buildcage doctor`)")
        except Exception as exc:  # podman gone mid-build, API errors: report, then clean up
            error = Failed(message=f"{type(exc).__name__}: {exc}")
        finally:
            left = self._cleanup(state)
        if error is not None and not self.canceled:
            self._emit(error)
        elif not self.canceled:
            for event in self.parser.finish(exit_code, time.time()):
                self._emit(event)
        if left:
            self._emit(Failed(message="could not remove: " + "; ".join(left)))
        if self.canceled:
            status = "canceled"
        elif error is None and exit_code == 0 and not left:
            status = "succeeded"
        else:
            status = "failed"
        pushed = self.parser.pushed[-1] if self.parser.pushed else None
        done = Done(
            status=status, image_id=self.parser.image_id,
            duration_s=round(time.time() - started, 3),
            steps_total=self.parser.steps_total, cache_hits=self.parser.cache_hits,
            pushed=f"{pushed.ref}@{pushed.digest}" if pushed else "",
        )
        self._emit(done)
        return done

    def _run_container(self) -> int:
        container = self.client.containers.create(**create_kwargs(self.plan))
        with self._lock:
            self._container = container
        if self.canceled:
            return -1
        container.start()
        self._emit(BuildStarted(build_id=self.plan.build_id, profile=self.plan.profile.name,
                                context=str(self.plan.context), tag=self.plan.tag,
                                container_id=container.id))
        source = self._log_source(container)
        outcome: list[int | BaseException] = []
        waiter = threading.Thread(target=self._wait, args=(container, outcome), daemon=True)
        waiter.start()
        while waiter.is_alive():
            lines = source.read_new()
            self._deliver(lines)
            if not lines:
                waiter.join(self.poll_interval)
        self._deliver(source.finish())
        if outcome and isinstance(outcome[0], BaseException):
            raise outcome[0]  # e.g. the podman service went away mid-build
        return int(outcome[0]) if outcome else -1

    @staticmethod
    def _wait(container, outcome: list[int | BaseException]) -> None:
        try:
            result = container.wait()
            outcome.append(int(result if isinstance(result, int)
                               else result.get("StatusCode", -1)))
        except BaseException as exc:  # handed to the build thread, which reports it
            outcome.append(exc)

    def _log_source(self, container) -> LogFileTail | ApiLogPoller:
        container.reload()
        log = container.attrs.get("HostConfig", {}).get("LogConfig", {})
        path = Path(log.get("Path") or "/nonexistent")
        if self.use_log_file and log.get("Type") == "k8s-file" and os.access(path, os.R_OK):
            return LogFileTail(path)
        return ApiLogPoller(container)

    def _deliver(self, lines: list[str]) -> None:
        for line in lines:
            for event in self.parser.feed(line, time.time()):
                self._emit(event)

    def _emit(self, event: Event) -> None:
        self.on_event(event)

    def _cleanup(self, state) -> list[str]:
        left: list[str] = []
        with self._lock:
            container, self._container = self._container, None
        if container is not None:
            problem = remove_container(container)
            if problem:
                left.append(f"container {self.plan.container_name} ({problem})")
        if state is not None:
            left += release(self.client, state)
        return left


def remove_container(container, attempts: int = 20) -> str:
    """Removes a container; returns "" or why it could not. Right after the builder exits,
    podman may still be unmounting its /dev/shm ("device or resource busy"): retry briefly."""
    problem = ""
    for _ in range(attempts):
        try:
            container.remove(force=True)
            return ""
        except NotFound:
            return ""
        except Exception as exc:
            problem = str(exc)
            time.sleep(0.25)
    return problem


def probe_facts(client: PodmanClient, plan: BuildPlan) -> SecurityFacts:
    """Creates the builder container exactly as a build would (never started), reads its
    inspect data, and removes it and anything prepared for it."""
    state = prepare(client, plan, pin=False)
    container = None
    try:
        kwargs = create_kwargs(plan)
        kwargs["name"] = f"{plan.container_name}-probe"
        container = client.containers.create(**kwargs)
        container.reload()
        return facts_from_inspect(container.attrs)
    finally:
        if container is not None:
            remove_container(container)
        release(client, state)



