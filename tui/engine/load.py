"""``--load``: the built image into the host's own podman store, and "run it".

The trusted publish phase writes the image as an OCI archive with no name inside into the
build's output directory (``BuildPlan.writes_archive``). Here that archive is streamed to the
podman API's load, checked to hold the image the publish phase inspected, removed, and only
then tagged, after the tag rule: **a host tag that names another image is not moved** unless
the user asked (``--load-overwrite``, a confirmation in the TUI) or buildcage itself loaded
that image under that tag before (history says so: the edit, rebuild, load loop). Every fact
reported (``ImageLoaded``) is read back from the podman API, never from the build's output.

A loaded image is as trustworthy as its Containerfile (see the README's threat model): the rule
keeps a build from replacing, say, ``docker.io/library/alpine:latest`` that the host runs.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from podman.errors import ImageNotFound

from tui.engine.containers import remove_container, wait_exit
from tui.engine.errors import UserError
from tui.engine.events import ImageLoaded, LoadRefused
from tui.engine.paths import check_own_path
from tui.engine.plan import ARCHIVE_FILE, OUTPUT_DIR, BuildPlan, Mount, Phase, archive_argv
from tui.engine.planner import PlanError
from tui.engine.registry import parse_reference

LoadedBefore = Callable[[str, str], bool]
"""``loaded_before(tag, image_id)``: whether buildcage loaded that image under that tag."""

LOAD_TIMEOUT = (60.0, 3600.0)
"""Connect and read timeouts of the load request: the service answers once the whole archive
is stored, which for a large image takes longer than the client's usual 60 s."""


class LoadConflict(PlanError):
    """``tag`` names another image on the host (``host_image_id``) that buildcage did not load
    there; raised before a build (``Engine.prepare``) and before a later load."""

    def __init__(self, tag: str, host_image_id: str) -> None:
        super().__init__(refusal_message(tag, host_image_id))
        self.tag, self.host_image_id = tag, host_image_id


class LoadError(UserError, RuntimeError):
    """The load did not happen; ``refused`` is set when the tag rule said no."""

    def __init__(self, message: str, refused: LoadRefused | None = None) -> None:
        super().__init__(message)
        self.refused = refused


def refusal_message(tag: str, host_image_id: str) -> str:
    return (f"--load: {tag} on the host names image {host_image_id[:12]}, which buildcage did "
            f"not load there; --load-overwrite moves the tag to the new image (the other one "
            f"stays, by id or its other names), or choose another --tag")


def host_image_id(client, name: str) -> str:
    """The id of the host image ``name`` (a tag or an id), "" when there is none."""
    try:
        return str(client.images.get(name).id)
    except ImageNotFound:
        return ""


def check_tag(client, tag: str, image_id: str, *, overwrite: bool,
              loaded_before: LoadedBefore) -> LoadRefused | None:
    """The tag rule: None when ``tag`` may name ``image_id`` on the host, else why not."""
    current = host_image_id(client, tag)
    if not current or current == image_id or overwrite or loaded_before(tag, current):
        return None
    return LoadRefused(tag=tag, image_id=image_id, host_image_id=current)


def load_archive(client, plan: BuildPlan, image_id: str, *, loaded_before: LoadedBefore,
                 canceled: Callable[[], bool] = lambda: False) -> ImageLoaded | None:
    """After the publish phase: the archive into the host's store under ``plan.tag``. Returns
    None when canceled meanwhile (nothing of it is left on the host then); raises LoadError."""
    archive = plan.output_dir / ARCHIVE_FILE
    try:
        _refuse_if_taken(client, plan, image_id, loaded_before)
        if canceled():
            return None
        existed = bool(host_image_id(client, image_id))
        loaded = _post(client, archive)
    finally:
        archive.unlink(missing_ok=True)  # the disk space goes back at once
    kept = False
    try:
        if loaded != image_id:
            raise LoadError(f"the archive held image {loaded[:12] or '(none)'}, not the built "
                            f"{image_id[:12]}; nothing was tagged")
        _refuse_if_taken(client, plan, image_id, loaded_before)  # the load may take a while
        if canceled():
            return None
        result = tag_image(client, image_id, plan.tag)
        kept = True
        return result
    finally:
        if not kept and not existed and loaded:
            _forget(client, loaded)


def load_built(client, plan: BuildPlan, image_id: str, *, loaded_before: LoadedBefore,
               overwrite: bool = False) -> ImageLoaded:
    """After the build (the TUI's key): exports ``image_id`` from the build's store with a
    short-lived trusted container on the same mounts (no network), then loads it as above.
    Raises LoadConflict when the tag rule says no and ``overwrite`` is not given."""
    refused = check_tag(client, plan.tag, image_id, overwrite=overwrite,
                        loaded_before=loaded_before)
    if refused is not None:
        raise LoadConflict(refused.tag, refused.host_image_id)
    if plan.profile.store == "host":
        return load_from_host_store(client, plan, image_id)
    if plan.profile.store == "fresh":
        raise LoadError(f"profile {plan.profile.name}'s store was removed with the build: "
                        "build again with --load (in the TUI: tick \"Load into this host's "
                        "podman\")")
    if plan.profile.userns != "host":
        raise LoadError(f"profile {plan.profile.name} runs its builder in a user namespace of "
                        f"its own, which a later container cannot share: build again with --load")
    plan = dataclasses.replace(plan, load_overwrite=overwrite)
    try:
        _export(client, plan, image_id)
        loaded = load_archive(client, plan, image_id, loaded_before=loaded_before)
    finally:
        shutil.rmtree(plan.build_dir, ignore_errors=True)  # the archive, however it went
    if loaded is None:  # only a cancel says None, and nothing cancels this one
        raise LoadError("the load was canceled")
    return loaded


