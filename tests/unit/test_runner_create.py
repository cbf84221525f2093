"""A phase container that podman made but whose inspect failed is still removed with the
build's others (review L2, session 6: podman-py's create is a POST and then a GET; when the GET
failed, the container existed and the runner did not know it)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

pytestmark = pytest.mark.usefixtures("data_home")


class Box:
    def __init__(self, name: str) -> None:
        self.name = self.id = name


class Containers:
    """podman's containers: ``create`` makes one, then its inspect fails."""

    def __init__(self, inspect_fails: bool) -> None:
        self.made: dict[str, Box] = {}
        self.inspect_fails = inspect_fails

    def create(self, **kwargs: Any) -> Box:
        self.made[kwargs["name"]] = Box(kwargs["name"])
        if self.inspect_fails:
            raise RuntimeError("the service went away between the POST and the GET")
        return self.made[kwargs["name"]]

    def get(self, name: str) -> Box:
        return self.made[name]


class Runner(BuildRunner):
    def __init__(self, plan: Any, containers: Containers) -> None:
        super().__init__(SimpleNamespace(containers=containers), plan,  # type: ignore[arg-type]
                         lambda event: None)
        self.removed: list[str] = []

    def _remove_builder(self, container: Any) -> str:
        self.removed.append(container.name)
        return ""


def made_ahead(runner: BuildRunner, spec: Any) -> Any:
    """The container ``runner`` made ahead for ``spec``, as the phase takes it."""
    runner._upcoming = spec  # noqa: SLF001
    runner._make_ahead()  # noqa: SLF001
    return runner._take_ahead(spec)  # noqa: SLF001


def test_a_container_made_whose_inspect_failed_is_removed(context: Path) -> None:
    plan = make_plan(context, config=Config(), profile="project", project="p")
    containers = Containers(inspect_fails=True)
    runner = Runner(plan, containers)
    spec = plan.phase("build")
    with pytest.raises(RuntimeError, match="went away"):
        runner._create(spec)  # noqa: SLF001
    assert runner._cleanup(None) == []  # noqa: SLF001
    assert runner.removed == [spec.container_name] == list(containers.made)


def test_a_container_made_ahead_whose_inspect_failed_is_the_phases(context: Path) -> None:
    """Made ahead (``makes_ahead``) on another thread: the phase takes the adopted container;
    making it again under the same name, podman refuses (409: the name is in use)."""
    plan = make_plan(context, config=Config(), profile="isolated", project="p")
    containers = Containers(inspect_fails=True)
    runner = Runner(plan, containers)
    spec = plan.phase("build")
    taken = made_ahead(runner, spec)
    assert taken is containers.made[spec.container_name]


def test_a_fresh_volume_that_cannot_be_found_fails_the_build_saying_so(context: Path) -> None:
    """An isolated build with nothing to publish reads its volume here; a volume podman does
    not show fails the build with that reason, not as a builder that built no image."""
    from tui.engine.runner import StoreVolumeError

    class Volumes:
        def get(self, name: str) -> Any:
            raise RuntimeError(f"no such volume {name}")

    plan = make_plan(context, config=Config(), profile="isolated", project="p")
    runner = BuildRunner(SimpleNamespace(volumes=Volumes()), plan,  # type: ignore[arg-type]
                         lambda event: None)
    with pytest.raises(StoreVolumeError, match=f"volume {plan.store_volume} cannot be read"):
        runner._store_root()  # noqa: SLF001


class Initialized(Box):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: list[str] = []

    def init(self) -> None:
        self.calls.append("init")


class Made(Containers):
    def create(self, **kwargs: Any) -> Box:
        self.made[kwargs["name"]] = Initialized(kwargs["name"])
        return self.made[kwargs["name"]]


@pytest.mark.parametrize("remote", [False, True])
def test_a_container_made_ahead_is_initialized_ahead_on_this_machine(
        context: Path, remote: bool) -> None:
    """podman's init does a start's work but the process's: namespaces, mounts, the runtime's
    container (measured here: a start 91 ms, after an init 17 ms). Made ahead while the phase
    before runs, the next phase starts that much sooner. Nothing of the image runs before
    ``start``. A remote service's container gets this machine's files copied in first
    (``copy_in``), so it is only made."""
    plan = make_plan(context, config=Config(), profile="isolated", project="p", remote=remote)
    assert plan.remote == remote
    containers = Made(inspect_fails=False)
    runner = Runner(plan, containers)
    spec = plan.phase("build")
    taken = made_ahead(runner, spec)
    assert isinstance(taken, Initialized)
    assert taken.calls == ([] if remote else ["init"])


