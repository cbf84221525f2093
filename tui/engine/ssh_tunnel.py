"""An ``ssh://`` podman service, reached through one ssh tunnel buildcage owns.

podman-py can speak ``ssh://`` itself, but it starts one ``ssh`` per HTTP connection with
``StrictHostKeyChecking no``: it trusts whatever host answers (a man in the middle gets the
build's context, secrets and registry credentials), and a host whose key changed silently loses
its port forwarding. buildcage instead runs one ``ssh -N -L LOCAL:REMOTE`` with
``BatchMode=yes``: the host key must already be known (``ssh USER@HOST`` once, or
``podman_known_hosts`` in config.toml), nothing prompts, and the forwarded socket lives in a
private (0700) directory of this machine. The tunnel ends with buildcage: closed on exit, and a
watchdog ends it when buildcage's end of a pipe closes (also after SIGKILL).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tui.engine.errors import UserError
from tui.engine.text import visible

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]")
_WATCHDOG = ('exec 3<&0; ssh "$@" </dev/null & ssh=$!; '
             '(read -r _ <&3; kill "$ssh") 2>/dev/null & wait "$ssh"')
"""Runs ssh; when buildcage's end of stdin closes (it exited, however), ssh is ended too. (An
asynchronous list's stdin is /dev/null in sh: the pipe is read through fd 3.)"""


PREFIX = "buildcage-ssh-"
STALE_AFTER = 60.0
"""Seconds after which an empty tunnel directory is a killed buildcage's (a live tunnel's holds
its socket within a second or two)."""


def sweep_stale_dirs(base: Path, now: float | None = None) -> None:
    """Removes empty tunnel directories a killed buildcage left (its ssh is gone with it; the
    socket with ssh). A directory that still holds a socket is a live tunnel's: rmdir fails."""
    now = time.time() if now is None else now
    try:
        entries = list(base.glob(PREFIX + "*"))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.lstat()
            if entry.is_dir() and not entry.is_symlink() and info.st_uid == os.getuid() \
                    and now - info.st_mtime > STALE_AFTER:
                entry.rmdir()
        except OSError:
            continue  # not empty (alive), or gone meanwhile


class SshTunnelError(UserError, RuntimeError):
    """The ssh tunnel to a podman service could not be opened; the message says why."""


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int
    socket: str

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_ssh_url(url: str) -> SshTarget:
    """``ssh://[USER@]HOST[:PORT]/PATH/TO/podman.sock``; nothing in it may reach ssh as an
    option (a host like ``-oProxyCommand=...`` is refused)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ssh", "http+ssh"):
        raise SshTunnelError(f"{url!r} is not an ssh:// URL")
    user, host = parts.username or "", parts.hostname or ""
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise SshTunnelError(f"podman URL {url!r}: bad port") from exc
    if parts.password is not None:
        raise SshTunnelError(f"podman URL {url!r}: no passwords in the URL; use a key "
                             "(podman_identity in config.toml)")
    if user and not _USER.fullmatch(user):
        raise SshTunnelError(f"podman URL {url!r}: user name {user!r} is not allowed")
    bracketed = f"[{host}]" if ":" in host else host
    if not host or not _HOST.fullmatch(bracketed):
        raise SshTunnelError(f"podman URL {url!r}: host {host!r} is not a host name or address")
    path = parts.path
    if not path.startswith("/") or "\n" in path or ":" in path:
        raise SshTunnelError(f"podman URL {url!r} must end with the service's socket path, "
                             "e.g. ssh://root@build-host/run/podman/podman.sock")
    return SshTarget(user, host, port, path)


class SshTunnel:
    """One forwarded podman socket; ``open()`` gives the local ``unix://`` URL."""

    def __init__(self, url: str, identity: str = "", known_hosts: str = "",
                 timeout: float = 30.0) -> None:
        self.target = parse_ssh_url(url)
        self.identity = identity
        self.known_hosts = known_hosts
        self.timeout = timeout
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self, local_socket: str) -> list[str]:
        """ssh's arguments (after ``ssh``)."""
        args = ["-N", "-T", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                "-o", "StreamLocalBindUnlink=yes", "-o", "ServerAliveInterval=15",
                "-p", str(self.target.port), "-L", f"{local_socket}:{self.target.socket}"]
        if self.identity:
            args += ["-o", "IdentitiesOnly=yes", "-i", os.path.expanduser(self.identity)]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.known_hosts)}"]
        return [*args, "--", self.target.destination]

    def open(self) -> str:
        if shutil.which("ssh") is None:
            raise SshTunnelError("ssh:// needs the ssh client (Debian: apt-get install "
                                 "openssh-client)")
        if self.identity and not os.path.isfile(os.path.expanduser(self.identity)):
            raise SshTunnelError(f"podman_identity {self.identity!r} is not a file")
        base = os.environ.get("XDG_RUNTIME_DIR") or None
        sweep_stale_dirs(Path(base or tempfile.gettempdir()))
        self._dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))  # 0700
        local = str(self._dir / "podman.sock")
        self._proc = subprocess.Popen(
            ["sh", "-c", _WATCHDOG, "sh", *self.argv(local)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        atexit.register(self.close)
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(local):
            if self._proc.poll() is not None:
                proc = self._proc
                self.close()  # ends the watchdog's reader, the last other holder of stderr
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise SshTunnelError(
                    f"ssh to {self.target.destination} port {self.target.port} failed: "
                    f"{visible(err.strip()) or 'no message'} (the host key must be known: "
                    f"ssh -p {self.target.port} {self.target.destination} once, or set "
                    "podman_known_hosts; a key: podman_identity)")
            if time.monotonic() > deadline:
                self.close()
                raise SshTunnelError(f"ssh to {self.target.destination} gave no socket in "
                                     f"{self.timeout:.0f}s")
            time.sleep(0.05)
        return f"unix://{local}"

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # the watchdog ends ssh
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 15)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
