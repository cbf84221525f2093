"""For tests of code that must not block (a FIFO opened without O_NONBLOCK waits for a writer:
forever)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def in_time(call: Callable[[], Any], seconds: float = 5.0) -> Any:
    """``call()``'s result, or a test failure if it has not returned in ``seconds`` (the call
    goes on in a daemon thread, which dies with the test process)."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still blocked after {seconds} s"
    return out[0]
