"""Taking a signal over, unless whoever started this process asked for it to be ignored.

``nohup`` starts a command with SIGHUP ignored, and bash starts a script's background job
(``buildcage build ... &``) with SIGINT ignored: a closed terminal, or a Ctrl-C meant for the
foreground command, must not cancel that build. buildcage itself never sets a signal to be
ignored, so one that is ignored when a handler is about to be installed has been ignored since
the process started: it stays so. Every handler for SIGINT, SIGTERM and SIGHUP is installed
here (the CLI's, a build's, the TUI's, the debug shell's).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]


def take_over(sig: int, handler: Handler, previous: dict[int, Any] | None = None) -> None:
    """Installs ``handler`` for ``sig``, and records the one it replaces in ``previous`` (to be
    put back); does nothing while ``sig`` is ignored."""
    if signal.getsignal(sig) is signal.SIG_IGN:
        return
    old = signal.signal(sig, handler)
    if previous is not None:
        previous[sig] = old
