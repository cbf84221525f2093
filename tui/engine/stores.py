"""Host-side state of a build: the files and stores a plan needs, and pins on shared images.

A pin is a created, never started container that references a host-store image by id: podman
then refuses ``rmi ID`` and ``image prune -a`` on it, so an image a build reads from the
read-only store cannot vanish mid-build. Everything made here is labelled with the build id and
removed by ``release``, whatever way the build ended.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from podman import PodmanClient
from podman.errors import APIError, NotFound

from tui.engine.containerfile import parse_containerfile, read_containerfile
from tui.engine.plan import BuildPlan
from tui.engine.profiles import HOST_STORE
from tui.engine.registry import OciTarget

PIN_LABEL = "buildcage.pin"


@dataclass
class HostState:
    """What ``prepare`` made for one build, so ``release`` removes exactly that."""

    volume: str = ""
    pins: list[str] = field(default_factory=list)
    """Container ids of the pins."""
    pinned_images: list[str] = field(default_factory=list)
    """References of the pinned images, for the user."""
    files: list[Path] = field(default_factory=list)
    """Per-build files to delete afterwards."""


def write_plan_files(plan: BuildPlan) -> None:
    """The host files and directories the plan's renderings refer to."""
    for path, text in plan.files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    if plan.store_dir is not None:
        plan.store_dir.mkdir(parents=True, exist_ok=True)
    target = plan.push_target()
    if isinstance(target, OciTarget):
        Path(target.path).mkdir(parents=True, exist_ok=True)


def prepare(client: PodmanClient, plan: BuildPlan, pin: bool = True) -> HostState:
    state = HostState()
    write_plan_files(plan)
    if plan.profile.store == "host":
        state.files.append(plan.mount_record_path)
    if plan.profile.store == "fresh":
        client.volumes.create(plan.store_volume, labels=plan.labels())
        state.volume = plan.store_volume
    if pin and plan.profile.sees_host_images:
        try:
            pin_base_images(client, plan, state)
        except BaseException:
            release(client, state)
            raise
    return state


def base_images(plan: BuildPlan) -> list[str]:
    info = parse_containerfile(read_containerfile(plan.containerfile))
    return info.base_images(dict(plan.build_args))


def pin_base_images(client: PodmanClient, plan: BuildPlan, state: HostState) -> None:
    for i, ref in enumerate(base_images(plan)):
        try:
            image = client.images.get(ref)
        except (NotFound, APIError):
            continue  # not in the host store: the builder pulls it into its own store
        container = client.containers.create(
            image=image.id, command=["true"], name=f"buildcage-pin-{plan.build_id}-{i}",
            labels={PIN_LABEL: plan.build_id, **plan.labels()}, network_mode="none",
        )
        state.pins.append(container.id)
        state.pinned_images.append(ref)


def release(client: PodmanClient, state: HostState) -> list[str]:
    """Removes the pins and the fresh store; returns what could not be removed (for a message)."""
    left: list[str] = []
    for pin_id in state.pins:
        try:
            client.containers.get(pin_id).remove(force=True)
        except NotFound:
            pass
        except Exception as exc:  # podman down: say what is left behind
            left.append(f"pin container {pin_id[:12]} ({exc})")
    state.pins.clear()
    for path in state.files:
        path.unlink(missing_ok=True)
    state.files.clear()
    if state.volume:
        try:
            client.volumes.get(state.volume).remove(force=True)
        except NotFound:
            pass
        except Exception as exc:
            left.append(f"volume {state.volume} ({exc})")
        state.volume = ""
    return left


def leftovers(client: PodmanClient, build_id: str | None = None) -> list[str]:
    """Names of containers and volumes buildcage made that still exist (for tests and doctor)."""
    key = "buildcage.build" if build_id is None else f"buildcage.build={build_id}"
    names = [c.name for c in client.containers.list(all=True, filters={"label": key})]
    with contextlib.suppress(APIError):
        names += [v.name for v in client.volumes.list(filters={"label": key})]
    return names


def store_root(plan: BuildPlan) -> Path | None:
    """The c/storage root the builder writes to, when it lives on this host's disk."""
    if plan.profile.store == "host":
        return Path(HOST_STORE)
    if plan.store_dir is not None:
        return plan.store_dir / "storage"
    return None  # a fresh volume: removed whole


def stray_working_containers(root: Path, since: float) -> list[str]:
    """Buildah working containers created in the store at or after ``since`` (epoch seconds).

    A Buildah stopped at the wrong moment (early in a step) leaves its working container behind
    even on SIGTERM; these are found by name and time in the store's own container list.
    """
    path = root / "overlay-containers" / "containers.json"
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    found = []
    for record in records:
        names = record.get("names") or []
        created = _epoch(record.get("created", ""))
        if created >= since and any("-working-container" in n for n in names):
            found.append(record["id"])
    return found


def _epoch(stamp: str) -> float:
    # c/storage writes RFC 3339 with nanoseconds; Python 3.11 parses up to microseconds.
    head, dot, rest = stamp.rstrip("Z").partition(".")
    try:
        when = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    fraction = float("0." + "".join(c for c in rest if c.isdigit())[:6]) if dot else 0.0
    return when.timestamp() + fraction
