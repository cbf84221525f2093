"""Connecting to the podman API service, with a message that says how to fix it when it is down."""

from __future__ import annotations

from podman import PodmanClient


class PodmanUnavailable(RuntimeError):
    """The podman API service does not answer; the message says how to start it."""


def socket_path(url: str) -> str:
    return url.removeprefix("unix://") if url.startswith("unix://") else url


def connect(url: str) -> PodmanClient:
    client = PodmanClient(base_url=url, timeout=60)
    try:
        ok = client.ping()
    except Exception as exc:  # the client raises several types for "nobody there"
        raise PodmanUnavailable(_message(url, exc)) from exc
    if not ok:
        raise PodmanUnavailable(_message(url, None))
    return client


def _message(url: str, exc: BaseException | None) -> str:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return (
        f"podman API service does not answer at {url}{why}. Start it with "
        f"`podman system service --time=0 unix://{socket_path(url)} &` "
        "or run provision/provision.sh; then `buildcage doctor` checks the rest."
    )
