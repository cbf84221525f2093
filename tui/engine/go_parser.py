"""The Containerfile parser, loaded with the cancelling signals held.

The ``dockerfile`` package is BuildKit's parser in Go, built as a shared library: importing it
starts a Go runtime inside this process. A Ctrl-C (SIGINT, SIGTERM, SIGHUP) that arrived while
that runtime started crashed buildcage with SIGSEGV, or hung it (measured: about 1 in 150
Ctrl-Cs sent 0.08-0.2 s after start, on a loaded 2-CPU machine; the faulthandler's trace ends in
this import). So this thread blocks those signals while the library loads: one that comes
meanwhile waits, pending, and is delivered the moment they are unblocked, to Python's handler
as any other (``tests/unit/test_go_parser_signals.py``). The Go runtime's own threads start
with the mask they were made with and, in a shared library, leave blocked the signals Go does
not handle, so those signals keep going to Python's threads afterwards too.

Every module imports the parser from here (a test checks it): the first import is the one that
matters, and any module may be first.
"""

from __future__ import annotations

import signal

_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # (only read: a handler that raises
try:  # right after the block call could leave the signals blocked, outside the try)
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    import dockerfile
finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, _mask)

__all__ = ["dockerfile"]
