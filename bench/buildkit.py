"""Docker + BuildKit, the socket-mounting way people use today, as a contestant.

Debian's docker.io (installed when missing), its own dockerd on a private socket and private
directories, no bridge and no iptables rules (this machine allows loopback traffic only): builds
use ``--network host``. The base image is loaded from podman (no registry login needed). The
daemon is stopped afterwards; where it cannot start, the row is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

RUN = Path("/run/buildcage-bench")
DATA = Path("/var/lib/buildcage-bench/docker")
SOCKET = RUN / "docker.sock"
DOCKER = "/usr/bin/docker"
"""Debian's client, matching its daemon (another docker on PATH may want buildx)."""


class Unavailable(RuntimeError):
    """BuildKit cannot run here; the message says why (it goes into results.md)."""


class BuildKit:
    def __init__(self, base: str) -> None:
        self.base = base
        self.daemon: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}", "DOCKER_BUILDKIT": "1"}

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            self._install()
        RUN.mkdir(parents=True, exist_ok=True)
        DATA.mkdir(parents=True, exist_ok=True)
        log = open(RUN / "dockerd.log", "wb")  # noqa: SIM115 - the daemon's, closed with it
        self.daemon = subprocess.Popen(
            ["dockerd", "--host", f"unix://{SOCKET}", "--data-root", str(DATA),
             "--exec-root", str(RUN / "exec"), "--pidfile", str(RUN / "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip6tables=false",
             "--containerd-namespace", "buildcage-bench",
             "--containerd-plugins-namespace", "buildcage-bench-plugins"],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 60
        while subprocess.run([DOCKER, "info"], env=self.env, capture_output=True).returncode:
            if self.daemon.poll() is not None or time.time() > deadline:
                tail = (RUN / "dockerd.log").read_text(errors="replace")[-600:]
                self.stop()
                raise Unavailable(f"dockerd did not start: {tail.strip()}")
            time.sleep(0.5)
        save = subprocess.Popen(["podman", "save", self.base], stdout=subprocess.PIPE)
        loaded = subprocess.run([DOCKER, "load"], stdin=save.stdout, env=self.env,
                                capture_output=True, text=True)
        save.wait()
        if loaded.returncode:
            self.stop()
            raise Unavailable(f"docker load of {self.base} failed: {loaded.stderr.strip()}")

    @staticmethod
    def _install() -> None:
        result = subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io"],
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                                capture_output=True, text=True)
        if result.returncode or shutil.which("dockerd") is None:
            raise Unavailable(f"docker.io could not be installed: {result.stderr.strip()[-300:]}")

    def build(self, context: Path, cold: bool) -> float:
        argv = [DOCKER, "build", "--network", "host", "-q", "-t", "bench/buildkit:latest"]
        if cold:
            argv.append("--no-cache")
        start = time.perf_counter()
        result = subprocess.run([*argv, "-f", str(context / "Containerfile"), str(context)],
                                env=self.env, capture_output=True,
                                text=True)
        seconds = time.perf_counter() - start
        if result.returncode:
            raise Unavailable(f"docker build failed: {result.stderr.strip()[-400:]}")
        return seconds

    def stop(self) -> None:
        if self.daemon is None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.daemon = None
