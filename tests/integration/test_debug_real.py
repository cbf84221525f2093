"""A shell where a build failed, against real podman: `buildcage debug` after a failed build
opens a shell in the state before the failing step (a file the step before wrote is there, the
failed command is in the history file, the step's ARG is set, the context is read-only, there
is no network), driven on stdin; its exit status is the shell's; nothing labelled with the
session is left afterwards, after a SIGHUP too, and what a SIGKILLed session left is collected
as an orphan (its working container swept from the project store)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from podman_helpers import ROOT

from tui.engine.orphans import Machine, collect, find_orphans

BUILDCAGE = [sys.executable, "-m", "tui"]
CONTAINERFILE = """FROM 127.0.0.1:5000/buildcage/busybox:latest
WORKDIR /app
COPY input.txt .
ARG GREETING=hello
RUN echo "$GREETING from the step before" > /app/before.txt
RUN echo "about to fail" && cat /app/missing.txt
RUN echo never
"""
FAILED = 'echo "about to fail" && cat /app/missing.txt'
SHELL_INPUT = """echo "HISTFILE=$HISTFILE"
cat "$HISTFILE"
echo "PWD=$(pwd)"
cat before.txt
echo "GREETING=$GREETING"
ls /buildcage/context
touch /buildcage/context/new 2>/dev/null && echo CONTEXT-WRITABLE || echo CONTEXT-READONLY
cat /proc/net/dev
nc -w 2 127.0.0.1 5000 </dev/null && echo NET-REACHED || echo NET-NONE
exit 7
"""


@pytest.fixture(autouse=True)
def _real_host(provisioned, data_home):
    """Stores, records and history in this session's data directory (XDG, for the CLI too)."""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUILDCAGE, *args], input=stdin, capture_output=True, text=True,
                          env=env(), cwd=ROOT, timeout=600)


def failed_build(tmp_path: Path, profile: str, project: str) -> Path:
    """A context whose third RUN fails, built (and failed) with ``profile``. Readable by
    everyone: a user-namespaced builder's root is no host user."""
    ctx = tmp_path / f"ctx-{profile}"
    ctx.mkdir()
    ctx.chmod(0o755)
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    (ctx / "input.txt").write_text("from the context\n")
    for path in ctx.iterdir():
        path.chmod(0o644)
    out = cli("build", str(ctx), "--profile", profile, "--project", project,
              "--build-arg", "GREETING=hi")
    assert out.returncode == 1, out.stderr
    assert "about to fail" in out.stdout
    return ctx


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True).stdout.strip()


def left_of(project: str) -> list[str]:
    """Containers and volumes of the project still in podman (every build and session)."""
    label = f"label=buildcage.project={project}"
    names = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").split()
    names += podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").split()
    return names


def working_containers(data_home: Path, profile: str, project: str) -> list[str]:
    path = (data_home / "buildcage" / "stores" / profile / project / "storage"
            / "overlay-containers" / "containers.json")
    if not path.exists():
        return []
    return [n for r in json.loads(path.read_text()) for n in r.get("names") or []]


def session_of(stderr: str) -> str:
    match = re.search(r"session ([0-9a-f]{12})", stderr)
    assert match, stderr
    return match[1]


def secrets_of(session: str) -> list[str]:
    return [n for n in podman("secret", "ls", "--format", "{{.Name}}").split()
            if n.startswith(f"buildcage-{session}-")]


