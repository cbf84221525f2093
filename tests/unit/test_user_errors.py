"""Every condition a person caused ends with a message and an exit code, never a traceback:
0 success, 1 failed build, 2 bad input, 130 cancelled. Real processes, no podman needed (a
podman URL nobody answers, or a socket that never answers, stands in for the service)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tui.engine.history import BuildRecord, History

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "data"),
            "BUILDCAGE_PODMAN_URL": f"unix://{tmp_path}/nobody.sock", **extra}


def run(tmp_path: Path, *args: str, stdout=subprocess.PIPE, **extra: str,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env=env(tmp_path, **extra), timeout=60)


def no_traceback(out: subprocess.CompletedProcess[str] | str) -> None:
    text = out if isinstance(out, str) else out.stderr
    assert "Traceback" not in text and "Exception ignored" not in text, text


def test_a_typo_in_the_verb_is_an_unknown_command(tmp_path):
    out = run(tmp_path, "histroy")
    assert out.returncode == 2
    assert "unknown command 'histroy' (did you mean history?)" in out.stderr
    no_traceback(out)


def test_a_missing_start_directory_is_named(tmp_path):
    out = run(tmp_path, str(tmp_path / "nonexistent"))
    assert out.returncode == 2
    assert f"directory '{tmp_path}/nonexistent' does not exist" in out.stderr
    no_traceback(out)


def test_unwritable_data_home_cannot_open_history(tmp_path):
    out = run(tmp_path, "history", XDG_DATA_HOME="/dev/null")
    assert out.returncode == 2 and "cannot open build history" in out.stderr
    no_traceback(out)


@pytest.mark.parametrize(("args", "says"), [
    (("history",), "cannot open build history"),
    (("plan", str(HELLO)), "cannot write the build's files under /dev/null"),
    (("build", str(HELLO)), "cannot write the build's files under /dev/null"),
])
def test_an_unusable_home_is_named(tmp_path, args, says):
    environment = env(tmp_path, HOME="/dev/null")
    del environment["XDG_DATA_HOME"]
    out = subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                         cwd=ROOT, env={k: v for k, v in environment.items()
                                        if k not in ("XDG_CONFIG_HOME", "BUILDCAGE_CONFIG")},
                         timeout=60)
    assert out.returncode == 2 and says in out.stderr, out.stderr
    no_traceback(out)


def test_a_corrupt_history_database_is_named(tmp_path):
    path = tmp_path / "data" / "buildcage" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all" * 100)
    out = run(tmp_path, "history")
    assert out.returncode == 2 and str(path) in out.stderr
    no_traceback(out)


def test_a_history_table_gone_bad_is_named(tmp_path):
    path = tmp_path / "data" / "buildcage" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    History(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE steps")
    db.commit()
    out = run(tmp_path, "history")
    assert out.returncode == 2 and str(path) in out.stderr
    no_traceback(out)


def broken_pipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Like ``buildcage ARGS | head -1`` once head has gone: every write fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return run(tmp_path, *args, stdout=write)
    finally:
        os.close(write)


def test_history_into_a_closed_pipe(tmp_path):
    with History(tmp_path / "data" / "buildcage" / "history.sqlite3") as history:
        for i in range(3):
            history.add(BuildRecord(started_at=1.0e9 + i, profile="host-ro", context="/c",
                                    status="succeeded"))
    out = broken_pipe(tmp_path, "history")
    no_traceback(out)
    assert out.returncode == 141  # 128 + SIGPIPE, as a shell reports a writer head closed


@pytest.mark.parametrize("fmt", ["podman", "kube", "json"])
def test_plan_into_a_closed_pipe(tmp_path, fmt):
    out = broken_pipe(tmp_path, "plan", str(HELLO), "--format", fmt, "--profile", "project")
    no_traceback(out)
    assert out.returncode == 141


def containerfile(tmp_path: Path, data: bytes) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_bytes(data)
    return ctx


@pytest.mark.parametrize("verb", ["plan", "build"])
def test_a_latin1_containerfile_names_the_byte_and_line(tmp_path, verb):
    ctx = containerfile(tmp_path, b"FROM scratch\nRUN echo caf\xe9\n")
    out = run(tmp_path, verb, str(ctx), "--profile", "isolated")
    assert out.returncode == 2, out.stderr
    assert "line 2" in out.stderr and "0xe9" in out.stderr and "UTF-8" in out.stderr
    no_traceback(out)


@pytest.mark.parametrize("verb", ["plan", "build"])
def test_a_containerfile_buildcage_cannot_read_is_bad_input(tmp_path, verb):
    ctx = containerfile(tmp_path, b"FROM a b c d\n")
    out = run(tmp_path, verb, str(ctx))
    assert out.returncode == 2, out.stderr
    assert "line 1" in out.stderr and "FROM IMAGE [AS NAME]" in out.stderr
    no_traceback(out)


@pytest.mark.parametrize("url", ["http://x", "garbage", "tcp://", "unix://"])
def test_a_bad_podman_url_is_bad_input(tmp_path, url):
    out = run(tmp_path, "build", str(HELLO), BUILDCAGE_PODMAN_URL=url)
    assert out.returncode == 2, out.stderr
    assert url in out.stderr and "podman" in out.stderr
    assert f"unix://{url}" not in out.stderr  # no advice to start a service at a non-path
    no_traceback(out)


class SilentService:
    """A unix socket that accepts and never answers: a hung podman service."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def python_startup(err: str) -> bool:
    """The signal came while Python itself was starting (its site module), before any of
    buildcage ran: nothing buildcage can catch."""
    return "<frozen site>" in err and "/tui/" not in err


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, 0.3, 0.5, 1.0])
def test_ctrl_c_before_the_runner_exists_is_a_cancel(tmp_path, delay):
    service = SilentService(tmp_path / "hung.sock")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "build", str(HELLO)], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env(tmp_path, BUILDCAGE_PODMAN_URL=f"unix://{tmp_path}/hung.sock"))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # Python's site module swallows an exception raised while it runs a .pth file
            # (this checkout's editable install has one): it says "Error processing line" and
            # starts buildcage, which never saw the Ctrl-C and waits for the silent service.
            proc.kill()
            _, err = proc.communicate()
            assert delay < 0.3 and python_startup(err), err
            return
    finally:
        service.close()
    if delay < 0.3 and (proc.returncode == -signal.SIGINT or python_startup(err)):
        return  # a loaded machine was still starting the interpreter
    no_traceback(err)
    assert proc.returncode == 130, err
    assert "buildcage: canceled" in err or delay < 0.3  # (quiet while importing the CLI)


