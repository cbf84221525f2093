"""For every test directory: the signals the tests send reach the programs they start."""

from __future__ import annotations

import signal


def _deaf_but_not_inherited() -> None:
    """A test run started with SIGHUP, SIGINT or SIGTERM ignored (under ``nohup``, as a
    script's background job) would hand that to every program the tests start, and buildcage
    keeps a signal ignored at its start ignored (``tui.engine.signals.take_over``): each test
    that sends one would fail (8 did, in a clean-clone run under ``nohup ... &``). A handler
    that does nothing keeps this process as deaf as it was, and, unlike an ignored signal, is
    reset to the default in every program it starts."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, lambda *_: None)


_deaf_but_not_inherited()