def load_from_host_store(client, plan: BuildPlan, image_id: str) -> ImageLoaded:
    """A builder that wrote the host's own store (host-rw) left the image there, tagged: only
    the facts are read back (the tag was checked before the build)."""
    if not host_image_id(client, image_id):
        raise LoadError(f"image {image_id[:12]} is not in the host's store")
    return tag_image(client, image_id, plan.tag)


def tag_image(client, image_id: str, tag: str) -> ImageLoaded:
    """Names ``image_id`` ``tag`` on the host; what the API reports afterwards."""
    ref = parse_reference(tag)
    image = client.images.get(image_id)
    if not image.tag(f"{ref.registry}/{ref.repository}", ref.tag):
        raise LoadError(f"podman did not tag image {image_id[:12]} as {tag}")
    image.reload()
    tags = tuple(str(t) for t in image.attrs.get("RepoTags") or ())
    if tag not in tags or image.id != image_id:
        raise LoadError(f"after the load, {tag} does not name image {image_id[:12]}")
    return ImageLoaded(image_id=image.id, tag=tag, tags=tags)


def _refuse_if_taken(client, plan: BuildPlan, image_id: str,
                     loaded_before: LoadedBefore) -> None:
    refused = check_tag(client, plan.tag, image_id, overwrite=plan.load_overwrite,
                        loaded_before=loaded_before)
    if refused is not None:
        raise LoadError(refusal_message(refused.tag, refused.host_image_id), refused)


def _post(client, archive: Path) -> str:
    """Streams the archive to the API's load; the loaded image's id. podman-py's
    ``images.load(file_path=...)`` reads the whole file into memory first (``read_bytes``): an
    open file through its API client is sent in pieces instead."""
    try:
        # Never through a link: the output directory belongs to the publish phase's root (an
        # unprivileged uid under a user namespace), and this process reads as the host's user.
        fd = os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("the publish phase's image archive is not a regular file (a "
                            "symbolic link)") from exc
        raise LoadError(f"no image archive from the publish phase ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as data:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError("the publish phase's image archive is not a regular file")
        response = client.api.post("/images/load", data=data, timeout=LOAD_TIMEOUT,
                                   headers={"Content-type": "application/x-tar"})
    response.raise_for_status()
    names = response.json().get("Names") or []
    # An archive without a name loads as its id: "sha256:<64 hex>".
    return str(names[0]).removeprefix("sha256:") if len(names) == 1 else ""


def _forget(client, image_id: str) -> None:
    """Removes an image this load brought in (not one the host had before)."""
    try:
        client.images.remove(image_id)
    except Exception:  # noqa: BLE001, S110 - a container uses it already, or podman is gone
        pass


def _export(client, plan: BuildPlan, image_id: str) -> None:
    """``buildah push ID oci-archive:...`` in a container on the build's store mounts."""
    from tui.engine.orphans import owned
    from tui.engine.renderings import create_kwargs
    from tui.engine.stores import write_plan_files

    plan = owned(plan)
    write_plan_files(plan)  # the store's configuration files (normally still there)
    check_own_path(plan.output_dir, plan.data_dir)
    plan.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mounts = [*plan.store_mounts(),
              Mount(str(plan.output_dir), OUTPUT_DIR, "bind", False, "image archive")]
    if plan.overlay == "fuse":  # the kernel's overlay needs no device
        mounts.append(Mount("/dev/fuse", "/dev/fuse", "device", False, "fuse-overlayfs"))
    spec = Phase(name="publish", network="none",
                 command=tuple(plan.on_store(archive_argv(image_id))),
                 mounts=tuple(mounts), container_name=f"{plan.container_name}-load")
    container = client.containers.create(**create_kwargs(plan, spec))
    try:
        container.start()
        code = wait_exit(container)
        if code != 0:
            tail = b"".join(container.logs(stdout=True, stderr=True, tail=5)).decode(
                "utf-8", "replace").strip()
            raise LoadError(f"could not export image {image_id[:12]} from the build's store "
                            f"(exit {code}): {tail}")
    finally:
        remove_container(container)


def run_argv(podman_url: str, image_id: str) -> list[str]:
    """Runs the image interactively, on the same podman service it was loaded into."""
    return ["podman", "--url", podman_url, "run", "--rm", "-it", image_id]


def run_interactive(argv: list[str]) -> int:
    """On the real terminal (the TUI suspended): runs ``argv``, then waits for Enter so that
    what the image printed last can be read before the TUI draws over it."""
    shown = [a[:12] if len(a) == 64 else a for a in argv]  # the image id, short
    print(f"buildcage: {shlex.join(shown)}", flush=True)
    try:
        code = subprocess.run(argv, check=False).returncode
    except OSError as exc:  # podman not installed on this machine, say
        print(f"buildcage: cannot run {argv[0]}: {exc.strerror or exc}")
        code = 127
    print(f"\nbuildcage: exited with {code}; Enter returns to buildcage", flush=True)
    try:
        input()
    except (EOFError, OSError):
        pass
    return code
