"""Host-side state of a build: the files and stores a plan needs, and pins on shared images.

A pin is a created, never started container that references a host-store image by id: podman
then refuses ``rmi ID`` and ``image prune -a`` on it, so an image a build reads from the
read-only store cannot vanish mid-build. Everything made here is labelled with the build id and
removed by ``release``, whatever way the build ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from podman import PodmanClient
from podman.domain.containers import Container
from podman.errors import APIError, NotFound

from tui.engine import build_dirs, secret_owners
from tui.engine.config import private_dir
from tui.engine.containers import made_by_name
from tui.engine.context import make_snapshot, remove_snapshot
from tui.engine.events import ImageFact
from tui.engine.paths import check_own_path
from tui.engine.plan import BuildPlan
from tui.engine.profiles import HOST_STORE
from tui.engine.registry import OCI_MARKER, BadReference, OciTarget, check_oci_contents

PIN_LABEL = "buildcage.pin"


@dataclass
class HostState:
    """What ``prepare`` made for one build, so ``release`` removes exactly that."""

    volume: str = ""
    pins: list[str] = field(default_factory=list)
    """Container ids of the pins."""
    pinned_images: list[str] = field(default_factory=list)
    """References of the pinned images, for the user."""
    pinned_facts: dict[str, ImageFact] = field(default_factory=dict)
    """The pinned images as the podman service described them (id, digest), by reference: a
    build whose facts are read here names its bases from them (tui.engine.store_files)."""
    files: list[Path] = field(default_factory=list)
    """Per-build files to delete afterwards."""
    secrets: list[str] = field(default_factory=list)
    """Podman secrets holding the build's arguments and --secret files."""
    secret_record: Path | None = None
    """Who made the secrets (``tui.engine.secret_owners``), removed once they all are."""
    build_dir: Path | None = None
    """The per-build directory (facts), removed whole."""
    snapshot: Path | None = None
    """The context snapshot directory, removed with everything in it."""
    oci_owner: tuple[Path, int, int] | None = None
    """An oci: directory lent to a user-namespaced builder (podman's U), and the owner it is
    given back to."""


def make_build_dirs(plan: BuildPlan) -> None:
    """The per-build folders the phases bind: the publish phase's facts and its ``--load``
    archive. Only a build that runs makes them, after ``build_dirs.mark`` (or a session for its
    own id): a build prepared and never run (``buildcage plan``, the compare and session
    screens) left ``builds/ID/facts`` with no owner, for gc a day later, and every build's start
    scanned them meanwhile (262 here after a day of use: 86 ms of each start)."""
    check_own_path(plan.facts_dir, plan.data_dir)
    plan.facts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if plan.writes_archive:
        check_own_path(plan.output_dir, plan.data_dir)
        plan.output_dir.mkdir(mode=0o700, exist_ok=True)


def write_plan_files(plan: BuildPlan) -> None:
    """The host files and directories the plan's renderings refer to."""
    private_dir(plan.data_dir)  # 0700: stores, generated configuration and history live here
    for path, text in plan.files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        check_own_path(path, plan.data_dir)  # never written through a planted link
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    store_dir = plan.store_dir  # checked again: no symlink planted since the plan was made
    if store_dir is not None:
        store_dir.mkdir(parents=True, exist_ok=True)
    target = plan.push_target()
    if isinstance(target, OciTarget):
        prepare_oci_dir(Path(target.path))


def write_secret_files(plan: BuildPlan) -> None:
    """For the pasteable command only: the secrets' contents as files only the user can read
    (``podman secret create NAME FILE``); the runner creates its secrets from memory."""
    folder = plan.build_dir / "secrets"
    for name, data in plan.secret_contents().items():
        if name == plan.secret_name("auth"):
            continue  # the pasted script reads the user's auth file where it is
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # only with something to hold
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def prepare_oci_dir(directory: Path) -> None:
    """Creates (or re-checks) an ``oci:`` push directory and marks it as buildcage's, so a
    later push accepts it. Raises BadReference if something else moved in since planning."""
    check_oci_contents(directory)
    if os.path.islink(directory):
        raise BadReference(f"oci target {str(directory)!r} became a symlink after planning")
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / OCI_MARKER
    if not marker.exists():
        marker.write_text("An OCI image layout written by buildcage (buildcage build --push "
                          "oci:...).\n")


SecretMaker = Callable[[PodmanClient, BuildPlan], list[str]]
"""Creates a build's podman secrets and returns their names (for ``release``)."""


def podman_secrets(client: PodmanClient, plan: BuildPlan) -> list[str]:
    """One podman secret per input (build arguments, each --secret, the auth file), from
    memory: the values are in no file of buildcage's and on no command line."""
    made = []
    for name, data in plan.secret_data().items():
        client.secrets.create(name, data)
        made.append(name)
    return made


