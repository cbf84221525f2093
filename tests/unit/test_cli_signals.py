"""`buildcage build` on Ctrl-C, SIGTERM and SIGHUP (a closed terminal): the build is canceled and
cleaned up, and the exit status is 130; a signal in the first moments, before the runner exists,
is not lost. The CLI runs in a subprocess with an engine whose runner needs no podman."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_CLI = r'''
import sys, threading, time
from pathlib import Path
import tui.engine.session as session
from tui.engine.events import Done, LogLine

marker, mode, context = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


class FakeRunner:
    def __init__(self, on_event):
        self.on_event, self.stop = on_event, threading.Event()

    def cancel(self):
        self.stop.set()

    def run(self):
        sys.stderr.write("running\n")
        sys.stderr.flush()
        while not self.stop.wait(0.05):
            self.on_event(LogLine(line="working"))
        time.sleep(0.5)  # removing the builder takes a while: the process must wait for it
        marker.write_text("cleaned up")
        done = Done(status="canceled")
        self.on_event(done)
        return done


class FakeEngine(session.Engine):
    def plan(self, context, **options):
        if mode == "slow-plan":
            sys.stderr.write("planning\n")
            sys.stderr.flush()
            time.sleep(3)
        return super().plan(context, **options)

    def runner(self, plan, on_event, on="local", session=False):
        marker.write_text("runner made")
        return FakeRunner(on_event)


session.Engine = FakeEngine
from tui.cli import main
sys.exit(main(["build", context, *sys.argv[4:]]))
'''


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\n")
    return ctx


def start(tmp_path: Path, context: Path, mode: str, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    popen.setdefault("stdout", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", FAKE_CLI, str(tmp_path / "marker"), mode,
                             str(context), *args], stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, **popen)


def wait_for_line(proc: subprocess.Popen, text: str) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip() == text:
            return
    raise AssertionError(f"the CLI never said {text!r}")


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_build_cleans_up_and_exits_130(tmp_path, context, sig):
    proc = start(tmp_path, context, "run", "--json")
    wait_for_line(proc, "running")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (tmp_path / "marker").read_text() == "cleaned up"
    assert json.loads(out.splitlines()[-1])["status"] == "canceled"


def test_a_signal_before_the_runner_exists_cancels_before_anything_is_made(tmp_path, context):
    proc = start(tmp_path, context, "slow-plan", "--json")
    wait_for_line(proc, "planning")
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not (tmp_path / "marker").exists()  # no runner, so nothing to clean
    last = json.loads(out.splitlines()[-1])
    assert (last["event"], last["status"]) == ("done", "canceled")


def test_a_closed_terminal_does_not_stop_the_clean_up(tmp_path, context):
    """The build prints to a terminal that goes away: the kernel sends SIGHUP and every later
    write to it fails; the build is still canceled and cleaned up."""
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = start(tmp_path, context, "run", stdout=slave, preexec_fn=own_terminal)
    os.close(slave)
    wait_for_line(proc, "running")
    time.sleep(0.3)
    os.read(master, 65536)  # what it printed so far
    os.close(master)  # the terminal closes: SIGHUP to its session
    proc.wait(timeout=30)
    assert proc.returncode == 130
    assert (tmp_path / "marker").read_text() == "cleaned up"
