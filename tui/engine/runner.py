"""Running a BuildPlan in a builder container through podman-py, as a stream of typed events.

Following a container's logs loses the tail on this podman (a follow stream can end before the
container does), so after the container exits the runner reads the logs again from the last
second it saw and keeps only the lines it has not delivered: every line arrives, once, in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from podman import PodmanClient
from podman.errors import ImageNotFound

from tui.engine.buildah_output import BuildahOutputParser
from tui.engine.events import BuildStarted, Done, Event, Failed
from tui.engine.facts import SecurityFacts, facts_from_inspect
from tui.engine.plan import BuildPlan
from tui.engine.renderings import create_kwargs
from tui.engine.stores import prepare, release

EventSink = Callable[[Event], None]


class LogCursor:
    """Remembers how far the log was read: the last timestamp and how many lines carried it."""

    def __init__(self) -> None:
        self.stamp = ""
        self.count = 0
        self._epoch_cache: tuple[str, float] = ("", 0.0)

    def epoch(self, stamp: str) -> float:
        if stamp != self._epoch_cache[0]:
            self._epoch_cache = (stamp, datetime.fromisoformat(stamp).timestamp())
        return self._epoch_cache[1]

    def advance(self, stamp: str) -> None:
        if stamp == self.stamp:
            self.count += 1
        else:
            self.stamp, self.count = stamp, 1

    def since(self) -> int:
        """A ``since`` for re-reading: a second early, as podman compares whole seconds."""
        return int(self.epoch(self.stamp)) - 1 if self.stamp else 0

    def unseen(self, stamped: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        """Drops lines already delivered from a re-read that started at ``since()``."""
        if not self.stamp:
            yield from stamped
            return
        last = self.epoch(self.stamp)
        skip_same = self.count
        for stamp, line in stamped:
            if stamp == self.stamp and skip_same:
                skip_same -= 1
                continue
            if stamp != self.stamp and self.epoch(stamp) < last:
                continue
            yield stamp, line


def stamped_lines(frames: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """Splits podman's timestamped log frames into (timestamp, line); joins partial frames."""
    pending = b""
    for frame in frames:
        pending += frame
        if not pending.endswith(b"\n"):
            continue
        for raw in pending.split(b"\n")[:-1]:
            stamp, _, text = raw.decode("utf-8", "replace").partition(" ")
            yield stamp, text
        pending = b""
    if pending:
        stamp, _, text = pending.decode("utf-8", "replace").partition(" ")
        yield stamp, text


class BuildRunner:
    """Runs one plan. ``run()`` blocks and returns the Done event; ``cancel()`` is thread-safe."""

    def __init__(self, client: PodmanClient, plan: BuildPlan, on_event: EventSink) -> None:
        self.client = client
        self.plan = plan
        self.on_event = on_event
        self.parser = BuildahOutputParser()
        self.cursor = LogCursor()
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
        self._deliver(container.logs(stream=True, follow=True, timestamps=True), self.cursor)
        result = container.wait()
        exit_code = int(result if isinstance(result, int) else result.get("StatusCode", -1))
        # The follow stream may have ended early: read again from where it stopped.
        tail = container.logs(stream=False, timestamps=True, since=self.cursor.since())
        self._deliver(tail, None)
        return exit_code

    def _deliver(self, frames: Iterable[bytes], cursor: LogCursor | None) -> None:
        stamped = stamped_lines(frames)
        if cursor is None:
            stamped = self.cursor.unseen(stamped)
        for stamp, line in stamped:
            if cursor is not None:
                cursor.advance(stamp)
            for event in self.parser.feed(line, time.time()):
                self._emit(event)

    def _emit(self, event: Event) -> None:
        self.on_event(event)

    def _cleanup(self, state) -> list[str]:
        left: list[str] = []
        with self._lock:
            container, self._container = self._container, None
        if container is not None:
            try:
                container.remove(force=True)
            except Exception as exc:
                left.append(f"container {self.plan.container_name} ({exc})")
        if state is not None:
            left += release(self.client, state)
        return left


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
            container.remove(force=True)
        release(client, state)