def prepare(client: PodmanClient, plan: BuildPlan, pin: bool = True,
            copy_context: bool = True, make_secrets: SecretMaker = podman_secrets) -> HostState:
    """Makes what the plan's builder needs: files, store directories, the context snapshot,
    a fresh store volume, pins. ``copy_context=False`` (facts probes: the container is never
    started) makes an empty snapshot directory instead of copying the context."""
    state = HostState()
    write_plan_files(plan)
    state.build_dir = plan.build_dir
    build_dirs.mark(plan)  # first: a process killed from here on leaves its owner to gc
    make_build_dirs(plan)
    try:
        # The record first: a process killed right after making a secret leaves it to gc.
        state.secret_record = secret_owners.write_record(plan, secret_owners.service_of(client))
        try:
            state.secrets += make_secrets(client, plan)
        except BaseException:
            # Some may exist, unknown to ``state``: the record stays, for gc once we are gone.
            state.secret_record = None
            raise
        if plan.context_snapshot is not None:
            if copy_context:
                make_snapshot(plan)  # removes what it made if it fails
            else:
                _empty_snapshot(plan)
            state.snapshot = plan.context_snapshot
        if plan.profile.store == "host":
            state.files.append(plan.mount_record_path)
        target = plan.push_target()
        if isinstance(target, OciTarget) and plan.profile.userns != "host" and not plan.remote:
            info = os.stat(target.path)
            state.oci_owner = (Path(target.path), info.st_uid, info.st_gid)
        if plan.profile.store == "fresh":
            client.volumes.create(plan.store_volume, labels=plan.labels())
            state.volume = plan.store_volume
        if plan.profile.store == "project" and plan.remote:
            project_volume(client, plan)
        if pin and plan.profile.sees_host_images:
            pin_images(client, plan, state)
    except BaseException:
        release(client, state)  # nothing made here outlives a failed preparation
        raise
    return state


def project_volume(client: PodmanClient, plan: BuildPlan) -> None:
    """A remote service's project store: a labelled volume there, made once and kept."""
    if not client.volumes.exists(plan.project_volume):
        with contextlib.suppress(APIError):  # made meanwhile by another build: as good
            client.volumes.create(plan.project_volume, labels=plan.project_volume_labels())


def pin_images(client: PodmanClient, plan: BuildPlan, state: HostState) -> None:
    """Every host image the build reads: its bases and its ``COPY --from`` images."""
    pinned: dict[str, str] = {}
    for i, ref in enumerate(plan.fetch_refs):
        # Made from the reference, the image's id read from the pin: one call (an image inspect
        # first was 25-33 ms of every host-ro build here), and the id is the one it holds.
        name = f"buildcage-pin-{plan.build_id}-{i}"
        try:
            container = client.containers.create(
                image=ref, command=["true"], name=name,
                labels={PIN_LABEL: plan.build_id, **plan.labels()}, network_mode="none",
            )
        except Exception as exc:
            # The pin may exist all the same (``made_by_name``): this build's is released with
            # the others.
            made = _made(client, name, plan)
            if made is None and isinstance(exc, (NotFound, APIError)):
                _refused(client, ref, exc)
                continue
            if made is None:
                raise
            container = made
        state.pins.append(container.id)
        state.pinned_images.append(ref)
        pinned[ref] = str(container.attrs.get("Image") or "").removeprefix("sha256:")
    if pinned and plan.facts_read_here:  # else the publish phase inspects the bases itself
        state.pinned_facts = _pinned_facts(pinned)


def _made(client: PodmanClient, name: str, plan: BuildPlan) -> Container | None:
    """This build's pin called ``name``, or None (none, not this build's, or podman cannot
    say)."""
    container = made_by_name(client, name)
    if container is None:
        return None
    labels = (container.attrs.get("Config") or {}).get("Labels") or {}
    ours = {PIN_LABEL: plan.build_id, **plan.labels()}
    return container if all(labels.get(k) == v for k, v in ours.items()) else None


def _refused(client: PodmanClient, ref: str, refusal: Exception) -> None:
    """A pin podman refused to make. As the look-up that came first did: a reference the host
    store lacks, or cannot read, is the fetch phase's to pull (or to say why it cannot), asked
    only now, so a pin made costs one call; one it holds raises ``refusal`` (the build's
    failure)."""
    try:
        client.images.get(ref)
    except (NotFound, APIError):
        return
    raise refusal


def _pinned_facts(pinned: dict[str, str]) -> dict[str, ImageFact]:
    """The pinned images (reference: id) with the digest ``buildah inspect`` gives each: its
    ``manifest`` item's, from the host store's own records, read once (podman's API names an
    index's digest for an image pulled through one); "" where they cannot be read."""
    from tui.engine.store_files import StoreFileError, is_image_id, manifest_digest, read_images

    try:
        records = {r.get("id"): r for r in read_images(HOST_STORE)}
    except StoreFileError:
        records = {}
    return {ref: ImageFact(ref=ref, id=image_id,
                           digest=manifest_digest(records[image_id]) if image_id in records
                           else "")
            for ref, image_id in pinned.items() if is_image_id(image_id)}