@pytest.mark.parametrize("profile", ["host-ro", "isolated"])
def test_the_shell_sees_the_failed_steps_state_and_leaves_nothing(tmp_path, run_id, profile,
                                                                   data_home):
    project = f"dbg-{run_id}"
    ctx = failed_build(tmp_path, profile, project)
    began = time.monotonic()
    out = cli("debug", str(ctx), stdin=SHELL_INPUT)
    took = time.monotonic() - began
    print(f"debug session ({profile}): {took:.1f}s", file=sys.stderr)
    assert out.returncode == 7, out.stderr  # the shell's own exit status
    lines = out.stdout.splitlines()
    assert "HISTFILE=/buildcage/debug/history" in lines
    assert FAILED in lines  # the failed command, in the history file
    assert "PWD=/app" in lines  # the step's working directory
    assert "hi from the step before" in lines  # the step before ran, with the build's ARG
    assert "GREETING=hi" in lines  # the ARG the failing step saw
    assert {"Containerfile", "input.txt"} <= set(lines) and "CONTEXT-READONLY" in lines
    interfaces = [m[1] for line in lines if (m := re.match(r"\s*(\w+):\s+\d", line))]
    assert interfaces == ["lo"], out.stdout  # network none: only the loopback device
    assert "NET-NONE" in lines and "NET-REACHED" not in lines
    assert "buildcage debug: build" in out.stdout  # the banner, with the failed step
    if profile == "isolated":
        assert "rebuilt in" in out.stderr
    session = session_of(out.stderr)
    assert left_of(project) == []
    assert secrets_of(session) == []
    assert not any("debug-working-container" in n
                   for n in working_containers(data_home, profile, project))
    assert not (data_home / "buildcage" / "builds" / session).exists()


def start_debug(ctx: Path) -> tuple[subprocess.Popen[str], str]:
    """``buildcage debug`` with its stdin held open, once its shell is up (it answered on
    stdout); and the session's id (said on stderr before the shell)."""
    proc = subprocess.Popen([*BUILDCAGE, "debug", str(ctx)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write("echo SHELL-UP\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    out = err = ""
    while "SHELL-UP" not in out or "session " not in err:
        assert time.monotonic() < deadline, (out, err)
        ready, _, _ = select.select([proc.stdout, proc.stderr], [], [], 1.0)
        for stream in ready:
            line = stream.readline()
            assert line, f"the session ended: {out} {err}"
            if stream is proc.stdout:
                out += line
            else:
                err += line
    return proc, session_of(err)


def test_a_hang_up_ends_the_shell_and_removes_everything(tmp_path, run_id, data_home):
    project = f"dbg-hup-{run_id}"
    ctx = failed_build(tmp_path, "host-ro", project)
    proc, session = start_debug(ctx)
    assert any(n.endswith("-shell") for n in left_of(project))  # the shell is running
    assert any("debug-working-container" in n
               for n in working_containers(data_home, "host-ro", project))
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert left_of(project) == []
    assert secrets_of(session) == []
    assert not any("debug-working-container" in n
                   for n in working_containers(data_home, "host-ro", project))
    assert not (data_home / "buildcage" / "builds" / session).exists()


def test_what_a_killed_session_left_is_an_orphan_gc_collects(tmp_path, run_id, data_home):
    """SIGKILL: no clean-up at all. Its shell keeps running and holds its working container;
    the orphan collector (gc, or any build's start: on this shared podman, maybe another
    test's) removes them all, the working container swept from the project store."""
    project = f"dbg-kill-{run_id}"
    ctx = failed_build(tmp_path, "host-ro", project)
    proc, session = start_debug(ctx)
    assert any(n.endswith("-shell") for n in left_of(project))
    assert any("debug-working-container" in n
               for n in working_containers(data_home, "host-ro", project))
    proc.kill()
    proc.wait(timeout=30)
    from podman import PodmanClient

    with PodmanClient(base_url="unix:///run/podman/podman.sock") as client:
        mine = [o for o in find_orphans(client, Machine.here()) if o.build_id == session]
        report = collect(client, mine)
    assert report.left == [], report.left
    deadline = time.monotonic() + 60  # another collector may be halfway through it
    while left_of(project) and time.monotonic() < deadline:
        time.sleep(1)
    assert left_of(project) == []
    assert not any("debug-working-container" in n
                   for n in working_containers(data_home, "host-ro", project))
    assert secrets_of(session) == []
    assert not (data_home / "buildcage" / "builds" / session).exists()
    proc.communicate(timeout=30)  # its podman client ended with the container
