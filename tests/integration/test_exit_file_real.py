"""conmon's exit file on the real podman service (tui.engine.exit_file): found from the
container's own conmon, written when the container exits, equal to podman's answer, and not
mistaken for the next run's when a kept container starts again (a session builder's)."""

from __future__ import annotations

import time

from tui.engine.containers import remove_container, wait_exit
from tui.engine.exit_file import locate
from tui.engine.session import Engine


def run_to_exit(container, since: int) -> tuple[int, int]:
    """(the exit file's code, podman's) for one run of ``container``."""
    container.start()
    container.reload()
    exit_file = locate(container.attrs, container.id, since)
    assert exit_file is not None, container.attrs.get("State")
    assert exit_file.code() is None  # it sleeps first: still running
    deadline = time.monotonic() + 30
    while (code := exit_file.code()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return code, wait_exit(container)


def test_the_exit_file_says_what_podman_says_run_after_run(engine: Engine, run_id: str) -> None:
    client = engine.client()
    container = client.containers.create(
        image=engine.config.builder_image, command=["sh", "-c", "sleep 0.5; exit 7"],
        name=f"buildcage-test-exit-{run_id}", network_mode="none",
        labels={"buildcage.test": "exit-file"})
    try:
        assert run_to_exit(container, time.time_ns()) == (7, 7)
        # Started again, as a session starts its kept builder: the last run's file is not taken
        # for this one's (run_to_exit asserts None right after the start).
        assert run_to_exit(container, time.time_ns()) == (7, 7)
    finally:
        remove_container(container)