def release_pins(client: PodmanClient, state: HostState) -> list[str]:
    """Removes the pins, by id (no inspect first); returns what could not be removed. The
    runner calls it beside its containers' removal (``BuildRunner._cleanup``)."""
    left: list[str] = []
    for pin_id in state.pins:
        try:
            client.containers.remove(pin_id, force=True)
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - podman down: say what is left behind
            left.append(f"pin container {pin_id[:12]} ({exc})")
    state.pins.clear()
    return left


def release(client: PodmanClient, state: HostState) -> list[str]:
    """Removes the pins and the fresh store; returns what could not be removed (for a message)."""
    left = release_pins(client, state)
    secrets_left = False
    for name in state.secrets:
        try:
            client.secrets.get(name).remove()
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - podman down: say what is left behind
            left.append(f"podman secret {name} ({exc})")
            secrets_left = True
    state.secrets.clear()
    if state.secret_record is not None and not secrets_left:  # else gc needs it later
        secret_owners.forget(state.secret_record)
        state.secret_record = None
    if state.build_dir is not None:
        shutil.rmtree(state.build_dir, ignore_errors=True)
        state.build_dir = None
    for path in state.files:
        path.unlink(missing_ok=True)
    state.files.clear()
    if state.oci_owner is not None:
        try:
            give_back(*state.oci_owner)
        except OSError as exc:
            left.append(f"ownership of {state.oci_owner[0]} ({exc})")
        state.oci_owner = None
    if state.snapshot is not None:
        try:
            remove_snapshot(state.snapshot)
        except OSError as exc:
            left.append(f"context snapshot {state.snapshot} ({exc})")
        state.snapshot = None
    if state.volume:
        try:
            client.volumes.get(state.volume).remove(force=True)
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - podman down: say what is left behind
            left.append(f"volume {state.volume} ({exc})")
        state.volume = ""
    return left


def give_back(directory: Path, uid: int, gid: int) -> None:
    """Everything in ``directory`` back to ``uid:gid`` after podman's U lent it to a builder
    (links are not followed)."""
    os.lchown(directory, uid, gid)
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _empty_snapshot(plan: BuildPlan) -> None:
    """The snapshot's mount sources, empty: enough to create a builder for its facts."""
    assert plan.context_snapshot is not None
    check_own_path(plan.context_snapshot, plan.data_dir)
    plan.context_snapshot.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_own_path(plan.context_snapshot, plan.data_dir)
    plan.snapshot_context_dir.mkdir(mode=0o700, parents=True)
    if plan.containerfile_outside_context:
        plan.snapshot_containerfile.parent.mkdir(mode=0o700)
        plan.snapshot_containerfile.touch(mode=0o600)


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


def store_image_names(plan: BuildPlan) -> list[str]:
    """Names of the images a persistent buildcage store holds (its own records), to skip the
    fetch phase when nothing is missing. A wrong record costs a clear Buildah error, no more.
    The store is the builds' (a RUN step may have written any file there): read as hostile
    (tui.engine.store_files: no symlink, FIFO or device followed, size capped)."""
    from tui.engine.store_files import image_names

    root = store_root(plan)
    if root is None or plan.profile.store != "project":
        return []
    return image_names(str(root))


def stray_working_containers(root: Path, since: float) -> list[str]:
    """Buildah working containers created in the store at or after ``since`` (epoch seconds).

    A Buildah stopped at the wrong moment (early in a step) leaves its working container behind
    even on SIGTERM; these are found by name and time in the store's own container list.
    """
    from tui.engine.store_files import working_containers

    # The store is the builds': its ids (64 hex only) go to ``buildah rm`` and into messages.
    return [container_id for container_id, names, created in working_containers(str(root))
            if _epoch(created) >= since and any("-working-container" in n for n in names)]


NO_TIME = float("-inf")
"""A 'created' stamp that is not c/storage's: before any build, so never swept as a stray."""


def _epoch(stamp: str) -> float:
    # c/storage writes RFC 3339 with nanoseconds; Python 3.11 parses up to microseconds.
    head, dot, rest = stamp.rstrip("Z").partition(".")
    try:
        when = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        return NO_TIME
    # ASCII digits, then an offset at most: str.isdigit() takes a superscript two, which
    # float() refuses. A stamp that is not c/storage's is no time (not swept by it).
    match = re.fullmatch(r"([0-9]*)(?:[+-][0-9:]*)?", rest) if dot else None
    if dot and match is None:
        return NO_TIME
    fraction = float("0." + match[1][:6]) if match and match[1] else 0.0
    return when.timestamp() + fraction
