"""BuildPlan: one object describing a build, and the single source of its three renderings.

``mounts()``, ``command()``, ``environment()`` and ``options()`` are the only places where the
builder container is described; ``create_kwargs`` (podman-py), ``podman_run`` (a pasteable
command line) and ``kube_pod`` (a Kubernetes Pod) all derive from them, so they cannot drift.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tui.engine.paths import checked_store_dir
from tui.engine.profiles import HOST_STORE, Profile
from tui.engine.registry import ImageRef, OciTarget, parse_push_target

CONTEXT_DIR = "/context"
FILE_DIR = "/buildcage/containerfile"
SHARED_STORE = "/var/lib/shared"
AUTHFILE = "/run/buildcage/auth.json"
OCI_OUTPUT = "/output"
STORAGE_CONF = "/etc/containers/storage.conf"
REGISTRIES_CONF = "/etc/containers/registries.conf.d/99-buildcage.conf"
MOUNT_RECORD = "overlay/.has-mount-program"

MountKind = Literal["bind", "volume", "device"]


@dataclass(frozen=True)
class Mount:
    """One thing the builder sees from outside: a host path, a podman volume or a device."""

    source: str
    target: str
    kind: MountKind = "bind"
    read_only: bool = True
    purpose: str = ""
    chown: bool = False
    """podman's ``U``: the source is handed to the builder's (user-namespaced) root. Only ever
    set on a snapshot buildcage made, never on a user's own directory."""
    file: bool = False
    """The source is a single file, not a directory."""


@dataclass(frozen=True)
class Limits:
    """Bounded resources: inside this machine's hard limits (see provision/provision.sh)."""

    pids: int = 4096
    nofile: int = 1024
    nproc: int = 4096


