"""A host-ro build pins every host image it reads with a container made from it. The pin is
made from the reference itself and the image's id read from the pin: one call where an image
inspect and then a create were two (the inspect was 25-33 ms of every host-ro build here), and
the id is the one the pin holds, with no moment between looking up and pinning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from podman.errors import APIError, NotFound

from tui.engine.config import Config
from tui.engine.planner import make_plan
from tui.engine.stores import HostState, pin_images

pytestmark = pytest.mark.usefixtures("data_home")
IMAGE = "d" * 64


class Images:
    """The host store's images: ``has`` them or not; asked only after a refused create."""

    def __init__(self, has: bool = False) -> None:
        self.has = has
        self.asked: list[str] = []

    def get(self, ref: str) -> Any:
        self.asked.append(ref)
        if not self.has:
            raise NotFound(f"failed to find image {ref}")
        return type("Image", (), {"id": IMAGE})()


class Containers:
    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.made: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> Any:
        if self.refuse:
            raise APIError(f"500 Server Error: Internal Server Error ({self.refuse})")
        self.made.append(kwargs)
        return type("Pin", (), {"id": "pin-" + kwargs["name"],
                                "attrs": {"Image": IMAGE, "ImageName": kwargs["image"]}})()


def client(containers: Containers, images: Images | None = None) -> Any:
    return type("Client", (), {"images": images or Images(), "containers": containers})()


def plan(context: Path) -> Any:
    return make_plan(context, config=Config(), profile="host-ro", project="p")


def test_a_pin_is_made_from_the_reference_and_names_the_image_it_holds(context: Path) -> None:
    containers, images, state = Containers(), Images(has=True), HostState()
    p = plan(context)
    pin_images(client(containers, images), p, state)
    assert images.asked == [], "the pin is made from the reference: no inspect first"
    assert [c["image"] for c in containers.made] == list(p.fetch_refs) != []
    assert state.pins == [f"pin-buildcage-pin-{p.build_id}-0"]
    assert state.pinned_images == list(p.fetch_refs)
    assert [f.id for f in state.pinned_facts.values()] == [IMAGE]


@pytest.mark.parametrize("why", ["busybox: image not known", "invalid reference format"])
def test_an_image_the_host_lacks_is_left_to_the_fetch_phase(context: Path, why: str) -> None:
    """As before pins were made in one call: a reference the host store does not hold, or one
    podman cannot read, is the fetch phase's to pull (or to say why it cannot)."""
    containers, images, state = Containers(refuse=why), Images(has=False), HostState()
    p = plan(context)
    pin_images(client(containers, images), p, state)
    assert state.pins == [] and state.pinned_facts == {}
    assert images.asked == list(p.fetch_refs)


def test_any_other_refusal_is_the_builds_failure(context: Path) -> None:
    with pytest.raises(APIError, match="name is in use"):
        pin_images(client(Containers(refuse="name is in use"), Images(has=True)), plan(context),
                   HostState())


class MadeButNotRead(Containers):
    """podman-py's create is a POST, then a GET of what it made: here the GET fails (``error``),
    and the pin exists, with the labels it was made with (or ``labels`` instead)."""

    def __init__(self, error: Exception, labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.error = error
        self.labels = labels
        self.existing: dict[str, Any] = {}

    def create(self, **kwargs: Any) -> Any:
        pin = super().create(**kwargs)
        pin.attrs = {**pin.attrs, "Config": {"Labels": self.labels or kwargs["labels"]}}
        self.existing[kwargs["name"]] = pin
        raise self.error

    def get(self, name: str) -> Any:
        if name not in self.existing:
            raise NotFound(f"no container with name or ID {name} found")
        return self.existing[name]


@pytest.mark.parametrize("error", [APIError("500 Server Error"), NotFound("gone"),
                                   ConnectionError("the service went away")])
def test_a_pin_made_whose_reading_failed_is_the_builds_all_the_same(
        context: Path, error: Exception) -> None:
    """Not recorded, it stayed after the build (until a gc), keeping the host from removing
    the image; found by its name and labels, it is released with the others."""
    containers, state = MadeButNotRead(error), HostState()
    p = plan(context)
    pin_images(client(containers, Images(has=True)), p, state)
    assert state.pins == [f"pin-buildcage-pin-{p.build_id}-0"]
    assert state.pinned_images == list(p.fetch_refs)


def test_a_container_of_that_name_made_by_another_is_not_taken_for_the_pin(
        context: Path) -> None:
    containers = MadeButNotRead(APIError("500 Server Error (name is in use)"),
                                labels={"someone": "else"})
    with pytest.raises(APIError, match="name is in use"):
        pin_images(client(containers, Images(has=True)), plan(context), HostState())
