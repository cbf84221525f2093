"""Stopping and removing builder containers, the careful way (see each function for why)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from podman.errors import NotFound

# Waits up to 5 s for Buildah to exist (a cancel can come before the script started it),
# then sends SIGTERM once to the main Buildah only (the child of the builder's shell, PID 1):
# its re-executed helpers, killed too, fail the step before Buildah can clean up.
_TERM_BUILDAH = (
    "for i in $(seq 50); do for d in /proc/[0-9]*; do "
    'read -r pid comm state ppid rest < "$d/stat" 2>/dev/null || continue; '
    '[ "$comm" = "(buildah)" ] && [ "$ppid" = 1 ] && { kill -TERM "$pid"; exit 0; }; '
    "done; sleep 0.1; done"
)


WAIT_POLL = "50ms"
"""How often the podman service looks whether a container has exited while ``wait`` blocks.
Its default, 250 ms, answered 208 ms after the exit on average here (podman 4.3.1, 8 runs);
50 ms answers in 69-87 ms (20 ms no sooner: 66-83 ms) and costs the service 0.25 s of CPU
per 10 s waited, against 0.07 s at 250 ms and 0.49 s at 20 ms (measured). Every phase of
every build waits once: about 0.13 s a phase. The compat (Docker) wait busy-polls: 6.3 s of
CPU over a 5 s wait, so never that one."""


def made_by_name(client: Any, name: str) -> Any:
    """The container called ``name``, after a create that failed: podman-py's create is a POST,
    then a GET of what it made, and when the GET fails the container exists. None when there
    is none (or no name), or podman cannot say."""
    if not name:
        return None
    try:
        return client.containers.get(name)
    except Exception:  # noqa: BLE001 - none was made, or the service is gone: as if none
        return None


def wait_exit(container: Any) -> int:
    """``container.wait()`` polled every WAIT_POLL: the exit code. podman answers a number, or
    an object with ``StatusCode`` (-1 when it has none)."""
    result = container.wait(interval=WAIT_POLL)
    return int(result if isinstance(result, int) else result.get("StatusCode", -1))


def stop_gracefully(container, timeout: float) -> None:
    """SIGTERM to Buildah, then wait, then kill.

    A killed Buildah leaves its working containers in the store it was using (the host's own
    store under host-rw, a project's store otherwise); on SIGTERM it fails the step and, with
    --force-rm, removes them itself.
    """
    try:
        container.exec_run(["sh", "-c", _TERM_BUILDAH])
    except Exception:  # noqa: BLE001, S110 - not running (yet, or any more): the kill below or run() handles it
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            container.reload()
        except Exception:  # noqa: BLE001 - gone, or podman gone: nothing left to wait for
            return  # removed already
        if container.attrs.get("State", {}).get("Status") != "running":
            return
        time.sleep(0.2)
    try:
        container.kill()
    except Exception:  # noqa: BLE001, S110 - exited between the check and the kill, or podman gone
        pass


def remove_container(container, attempts: int = 20) -> str:
    """Removes a container; returns "" or why it could not. Right after the builder exits,
    podman may still be unmounting its /dev/shm ("device or resource busy"); removed together,
    a build's phase containers got that for 2 of 3 here, each gone by the next request (404).
    So: asked again at once, then less and less often (20 ms doubling to 0.25 s, about 4 s in
    all); a fixed 0.25 s was most of a build's clean-up."""
    problem = ""
    for attempt in range(attempts):
        try:
            container.remove(force=True)
            return ""
        except NotFound:
            return ""
        except Exception as exc:  # noqa: BLE001 - busy, podman down...: retried, then returned as the reason
            problem = str(exc)
            time.sleep(min(0.25, 0.02 * 2 ** attempt))
    return problem


def run_once(client: Any, kwargs: dict[str, Any]) -> None:
    """Creates, starts and waits for a short-lived container (a sweeper running ``buildah rm``),
    then removes it, also when starting or waiting fails. podman's errors pass on."""
    container = client.containers.create(**kwargs)
    try:
        container.start()
        wait_exit(container)
    finally:
        remove_container(container)


def podman_time(stamp: str) -> float:
    """Epoch seconds of a time stamp in podman's inspect data ("Created", a volume's
    "CreatedAt", "StartedAt": RFC 3339 with nanoseconds); 0.0 for podman's zero time
    ("0001-01-01...") and for anything else it cannot read."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        head, _, _ = stamp.partition(".")
        try:
            return datetime.fromisoformat(head).timestamp()
        except ValueError:
            return 0.0
