"""User-caused conditions around real builds end with a message and an exit code, never a
traceback, and never leave a builder behind: history that cannot be written, Ctrl-C before the
runner exists, and output into a pipe whose reader has gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, ROOT


@pytest.fixture(autouse=True)
def _real_host(provisioned):
    """Provisioned host; every test picks its own data directory."""


def env(data: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(data)}


def leftovers(project: str) -> str:
    return subprocess.run(["podman", "ps", "-a", "--filter", f"label=buildcage.project={project}",
                           "--format", "{{.Names}}"], capture_output=True, text=True,
                          timeout=120).stdout.strip()


def test_a_build_whose_history_cannot_be_written_succeeds(tmp_path, run_id):
    (tmp_path / "buildcage" / "history.sqlite3").mkdir(parents=True)  # not a database
    out = subprocess.run([sys.executable, "-m", "tui", "build", str(EXAMPLES / "hello"),
                          "--project", f"nohist-{run_id}"], capture_output=True, text=True,
                         env=env(tmp_path), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning: not recorded in history:" in out.stdout
    assert out.stdout.splitlines()[-1].startswith("buildcage: succeeded")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("delay", [0.15, 0.6, 1.5])
def test_ctrl_c_early_in_a_build_is_a_cancel_and_leaves_nothing(tmp_path, run_id, delay):
    project = f"early-{run_id}"
    proc = subprocess.Popen([sys.executable, "-m", "tui", "build", str(EXAMPLES / "hello"),
                             "--no-cache", "--project", project], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env(tmp_path), cwd=ROOT)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode == 0:
        pytest.skip("the build finished before the signal")  # a very fast machine
    assert proc.returncode == 130, out + err
    assert leftovers(project) == ""


def test_a_build_into_a_closed_pipe_finishes_and_cleans_up(tmp_path, run_id):
    project = f"pipe-{run_id}"
    read, write = os.pipe()
    os.close(read)  # `buildcage build ... | head -0`
    try:
        out = subprocess.run([sys.executable, "-m", "tui", "build", str(EXAMPLES / "hello"),
                              "--project", project], stdout=write, stderr=subprocess.PIPE,
                             text=True, env=env(tmp_path), cwd=ROOT, timeout=300)
    finally:
        os.close(write)
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
    assert out.returncode == 0  # the build itself went well
    assert leftovers(project) == ""
