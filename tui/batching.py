"""From the build's thread to the UI in batches, the way toolong feeds its log view.

The runner calls ``EventBatcher`` once per event on its own thread; the batcher keeps them in a
list and posts one ``BuildEvents`` message per ~50 ms (and at once for ``Done``). A build that
prints a million lines costs the UI a few dozen messages, not a million. The screen's timer calls
``flush`` too, so lines that arrive just before a quiet spell are not held back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from tui.engine.events import Done, Event

BATCH_S = 0.05


class BuildEvents(Message):
    """A batch of build events, in the order the runner sent them."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events


class EventBatcher:
    def __init__(self, post: Callable[[Message], object], interval: float = BATCH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._post = post
        """A thread-safe post_message (Textual's is)."""
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._buffer: list[Event] = []
        self._last = clock()
        self.batches = 0
        """Messages posted so far (the million-line test checks it stays small)."""

    def __call__(self, event: Event) -> None:
        """The runner's ``on_event``; called on the runner's thread."""
        with self._lock:
            self._buffer.append(event)
            now = self._clock()
            if isinstance(event, Done) or now - self._last >= self._interval:
                self._flush(now)

    def flush(self) -> None:
        """Post what is buffered; safe from any thread."""
        with self._lock:
            if self._buffer:
                self._flush(self._clock())

    def _flush(self, now: float) -> None:
        # Posting under the lock keeps batches in event order whichever thread flushes.
        batch, self._buffer = self._buffer, []
        self._last = now
        self.batches += 1
        self._post(BuildEvents(batch))
