"""The terminal proxy under a debug shell, on real pseudo-terminals (no podman): the failed
command is typed at the first prompt but never run until Enter, a terminal's own answers to a
query do not count as the user typing, and a hang-up or a stop ends the command."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from tui.engine.terminal import READY, run_on_terminal

ROOT = Path(__file__).resolve().parents[2]
# The "shell": says it is ready (as the debug shell's start does), asks where the cursor is
# (as busybox does), then reads one line and says what it got.
SHELL = ("printf '" + READY.decode().replace("\x1b", "\\033").replace("\x07", "\\007")
         + "'; printf '$ \\033[6n'; IFS= read -r line; echo \"got[$line]\"")
PROXY = ("import sys; from tui.engine.terminal import run_on_terminal; "
         "sys.exit(run_on_terminal(['sh', '-c', sys.argv[1]], pretype=sys.argv[2]))")


def read_until(fd: int, wanted: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def proxy_on_a_terminal(script: str, pretype: str) -> tuple[subprocess.Popen[bytes], int]:
    """The proxy in a child process whose terminal is a pseudo-terminal this test drives."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", PROXY, script, pretype], stdin=slave,
                            stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    return proc, master


def test_the_command_is_typed_at_the_prompt_and_runs_only_on_enter():
    proc, master = proxy_on_a_terminal(SHELL, "make && make install")
    try:
        seen = read_until(master, b"\x1b[6n")
        os.write(master, b"\x1b[3;1R")  # the terminal answers the query: not typing
        seen += read_until(master, b"make && make install")
        time.sleep(0.5)
        ready, _, _ = select.select([master], [], [], 0.2)
        later = os.read(master, 4096) if ready else b""
        assert b"got[" not in seen + later  # typed, not run
        os.write(master, b"\r")
        seen += read_until(master, b"]")
        # (sh's plain read takes the terminal's answer as input too; a line editor would not)
        assert b"make && make install]" in seen, seen
        assert proc.wait(timeout=20) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_what_the_user_types_first_is_not_typed_over():
    proc, master = proxy_on_a_terminal(SHELL, "make")
    try:
        read_until(master, b"\x1b[6n")
        os.write(master, b"ls\r")
        seen = read_until(master, b"]")
        assert b"got[ls]" in seen, seen
        assert proc.wait(timeout=20) == 0
    finally:
        os.close(master)


def test_a_hang_up_ends_the_command():
    """The terminal goes away: the command under the proxy does not run on (the proxy ends
    it; were the proxy gone too, its terminal's hang-up would)."""
    marker = f"sleep 3000.{os.getpid()}"  # what the command's process is called
    script = f"printf ready; exec {marker}"
    proc, master = proxy_on_a_terminal(script, "x")
    read_until(master, b"ready")
    os.close(master)  # the terminal hangs up
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the command outlived its terminal"
        time.sleep(0.2)


def test_stop_ends_a_command_that_runs_on_this_process_terminal():
    marker = f"sleep 3001.{os.getpid()}"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    code = run_on_terminal(marker.split(), stop=stop)
    assert code != 0
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1
