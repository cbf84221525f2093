"""Signals that end a buildcage process, turned into a cancel that cleans up.

A closed terminal, a dropped SSH session or a killed tmux sends SIGHUP; without a handler Python
dies at once and the builder container, its pins and its fresh store stay behind. ``main``
installs these handlers first thing, before anything slow, so that a signal in the first moments
is remembered and cancels the build as soon as there is one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from tui.engine.signals import take_over

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What cancels a headless build: Ctrl-C, ``kill``, a closed terminal."""
APP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What ends the TUI the clean way (Ctrl-C is a key there, not a signal)."""


def detach_from_terminal() -> None:
    """After a hang-up the terminal is gone and writing to it fails (EIO), which must not stop
    the clean-up: output that went to a terminal goes to /dev/null from now on. Pipes and files
    stay as they are (whoever reads them is still there)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        null_dev = os.fstat(null).st_rdev
        for fd in (1, 2):
            try:
                mode = os.fstat(fd)
            except OSError:
                continue
            if stat.S_ISCHR(mode.st_mode) and mode.st_rdev != null_dev:
                os.dup2(null, fd)
    finally:
        os.close(null)


class Interrupts:
    """Remembers the first cancelling signal and runs the registered cancels (each on its own
    thread: a cancel may block, a signal handler must not)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._cancels: list[Callable[[], None]] = []

    @property
    def canceled(self) -> bool:
        return self.received is not None

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        self.received = signum
        for cancel in list(self._cancels):
            threading.Thread(target=cancel, daemon=True).start()

    def on_cancel(self, cancel: Callable[[], None]) -> None:
        """Runs ``cancel`` on the next signal, or at once when one came already."""
        self._cancels.append(cancel)
        if self.received is not None:
            threading.Thread(target=cancel, daemon=True).start()

    @contextlib.contextmanager
    def installed(self, signals: Iterable[int] = CANCEL_SIGNALS) -> Iterator[Interrupts]:
        """These handlers while the block runs; the previous ones afterwards."""
        with _handlers(signals, self.handle):
            yield self


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGHUP:
        detach_from_terminal()
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupting(signals: Iterable[int] = APP_SIGNALS) -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C, so ``finally`` blocks (a probe
    removing its container) run before the process ends."""
    with _handlers(signals, _raise_interrupt):
        yield


@contextlib.contextmanager
def _handlers(signals: Iterable[int], handler: Callable[[int, FrameType | None], None]
              ) -> Iterator[None]:
    previous: dict[int, Any] = {}
    try:
        for sig in signals:
            take_over(sig, handler, previous)  # (not a signal ignored since the start)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
