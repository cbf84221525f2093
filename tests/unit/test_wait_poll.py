"""Waiting for a container asks podman to look often enough.

podman's libpod ``wait`` polls the container's state; at its default interval (250 ms) it
answered 208 ms after the container exited, on average, against 69-87 ms at 50 ms (measured
here, podman 4.3.1). Every phase of every build waits once, so the default cost a warm build
in a session about a fifth of its time. These tests fail when a wait on a build's path goes
back to the default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tui.engine import containers
from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

pytestmark = pytest.mark.usefixtures("data_home")


def seconds(interval: str) -> float:
    """A Go duration of one unit ("50ms", "1s"), as podman parses ``interval``."""
    match = re.fullmatch(r"(\d+)(ms|s)", interval)
    assert match, f"not a duration podman reads: {interval!r}"
    return int(match[1]) / (1000 if match[2] == "ms" else 1)


class Box:
    def __init__(self) -> None:
        self.waits: list[dict[str, Any]] = []
        self.id = "box"

    def wait(self, **kwargs: Any) -> int:
        self.waits.append(kwargs)
        return 0

    def start(self) -> None:
        pass

    def remove(self, force: bool = False) -> None:
        pass


def test_a_phase_wait_polls_at_most_every_100_ms(context: Path) -> None:
    runner = BuildRunner(None, make_plan(context, config=Config(), profile="project",  # type: ignore[arg-type]
                                         project="p"), lambda event: None)
    box, outcome = Box(), []
    runner._wait(box, outcome, [])  # noqa: SLF001
    assert outcome == [0]
    assert [seconds(w["interval"]) <= 0.1 for w in box.waits] == [True], box.waits


def test_a_short_lived_helper_container_too() -> None:
    box = Box()

    class Client:
        class containers:  # noqa: N801 - podman-py's attribute
            @staticmethod
            def create(**_: Any) -> Box:
                return box

    containers.run_once(Client, {})
    assert [seconds(w["interval"]) <= 0.1 for w in box.waits] == [True], box.waits


def test_a_removal_refused_as_busy_is_asked_again_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removed together, phase containers often get "device or resource busy" from podman
    (2 of 3 here), and are gone a moment later (the next request: 404). A fixed quarter-second
    before asking again was most of a build's clean-up; the first retries come sooner, and the
    patience in all stays about as long as before (a few seconds)."""
    from podman.errors import NotFound

    slept: list[float] = []
    monkeypatch.setattr(containers.time, "sleep", slept.append)

    class Busy:
        def __init__(self, busy_times: int) -> None:
            self.left = busy_times

        def remove(self, force: bool = False) -> None:
            if self.left:
                self.left -= 1
                raise RuntimeError("removing container root filesystem: device or resource busy")
            raise NotFound("no such container")

    assert containers.remove_container(Busy(1)) == ""
    assert len(slept) == 1 and slept[0] <= 0.05
    slept.clear()
    assert "busy" in containers.remove_container(Busy(10_000))
    assert 3.0 <= sum(slept) <= 6.0


def test_every_container_wait_goes_through_wait_exit() -> None:
    """The waits of load's export, the layer reader, the overlay probe and doctor are on a
    person's path too: none calls podman-py's ``wait`` itself."""
    root = Path(containers.__file__).resolve().parents[1]
    here = Path(containers.__file__).resolve()  # wait_exit itself, and run_once (tested above)
    calls = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py"))
             if path.resolve() != here
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"(container|builder|probe)\w*\.wait\(", line)]
    assert calls == [], calls
    assert sum(path.read_text().count("wait_exit(") for path in root.rglob("*.py")) >= 6


@pytest.mark.parametrize("answer,code", [(0, 0), (3, 3), ({"StatusCode": 125}, 125),
                                         ({"Error": {"Message": "gone"}}, -1)])
def test_a_wait_gives_the_exit_code_whatever_form_podman_answers_in(answer: Any,
                                                                    code: int) -> None:
    """One place reads podman's answer to a wait (a number, or an object with StatusCode):
    every caller gets the exit code."""

    class Answers(Box):
        def wait(self, **kwargs: Any) -> Any:
            super().wait(**kwargs)
            return answer

    assert containers.wait_exit(Answers()) == code
