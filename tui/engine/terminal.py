"""Running a command on the real terminal (the TUI suspended, or the CLI's own), with a way to
stop it from another thread, and optionally a line typed for the user at its first prompt.

podman-py has no attach, so an interactive container is a ``podman run -it`` subprocess. To put
a command at the shell's prompt, ready to edit or re-run, whatever the shell (busybox built
without saved history reads no history file), this process sits between the terminal and the
subprocess on a pseudo-terminal of its own and types the line once the shell is ready, as if
the user had: never a newline, so nothing runs until the user presses Enter.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Sequence

_ANSWER_RE = re.compile(rb"(?:\x1b\[[0-9;?>]*[Rcn])+")
"""Cursor position and device attribute reports a terminal sends back on its own."""
READY = b"\x1b]0;buildcage debug\x07"
"""What the shell's start prints last before the shell itself (it sets the terminal's title):
the line is typed once the output has been quiet for ``QUIET_S`` after it."""
QUIET_S = 0.3
STOP_GRACE_S = 1.0
"""A stopped command gets this long after SIGTERM. Killing the podman client costs nothing:
the container runs under conmon, and its owner removes it."""
EXIT_WAIT_S = 15.0
"""How long a command that closed the terminal may take to exit."""


def run_on_terminal(argv: Sequence[str], *, stop: threading.Event | None = None,
                    pretype: str = "") -> int:
    """Runs ``argv`` on this process's terminal (or whatever stdin/stdout are) and returns its
    exit status; ``stop`` set from another thread ends it (SIGTERM, then SIGKILL). ``pretype``
    (one line, no control characters) is typed at its first prompt when stdin is a terminal."""
    stop = stop or threading.Event()
    if pretype and _is_terminal() and shutil.which("setsid") and _typable(pretype):
        return _proxied(list(argv), stop, pretype.encode())
    try:
        process = subprocess.Popen(list(argv))
    except OSError as exc:
        print(f"buildcage: cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return _wait(process, stop)


def _typable(line: str) -> bool:
    return line.isprintable() and "\n" not in line


def _is_terminal() -> bool:
    try:
        return os.isatty(0) and os.isatty(1)
    except OSError:
        return False


def _wait(process: subprocess.Popen[bytes], stop: threading.Event) -> int:
    while True:
        try:
            return process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if stop.is_set():
                return _end(process)


def _end(process: subprocess.Popen[bytes]) -> int:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        return process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return process.wait()


def _size(fd: int) -> bytes:
    return fcntl.ioctl(fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))


def _proxied(argv: list[str], stop: threading.Event, line: bytes) -> int:
    """``argv`` on a pseudo-terminal of ours, its output copied to the real one and the real
    one's input to it; ``line`` typed once ``READY`` was seen and the output went quiet."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, _size(0))
    except OSError:
        pass
    try:
        # setsid -c: the pseudo-terminal becomes the command's controlling terminal (podman
        # follows its size with SIGWINCH); -w: setsid waits and gives the command's status.
        process = subprocess.Popen(["setsid", "-w", "-c", *argv], stdin=slave, stdout=slave,
                                   stderr=slave, close_fds=True)
    except OSError as exc:
        os.close(master)
        os.close(slave)
        print(f"buildcage: cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    os.close(slave)

    def resized(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, _size(0))

    saved = termios.tcgetattr(0)
    previous = signal.signal(signal.SIGWINCH, resized) \
        if threading.current_thread() is threading.main_thread() else None
    typed, ready, closed, last_output = False, False, False, time.monotonic()
    seen = b""
    try:
        tty.setraw(0)
        while not stop.is_set():
            readable, _, _ = select.select([0, master], [], [], 0.05)
            if master in readable:
                data = _read(master)
                if not data:
                    closed = True  # the command closed its terminal: it is ending
                    break
                if not _write(1, data):
                    break  # this terminal went away (a hang-up)
                last_output = time.monotonic()
                if not ready:
                    seen = (seen + data)[-256:]
                    ready = READY in seen
            if 0 in readable:
                data = _read(0)
                if not data or not _write(master, data):
                    break  # this terminal went away, or the command's
                # The user typed first: do not type over them. (A terminal's answers to the
                # shell's queries, such as busybox asking where the cursor is, are not typing.)
                typed = typed or not _ANSWER_RE.fullmatch(data)
            if ready and not typed and time.monotonic() - last_output > QUIET_S:
                _write(master, line)
                typed = True
    finally:
        with contextlib.suppress(termios.error, OSError):  # (a terminal that hung up)
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(master)  # the command's terminal hangs up, if it still runs
        if not closed and process.poll() is None:
            _end(process)  # stopped, hung up, or an error on the way: never left running
    try:  # podman removes its container (--rm), then exits
        return process.wait(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        return _end(process)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""  # EIO: the other side of the terminal is gone


def _write(fd: int, data: bytes) -> bool:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        return False
    return True