@dataclass(frozen=True)
class BuildPlan:
    """Everything needed to run one build; renderings are pure functions of it."""

    build_id: str
    context: Path
    containerfile: Path
    profile: Profile
    project: str
    tag: str
    builder_image: str
    data_dir: Path
    build_args: tuple[tuple[str, str], ...] = ()
    target_stage: str = ""
    push: str = ""
    """Push target as typed: a registry reference, ``oci:/dir[:tag]``, or "" for none."""
    no_cache: bool = False
    authfile: Path | None = None
    selinux_enabled: bool = False
    limits: Limits = field(default_factory=Limits)
    registries_conf: str = ""
    """registries.conf drop-in text (insecure registries from the user's config)."""
    context_snapshot: Path | None = None
    """Per-build directory (``DATA/snapshots/BUILD_ID``, mode 0700) holding the copy of the
    context the builder reads (``context/``) and, when the Containerfile lies outside the
    context, a copy of that file alone (``containerfile/NAME``). ``stores.prepare`` makes it
    (``tui.engine.context.make_snapshot``) and ``stores.release`` removes it. None: the builder
    mounts the context itself (a printed plan, meant to be run later)."""

    # -- what the container is ------------------------------------------------------------------
    @property
    def container_name(self) -> str:
        return f"buildcage-{self.build_id}"

    @property
    def store_volume(self) -> str:
        return f"buildcage-store-{self.build_id}"

    @property
    def store_dir(self) -> Path | None:
        """Host directory of a persistent per-project store, None for other kinds.

        Checked on every use (raises ``paths.UnsafePath``): a real directory under
        ``DATA/stores``, never a symlink planted there, whatever the project is called."""
        if self.profile.store != "project":
            return None
        return checked_store_dir(self.data_dir, self.profile.name, self.project)

    @property
    def containerfile_outside_context(self) -> bool:
        return not _inside(self.containerfile, self.context)

    @property
    def snapshot_context_dir(self) -> Path:
        """Where the snapshot's copy of the context is (only with ``context_snapshot``)."""
        assert self.context_snapshot is not None
        return self.context_snapshot / "context"

    @property
    def snapshot_containerfile(self) -> Path:
        """Where the snapshot's copy of an outside Containerfile is."""
        assert self.context_snapshot is not None
        return self.context_snapshot / "containerfile" / self.containerfile.name

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    @property
    def storage_conf_path(self) -> Path:
        return self.conf_dir / f"storage-{_digest(self.storage_conf())}.conf"

    @property
    def mount_record_path(self) -> Path:
        return self.conf_dir / f"has-mount-program-{self.build_id}"

    @property
    def registries_conf_path(self) -> Path:
        return self.conf_dir / "registries.conf"

    def without_snapshot(self) -> BuildPlan:
        """The same build reading the context itself: for a command printed to be run later,
        when no snapshot made now would still exist (or show later edits)."""
        return dataclasses.replace(self, context_snapshot=None)

    def push_target(self) -> ImageRef | OciTarget | None:
        return parse_push_target(self.push)

    def labels(self) -> dict[str, str]:
        return {
            "buildcage.build": self.build_id,
            "buildcage.profile": self.profile.name,
            "buildcage.project": self.project,
        }

    def storage_conf(self) -> str:
        """The builder's storage.conf, from the profile (so profiles choose the overlay)."""
        extra = range(1, len(self.profile.extra_stores) + 1)
        stores = [SHARED_STORE] + [f"{SHARED_STORE}-{i}" for i in extra]
        lines = [
            "# Written by buildcage for profile " + self.profile.name,
            "[storage]",
            'driver = "overlay"',
            'runroot = "/run/containers/storage"',
            'graphroot = "/var/lib/containers/storage"',
            "[storage.options]",
            "additionalimagestores = [" + ", ".join(f'"{s}"' for s in stores) + "]",
            "[storage.options.overlay]",
        ]
        if self.profile.mount_program:
            lines.append(f'mount_program = "{self.profile.mount_program}"')
            lines.append('mountopt = "nodev,fsync=0"')
        else:
            lines.append('mountopt = "nodev"')
        return "\n".join(lines) + "\n"

    def mounts(self) -> list[Mount]:
        mounts = self._context_mounts()
        store = self.profile.store
        if store == "fresh":
            mounts.append(Mount(self.store_volume, "/var/lib/containers", "volume", False,
                                "fresh store, removed after the build"))
        elif store == "project":
            mounts.append(Mount(str(self.store_dir), "/var/lib/containers", "bind", False,
                                f"store of project {self.project}"))
        else:
            mounts.append(Mount(HOST_STORE, HOST_STORE, "bind", False, "host store, read-write"))
            # containers/storage records its mount program in the store; the builder's
            # fuse-overlayfs would overwrite the host's record and break the host's own
            # user-namespaced containers. The builder gets a private copy of that one file.
            mounts.append(Mount(str(self.mount_record_path), f"{HOST_STORE}/{MOUNT_RECORD}",
                                "bind", False, "builder's own overlay record"))
        if self.profile.host_store_ro:
            mounts.append(Mount(HOST_STORE, SHARED_STORE, purpose="host store, read-only"))
        for i, extra in enumerate(self.profile.extra_stores, start=1):
            mounts.append(Mount(extra, f"{SHARED_STORE}-{i}", purpose="additional image store"))
        mounts.append(Mount(str(self.storage_conf_path), STORAGE_CONF, purpose="storage.conf"))
        mounts.append(Mount(str(self.registries_conf_path), REGISTRIES_CONF,
                            purpose="registries (TLS settings)"))
        if self.authfile is not None:
            mounts.append(Mount(str(self.authfile), AUTHFILE, purpose="registry credentials"))
        target = self.push_target()
        if isinstance(target, OciTarget):
            # A user-namespaced root cannot write a root-owned directory: podman's U hands it
            # over for the build, and stores.release gives it back to its owner afterwards.
            mounts.append(Mount(target.path, OCI_OUTPUT, "bind", False, "OCI layout output",
                                chown=self.profile.userns != "host"))
        if self.profile.userns != "host":
            # A user namespace may not mount a fresh sysfs while it shares the host's network
            # (needed for the loopback registry); podman then needs the host's, read-only.
            mounts.append(Mount("/sys", "/sys", purpose="sysfs for a user namespace"))
        mounts.append(Mount("/dev/fuse", "/dev/fuse", "device", False, "fuse-overlayfs"))
        return mounts

    def _context_mounts(self) -> list[Mount]:
        """The context (its snapshot when there is one) and a Containerfile kept outside it:
        that one file, read-only, never its directory (``-f ~/Containerfile`` would otherwise
        show the builder all of home)."""
        file_target = f"{FILE_DIR}/{self.containerfile.name}"
        if self.context_snapshot is None:
            mounts = [Mount(str(self.context), CONTEXT_DIR, purpose="build context")]
            if self.containerfile_outside_context:
                mounts.append(Mount(str(self.containerfile), file_target, purpose="Containerfile",
                                    file=True))
            return mounts
        chown = self.profile.userns != "host"
        mounts = [Mount(str(self.snapshot_context_dir), CONTEXT_DIR, chown=chown,
                        purpose="build context (snapshot)")]
        if self.containerfile_outside_context:
            mounts.append(Mount(str(self.snapshot_containerfile), file_target, chown=chown,
                                purpose="Containerfile (snapshot)", file=True))
        return mounts

    def bud_argv(self) -> list[str]:
        # --pull=missing: without it this Buildah re-pulls a base image the read-only host store
        # already holds whenever the registry answers, which defeats the host-ro layout.
        argv = ["buildah", "bud", "--layers", "--force-rm", "--pull=missing"]
        if self.no_cache:
            argv.append("--no-cache")
        argv += ["-f", self._containerfile_in_builder(), "-t", self.tag]
        for key, value in self.build_args:
            argv += ["--build-arg", f"{key}={value}"]
        if self.target_stage:
            argv += ["--target", self.target_stage]
        if self.authfile is not None:
            argv += ["--authfile", AUTHFILE]
        argv.append(CONTEXT_DIR)
        return argv

    def push_argv(self) -> tuple[str, list[str]] | None:
        """The push command and the destination it names, or None without a push."""
        target = self.push_target()
        if target is None:
            return None
        if isinstance(target, OciTarget):
            dest = f"oci:{OCI_OUTPUT}:{target.tag}"
        else:
            dest = f"docker://{target}"
        argv = ["buildah", "push", "--digestfile", "/tmp/buildcage-digest"]
        if self.authfile is not None:
            argv += ["--authfile", AUTHFILE]
        return str(target), argv + [self.tag, dest]

    def command(self) -> list[str]:
        """The builder's command: a short script around ``buildah bud``. Its ``buildcage:`` lines
        tell the parser the image's layer sizes and the pushed digest, which Buildah never prints.
        ``sh -e`` stops at the first failure and exits with its status."""
        manifest = ["buildah", "inspect", "--type", "image", "--format", "{{.Manifest}}", self.tag]
        script = [
            shlex.join(self.bud_argv()),
            f"echo \"buildcage: manifest $({shlex.join(manifest)} | tr -d '\\n')\"",
        ]
        push = self.push_argv()
        if push is not None:
            ref, argv = push
            script += [
                f"echo {shlex.quote('buildcage: push ' + ref)}",
                shlex.join(argv),
                f'echo "buildcage: pushed {ref} $(cat /tmp/buildcage-digest)"',
            ]
        return ["sh", "-ec", "; ".join(script)]

    def environment(self) -> dict[str, str]:
        return {"BUILDAH_ISOLATION": "chroot"}

    def security_options(self) -> list[str]:
        if self.profile.selinux == "disable":
            return ["label=disable"]
        if self.profile.selinux == "project-level" and self.selinux_enabled:
            return [f"label=level:{mcs_level(self.project)}"]
        return []

    def _containerfile_in_builder(self) -> str:
        if not self.containerfile_outside_context:
            return f"{CONTEXT_DIR}/{self.containerfile.relative_to(self.context).as_posix()}"
        return f"{FILE_DIR}/{self.containerfile.name}"

    def files(self) -> dict[Path, str]:
        """Host files the renderings refer to; written before the builder is created."""
        files = {self.storage_conf_path: self.storage_conf(),
                 self.registries_conf_path: self.registries_conf}
        if self.profile.store == "host":
            files[self.mount_record_path] = "true" if self.profile.mount_program else "false"
        return files


def mcs_level(project: str) -> str:
    """A stable, distinct SELinux MCS level per project name (two categories of 1024)."""
    h = int(hashlib.sha256(project.encode()).hexdigest(), 16)
    a, b = sorted({h % 1024, (h >> 16) % 1024 or 1})
    return f"s0:c{a},c{b}" if a != b else f"s0:c{a}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True
