"""From the build's thread to the UI in batches, the way toolong feeds its log view.

The runner calls ``EventBatcher`` once per event on its own thread; the batcher keeps them in a
list and posts one ``BuildEvents`` message per ~50 ms (and at once for ``Done``). A build that
prints a million lines costs the UI a few hundred messages, not a million. The screen's timer
calls ``flush`` too, so lines that arrive just before a quiet spell are not held back.

One batch at a time: the next is posted only once the screen says it ``handled`` the last. A
Textual screen takes the messages already in its queue one after the other without returning to
the event loop, so when batches came faster than the screen drew them (a RUN printing a million
lines), ten of them queued up and ran back to back: no timer, no frame, no key for 300-500 ms.
Events that arrive meanwhile wait in the batcher and go in the next batch, which costs the
screen no more than a small one: the log writes the last lines it can hold, not all of them.

A ``LogLine`` is kept as its text only (``LogLines``, a list of strings): the event object dies at
once. Strings are no work for the garbage collector; tens of thousands of event objects waiting
in a batch were: they outlived the youngest generation, were promoted, and the full collections
they set off (15 in a million-line build, up to 350 ms each on the runner's thread, which holds
the GIL meanwhile) were the UI's worst stalls (268 ms median of 3 before, 150 ms after, in
the bench of 2026-11-29).

The screen goes first in a flood (``wait_s``): while a batch is on its way and ``wait_after``
events came meanwhile, the runner's thread waits for the screen to say it drew it, at most
``wait_s`` once per batch. Both are Python threads: while
the screen applied a batch and drew its frame, the runner (parsing a million lines as fast as
they came) took the GIL from it every 5 ms, and each frame took about 1.6 times its CPU time on
the wall clock (profiled: 2.4 s of frames for 1.5 s of CPU in one build). Waiting costs the
build next to nothing, as one GIL runs the two one at a time anyway: the million-line build took
7.5-11.7 s with it and 5.8-13.0 s without (this VM's noise), and its worst stall was 86 ms with
it, 139 ms without (bench/micro.py's replayed stream, median of 4 each, interleaved, load 3.3;
a real build's output waits in podman's stream meanwhile). Once a batch is handled, the runner
gets a whole ``interval`` before the next one is posted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from tui.engine.events import Done, Event, LogLine

BATCH_S = 0.05


class LogLines(list[str]):
    """The text of consecutive ``LogLine`` events, in order (their times are not kept), after
    ``dropped`` earlier ones of the same run that the batcher did not keep."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0


class BuildEvents(Message):
    """A batch of build events in the order the runner sent them, each run of log lines as one
    ``LogLines``."""

    def __init__(self, events: list[Event | LogLines]) -> None:
        super().__init__()
        self.events = events


class EventBatcher:
    def __init__(self, post: Callable[[Message], object], interval: float = BATCH_S,
                 clock: Callable[[], float] = time.monotonic, keep_lines: int = 0,
                 wait_s: float = 0.0, wait_after: int = 1000) -> None:
        self._post = post
        """A thread-safe post_message (Textual's is)."""
        self._keep = keep_lines
        """Lines of a run worth keeping (the most the log shows; 0: all): while the screen is
        busy, a fast build's lines pile up here, and only the last ones are ever shown."""
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._buffer: list[Event | LogLines] = []
        self._lines: LogLines | None = None
        """The run of log lines being added to: the buffer's last item, or None."""
        self._last = clock()
        self._in_flight = False
        """A batch was posted and the screen has not handled it yet."""
        self.batches = 0
        """Messages posted so far (the million-line test checks it stays small)."""
        self._wait_s = wait_s
        """How long the runner may wait for the screen to handle a batch (0: never waits)."""
        self._wait_after = wait_after
        """... once this many events came while the batch was on its way: a flood, whose
        runner would take the GIL from the screen. A build printing at its own pace loses
        the time it waits (a replay of 2000 lines, 1 ms apart, took 11.5 s waiting for every
        batch, 5.9 s without)."""
        self._since_flush = 0
        """Events since the last batch was posted."""
        self._waited = threading.Event()
        """Set once the runner need not wait for the batch in flight (none is, the screen has
        handled it, or the runner waited ``wait_s`` for it already)."""
        self._waited.set()

    def __call__(self, event: Event) -> None:
        """The runner's ``on_event``; called on the runner's thread."""
        with self._lock:
            if type(event) is LogLine:
                if self._lines is None:
                    self._lines = LogLines()
                    self._buffer.append(self._lines)
                self._lines.append(event.line)
                if self._keep and len(self._lines) >= 2 * self._keep:
                    cut = len(self._lines) - self._keep
                    del self._lines[:cut]
                    self._lines.dropped += cut
            else:
                self._lines = None
                self._buffer.append(event)
            self._since_flush += 1
            if not self._in_flight:
                now = self._clock()
                if isinstance(event, Done) or now - self._last >= self._interval:
                    self._flush(now)
                return
            flood = self._since_flush >= self._wait_after
        if self._wait_s and flood and not self._waited.is_set():
            # Outside the lock: the screen's handled() takes it.
            self._waited.wait(self._wait_s)
            self._waited.set()  # (a screen that never answers costs one wait per batch)

    def flush(self) -> None:
        """Post what is buffered, unless a batch is still on its way; safe from any thread."""
        with self._lock:
            if self._buffer and not self._in_flight:
                self._flush(self._clock())

    def handled(self) -> None:
        """The screen is done with the last batch: the next may be posted (by the next event,
        or the next ``flush``) once an ``interval`` has passed, and the runner goes on."""
        with self._lock:
            self._in_flight = False
            self._last = self._clock()  # the runner's turn: a whole interval
            self._waited.set()

    def _flush(self, now: float) -> None:
        # Posting under the lock keeps batches in event order whichever thread flushes.
        batch, self._buffer, self._lines = self._buffer, [], None
        self._last = now
        self._in_flight = True
        self._since_flush = 0
        self._waited.clear()
        self.batches += 1
        self._post(BuildEvents(batch))
