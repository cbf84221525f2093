"""Connecting to the podman API service, with a message that says how to fix it when it is down."""

from __future__ import annotations

import urllib.parse

from podman import PodmanClient

from tui.engine.errors import UserError


class PodmanUnavailable(UserError, RuntimeError):
    """The podman API service does not answer; the message says how to start it."""


def socket_path(url: str) -> str:
    return url.removeprefix("unix://") if url.startswith("unix://") else url


SCHEMES = ("unix", "http+unix", "ssh", "http+ssh", "tcp", "http")


def check_url(url: str) -> None:
    """Raises PodmanUnavailable unless ``url`` has the form of a podman service address."""
    parts = urllib.parse.urlsplit(url)
    where = parts.path if parts.scheme in ("unix", "http+unix") else parts.netloc
    if parts.scheme not in SCHEMES or not where:
        raise PodmanUnavailable(
            f"podman URL {url!r} is not a podman service address: use "
            "unix:///run/podman/podman.sock, ssh://USER@HOST/SOCKET or tcp://HOST:PORT "
            "(podman_url in config.toml, or BUILDCAGE_PODMAN_URL)")


def connect(url: str, identity: str = "", known_hosts: str = "") -> PodmanClient:
    """A client of the service at ``url``; ``ssh://`` goes through buildcage's own tunnel
    (tui.engine.ssh_tunnel: the host key checked, one ssh for the session)."""
    check_url(url)
    tunnel = None
    base_url = url
    if url.startswith(("ssh://", "http+ssh://")):
        from tui.engine.ssh_tunnel import SshTunnel, SshTunnelError

        try:
            tunnel = SshTunnel(url, identity=identity, known_hosts=known_hosts)
            base_url = tunnel.open()
        except SshTunnelError as exc:
            raise PodmanUnavailable(str(exc)) from exc
    try:
        client = PodmanClient(base_url=base_url, timeout=60)
        ok = client.ping()
    except Exception as exc:  # the client raises several types for "nobody there"
        if tunnel is not None:
            tunnel.close()
        raise PodmanUnavailable(_message(url, exc)) from exc
    if not ok:
        if tunnel is not None:
            tunnel.close()
        raise PodmanUnavailable(_message(url, None))
    TUNNELS[id(client)] = tunnel  # lives as long as the process (closed at exit)
    return client


TUNNELS: dict[int, object] = {}
"""The ssh tunnel behind each client connected through one (kept open)."""


def is_remote(client: object) -> bool:
    """Whether a client talks to a podman service on another host: through a tunnel of ours,
    or over TCP (a unix socket of this machine is local)."""
    if TUNNELS.get(id(client)) is not None:
        return True
    base = getattr(getattr(client, "api", None), "base_url", None)
    return getattr(base, "scheme", "http+unix") not in ("http+unix", "unix")


def _message(url: str, exc: BaseException | None) -> str:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    if not url.startswith("unix://"):
        return (f"podman API service does not answer at {url}{why}; check the address "
                "(podman_url in config.toml, or BUILDCAGE_PODMAN_URL) and that the service "
                "runs there; `buildcage doctor` checks the rest.")
    return (
        f"podman API service does not answer at {url}{why}. Start it with "
        f"`podman system service --time=0 unix://{socket_path(url)} &` "
        "or run provision/provision.sh; then `buildcage doctor` checks the rest."
    )