def test_ctrl_c_before_the_runner_ends_json_output_with_done(tmp_path):
    service = SilentService(tmp_path / "hung.sock")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "build", str(HELLO), "--json"], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env(tmp_path, BUILDCAGE_PODMAN_URL=f"unix://{tmp_path}/hung.sock"))
        time.sleep(1.0)  # connecting to the service that never answers
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        service.close()
    no_traceback(err)
    assert proc.returncode == 130
    assert json.loads(out.splitlines()[-1])["status"] == "canceled"


@pytest.mark.parametrize("ignored", [signal.SIGHUP, signal.SIGINT], ids=["nohup", "script-bg"])
def test_a_signal_ignored_when_buildcage_started_stays_ignored(tmp_path, ignored):
    """``nohup buildcage build ...`` starts it with SIGHUP ignored, a script's ``buildcage
    build ... &`` with SIGINT ignored: whoever started it asked for that, and a closed terminal
    (or a Ctrl-C meant for the foreground command) must not cancel the build. SIGTERM still
    does."""
    service = SilentService(tmp_path / "hung.sock")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "build", str(HELLO)], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(ignored, signal.SIG_IGN),
            env=env(tmp_path, BUILDCAGE_PODMAN_URL=f"unix://{tmp_path}/hung.sock"))
        deadline = time.monotonic() + 30
        while not service.held and time.monotonic() < deadline:
            time.sleep(0.05)  # until it waits for the service: its handlers are in place
        assert service.held, "buildcage never called the service"
        proc.send_signal(ignored)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        service.close()
    no_traceback(err)
    assert proc.returncode == 130 and "buildcage: canceled" in err


def test_a_builds_cancel_handlers_leave_an_ignored_signal_ignored() -> None:
    """The build's own handlers (``Interrupts.installed``, from the runner's start to its end)
    keep what the process started with ignored (nohup's SIGHUP), as main's early ones do."""
    from tui.interrupts import CANCEL_SIGNALS, Interrupts

    before = {sig: signal.getsignal(sig) for sig in CANCEL_SIGNALS}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it
        with Interrupts().installed(CANCEL_SIGNALS):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]  # (its own)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