def test_a_container_whose_init_failed_is_still_the_phases(context: Path) -> None:
    """An init that fails leaves the container as made: its start does the init again and
    says what is wrong there."""

    class Refused(Initialized):
        def init(self) -> None:
            super().init()
            raise RuntimeError("crun: no")

    class RefusedMade(Containers):
        def create(self, **kwargs: Any) -> Box:
            self.made[kwargs["name"]] = Refused(kwargs["name"])
            return self.made[kwargs["name"]]

    plan = make_plan(context, config=Config(), profile="isolated", project="p")
    runner = Runner(plan, RefusedMade(inspect_fails=False))
    spec = plan.phase("build")
    runner._upcoming = spec  # noqa: SLF001
    runner._make_ahead()  # noqa: SLF001
    ahead = runner._ahead  # noqa: SLF001
    assert ahead is not None
    ahead.thread.join()
    assert ahead.made, "the failed init lost the container (found again only by its name)"
    taken = runner._take_ahead(spec)  # noqa: SLF001
    assert isinstance(taken, Refused) and taken.calls == ["init"]


def test_a_phase_that_chowns_a_host_folder_is_not_initialized_ahead(
        context: Path, tmp_path: Path) -> None:
    """podman applies a mount's ``U`` (chown to the builder's mapped root) at init. The publish
    phase of an ``isolated`` build pushing to ``oci:`` chowns the user's folder: initialized
    while the build container runs, the folder would be the mapped user's during the untrusted
    phase, and stay so after a SIGKILL (review of session 8). Only made ahead, as before."""
    plan = make_plan(context, config=Config(), profile="isolated", project="p",
                     push=f"oci:{tmp_path / 'out'}")
    spec = plan.phase("publish")
    assert any(m.chown for m in spec.mounts)
    containers = Made(inspect_fails=False)
    runner = Runner(plan, containers)
    taken = made_ahead(runner, spec)
    assert isinstance(taken, Initialized) and taken.calls == []


def test_the_pins_go_beside_the_phase_containers_by_id(context: Path) -> None:
    """A build's clean-up removed its containers, then each pin (an inspect and a removal, one
    after the other: 0.05-0.1 s of every host-ro build here). The pins now go by id, beside the
    containers: the phase container's removal waits for a pin's, which happens only if both
    run at once (a liveness bound, not a timing)."""
    import threading

    from podman.errors import NotFound

    from tui.engine.stores import HostState

    pin_gone = threading.Event()
    removed: list[str] = []

    class PinsById:
        def get(self, name: str) -> Any:
            raise AssertionError("a pin is removed by its id, with no inspect first")

        def remove(self, container_id: str, force: bool = False) -> None:
            assert force
            removed.append(container_id)
            pin_gone.set()
            if container_id == "gone":
                raise NotFound("no such container")

    class Waits(Runner):
        def _remove_builder(self, container: Any) -> str:
            return "" if pin_gone.wait(10.0) else "removed before any pin"

    plan = make_plan(context, config=Config(), profile="host-ro", project="p")
    runner = Waits(plan, PinsById())  # type: ignore[arg-type]
    runner._containers = [Box("build")]  # type: ignore[list-item]  # noqa: SLF001
    state = HostState(pins=["pin1", "gone"])
    assert runner._cleanup(state) == []  # noqa: SLF001
    assert sorted(removed) == ["gone", "pin1"] and state.pins == []


def test_a_pin_that_cannot_be_removed_is_said(context: Path) -> None:
    """Removed beside the containers, a pin podman refuses is still named in what is left."""
    from tui.engine.stores import HostState

    class Refuses:
        def remove(self, container_id: str, force: bool = False) -> None:
            raise RuntimeError("podman went away")

    runner = Runner(make_plan(context, config=Config(), profile="host-ro", project="p"),
                    Refuses())  # type: ignore[arg-type]
    runner._containers = [Box("build")]  # type: ignore[list-item]  # noqa: SLF001
    left = runner._cleanup(HostState(pins=["pin1"]))  # noqa: SLF001
    assert left == ["pin container pin1 (podman went away)"]
