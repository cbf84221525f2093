"""BuildPlan: one object describing a build, and the single source of its three renderings.

``mounts()``, ``command()``, ``environment()`` and ``options()`` are the only places where the
builder container is described; ``create_kwargs`` (podman-py), ``podman_run`` (a pasteable
command line) and ``kube_pod`` (a Kubernetes Pod) all derive from them, so they cannot drift.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from tui.engine import hostview
from tui.engine.overlay import OverlayKind
from tui.engine.paths import checked_store_dir
from tui.engine.profiles import HOST_STORE, Profile
from tui.engine.registry import ImageRef, OciTarget, parse_push_target

CONTEXT_DIR = "/context"
FILE_DIR = "/buildcage/containerfile"
SHARED_STORE = "/var/lib/shared"
AUTHFILE = "/var/tmp/buildcage-secrets/auth.json"
OCI_OUTPUT = "/output"
SECRET_COPIES = "/var/tmp/buildcage-secrets"
SECRETS_DIR = "/run/secrets"
"""Where podman mounts the build's secrets (build arguments, --secret files) in the build phase."""
FACTS_DIR = "/buildcage/facts"
"""Per-build facts written by the trusted publish phase only (image, pushed digest)."""
DEBUG_DIR = "/buildcage/debug"
"""A debug shell's own files (the failed command, its history, the banner), in the shell's
container and, bind-mounted again, in the working container the shell runs in."""
OUTPUT_DIR = "/buildcage/output"
"""Per-build output of the trusted publish phase (``--load``): the image archive the host's
podman loads. Never mounted where a Containerfile step runs."""
ARCHIVE_FILE = "image.tar"
LAYERS_DIR = f"{FACTS_DIR}/layers"
"""Where the publish phase of a build whose store cannot be read later (``keeps_layers``) writes
the image's layers, uncompressed (a ``dir:`` layout), for tui.engine.layer_reader."""
BUILD_ARGS_FILE = "build-args.env"
IMAGE_FILE = "image.json"
BASE_FILE = "base-{index}"
"""``ID DIGEST`` of the build's ``index``-th external image (``fetch_refs``), for the cache
explanations of the next build (tui.engine.cache_why)."""
DIGEST_FILE = "digest"
OVERLAY_FILE = "overlay"
"""containers/storage's record of the overlay the store was mounted with (``true``: a mount
program, fuse-overlayfs), copied by the publish phase."""
GRAPH_ROOT = "/var/lib/containers/storage"
STORAGE_CONF = "/etc/containers/storage.conf"
REGISTRIES_CONF = "/etc/containers/registries.conf.d/99-buildcage.conf"
MOUNT_RECORD = "overlay/.has-mount-program"
CACHE_FILE = "cache"
"""The publish phase's record of the registry cache: ``images N pushed K`` or ``failed: why``."""
CACHE_LABEL = "buildcage.cache.images"
"""Label of a cache index image: the ids of the cache images one build used, space-separated."""
CACHE_MAX_IMAGES = 512
"""At most this many cache images are pulled or listed (a bound on what an index can ask for)."""
CACHE_IDS_FILE = "/var/tmp/buildcage-cache-ids"
"""In the fetch container (its own root file system): the ids the cache's index lists."""
CACHE_PULL_JOBS = 4
"""Cache images pulled (and pushed) at once, after the deepest one (see ``cache_pull_script``)."""


def _each(words: str, script: str) -> str:
    """Runs ``script`` (``sh -c``, the word as ``$0``) for each of ``words`` (a shell expansion
    of checked ids), CACHE_PULL_JOBS at a time."""
    return (f"printf '%s\\n' {words} | xargs -r -n 1 -P {CACHE_PULL_JOBS} "
            f"sh -c {shlex.quote(script)}")


MountKind = Literal["bind", "volume", "device", "secret", "copy", "sync", "overlay"]
"""``copy``: a file or directory of this machine copied into the container before it starts
(``put_archive``); ``sync``: a directory copied in before and copied back out after the phase
(``get_archive``). Both replace bind mounts of this machine's paths when the podman service runs
on another host (``BuildPlan.remote``): there those paths do not exist, or are other files.
``overlay``: a podman overlay volume (``-v SRC:DST:O``) of a path on the service's host: the
source is the lower layer of an overlay whose upper layer is the container's own and goes with
it; the builder may write there, the source never changes, no mount under it comes along."""
PhaseName = Literal["fetch", "build", "publish", "debug"]
"""``debug``: an interactive shell in a working container made from a failed build's last good
layer (tui.engine.debug); it runs what the user types in the Containerfile's state, so it is as
untrusted as the build phase."""


@dataclass(frozen=True)
class Mount:
    """One thing the builder sees from outside: a host path, a podman volume, a device, a
    podman secret, or (remote service) a copy of a local file or directory."""

    source: str
    target: str
    kind: MountKind = "bind"
    read_only: bool = True
    purpose: str = ""
    options: tuple[str, ...] = ()
    """More mount options (a volume's ``dev``, ``suid``)."""
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
    layers: bool | None = None
    """Commit a layer per step (``--layers``)? None: by the store, a fresh store commits once.
    A debug shell's rebuild in a fresh store asks for the layers (tui.engine.debug)."""
    authfile: Path | None = None
    selinux_enabled: bool = False
    limits: Limits = field(default_factory=Limits)
    registries_conf: str = ""
    """registries.conf drop-in text (insecure registries from the user's config)."""
    secrets: tuple[tuple[str, str], ...] = ()
    """``--secret id=NAME,src=FILE`` pairs: given to the build phase as podman secrets, to
    Buildah's ``--secret``; never in the image, history, a log or a command line."""
    owner: str = ""
    """The process running the build (``HOST:PID:START:BOOT``, see tui.engine.orphans), set by
    the runner: every container, pod and volume made for the build is labelled with it so that
    what a dead process left can be told from what a running build uses. "" for plans that are
    only shown (a pasted ``podman run`` belongs to no buildcage process)."""
    remote: bool = False
    """The podman service runs on another host (an ``ssh://`` or ``tcp://`` URL): the builder
    gets copies of this machine's files (``copy``/``sync`` mounts) instead of bind mounts, and a
    project store is a podman volume there instead of a directory here."""
    load: bool = False
    """``--load``: the publish phase also writes the image as an OCI archive into the output
    directory, for the host's podman to load (tui.engine.load)."""
    load_overwrite: bool = False
    """``--load-overwrite``: the load may move a host tag that names another image."""
    overlay: OverlayKind = "fuse"
    """The overlay the builder mounts layers with, chosen by the planner from the profile, the
    kernel overlay probe and the store's own record (tui.engine.overlay.choose)."""
    overlay_reason: str = ""
    """Why that overlay, for people (the card's speed reasons)."""
    cache_repo: str = ""
    """Registry repository of the project's layer cache (``REGISTRY/buildcage-cache/PROJECT``)
    for a fresh store, "" for none. Only the trusted phases talk to it: fetch pulls the images
    the last build used (its index, ``cache_index``) into the new store, where Buildah's own
    ``--layers`` lookup finds them (its ``intermediateImageExists``, which ``--cache-from`` also
    ends in); publish pushes the images the build added and a new index. Buildah's
    ``--cache-from``/``--cache-to`` themselves would talk to the registry from the build phase,
    which has no network (and ``--cache-to`` fails the build when it cannot push)."""
    cache_push: bool = True
    """Whether the publish phase pushes the cache. False for a debug session's rebuild, which
    pushes nothing (no image either) but may still pull the cache in its fetch phase."""
    cache_note: str = ""
    """Why a registry cache the profile asks for is off for this build (its registry did not
    answer when the build was prepared); the runner says it as a warning."""
    cpus: int = 1
    """CPUs of the machine running the builder, as far as buildcage knows (1: unknown): caps
    Buildah's ``--jobs``."""
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
        if self.profile.store != "project" or self.remote:
            return None
        return checked_store_dir(self.data_dir, self.profile.name, self.project)

    @property
    def project_volume(self) -> str:
        """The podman volume holding a project store on a remote service (kept, like the
        directory a local service uses). Named by a digest: profile and project names are
        checked, but a volume name has its own rules."""
        return f"buildcage-project-{_digest(self.profile.name + '/' + self.project)}"

    def project_volume_labels(self) -> dict[str, str]:
        """No build id and no owner: a project store outlives every build and every process,
        so the orphan collector must never take it."""
        return {"buildcage.store": "project", "buildcage.profile": self.profile.name,
                "buildcage.project": self.project}

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
    def build_dir(self) -> Path:
        """Per-build host directory (inputs and facts), removed when the build ends."""
        return self.data_dir / "builds" / self.build_id

    @property
    def facts_dir(self) -> Path:
        return self.build_dir / "facts"

    @property
    def debug_dir(self) -> Path:
        """A debug shell's files on the host (in the per-build directory, removed with it)."""
        return self.build_dir / "debug"

    @property
    def output_dir(self) -> Path:
        """Where the publish phase writes the image archive for ``--load`` (inside the build's
        directory, so it goes with it however the build ends)."""
        return self.build_dir / "output"

    @property
    def writes_archive(self) -> bool:
        """``--load`` needs an archive, except when the builder wrote the host's store itself."""
        return self.load and self.profile.store != "host"

    @property
    def keeps_layers(self) -> bool:
        """No later container can read this build's store: a fresh volume removed with the
        build, or a user namespace of its own that a later container cannot share. The publish
        phase then writes the layers into the facts directory and buildcage keeps their report
        (tui.engine.layer_reader); other stores are read when asked (``buildcage layers``)."""
        return self.profile.store == "fresh" or self.profile.userns != "host"

    @property
    def facts_read_here(self) -> bool:
        """The publish phase would only read the image's records and, for a store that goes
        with the build, its layers' headers (no push, no ``--load`` archive, no registry cache)
        from a store on this host's disk (a project directory, a fresh volume): the local
        runner reads them itself (tui.engine.store_files, tui.engine.store_layers) and starts
        no publish container, about 0.5 s of a warm build (measured there). The renderings keep
        the phase: they run where buildcage is not there to read the store. The host's own
        store too (``host-rw``, local): its image records are the host's, its overlay record
        the builder's private copy (``mount_record_path``); not with ``--load``, which the
        publish phase's end does (tui.engine.load)."""
        return self._publishes_records_only and not self.pushes_cache

    @property
    def publish_may_be_idle(self) -> bool:
        """The publish phase's only work besides what ``facts_read_here`` reads is the
        registry cache's update, which a warm build may leave with nothing to do: the local
        runner then looks at the store before it starts the phase (tui.engine.cache_left)."""
        return (self._publishes_records_only and self.pushes_cache
                and self.profile.store == "fresh")

    @property
    def _publishes_records_only(self) -> bool:
        """Apart from a registry cache, the publish phase would only read the image's records
        from a store on this host's disk: no push, no ``--load``."""
        return (self.profile.store in ("project", "fresh", "host") and not self.remote
                and self.push_argv() is None and not self.load)

    @property
    def registries_conf_path(self) -> Path:
        return self.conf_dir / "registries.conf"

    def without_snapshot(self) -> BuildPlan:
        """The same build reading the context itself: for a command printed to be run later,
        when no snapshot made now would still exist (or show later edits). Printed commands
        bind-mount the paths they name, so they are run on the machine that has them."""
        return dataclasses.replace(self, context_snapshot=None, remote=False)

    def push_target(self) -> ImageRef | OciTarget | None:
        return parse_push_target(self.push)

    def labels(self) -> dict[str, str]:
        labels = {
            "buildcage.build": self.build_id,
            "buildcage.profile": self.profile.name,
            "buildcage.project": self.project,
        }
        return labels | self.owner_labels()

    def owner_labels(self) -> dict[str, str]:
        """What tells whose a container, pod or volume is; also the Pod's own labels."""
        if not self.owner:
            return {}
        return {"buildcage.build": self.build_id, "buildcage.owner": self.owner}

    def storage_conf(self) -> str:
        """The builder's storage.conf: the profile's stores, and the overlay the plan chose."""
        extra = range(1, len(self.profile.extra_stores) + 1)
        stores = [SHARED_STORE] + [f"{SHARED_STORE}-{i}" for i in extra]
        lines = [
            "# Written by buildcage for profile "
            + "".join(c for c in self.profile.name if c.isprintable()),
            "[storage]",
            'driver = "overlay"',
            'runroot = "/run/containers/storage"',
            'graphroot = "/var/lib/containers/storage"',
            "[storage.options]",
            # Every value through json.dumps: a JSON string is a valid TOML basic string, so
            # no profile value can end the string and add keys (issue 7, item 6).
            "additionalimagestores = [" + ", ".join(json.dumps(s) for s in stores) + "]",
            "[storage.options.overlay]",
        ]
        if self.overlay == "fuse":
            lines.append(f"mount_program = {json.dumps(self.profile.mount_program)}")
            lines.append('mountopt = "nodev,fsync=0"')
        else:
            lines.append('mountopt = "nodev"')
        return "\n".join(lines) + "\n"

    # -- what every phase's container sees -------------------------------------------------------
    def store_mounts(self) -> list[Mount]:
        """The image store(s) and their configuration: the same in every phase."""
        mounts: list[Mount] = []
        store = self.profile.store
        if store == "fresh":
            # podman mounts volumes nodev,nosuid, flags a user namespace cannot change: Buildah's
            # re-mount of a RUN's secret or bind mount made from the store then fails
            # ("remounting ... operation not permitted"). The store's files stay confined by
            # the user namespace and by the device cgroup either way.
            mounts.append(Mount(self.store_volume, "/var/lib/containers", "volume", False,
                                "fresh store, removed after the build", ("dev", "suid")))
        elif store == "project" and self.remote:
            mounts.append(Mount(self.project_volume, "/var/lib/containers", "volume", False,
                                f"store of project {self.project} (a volume on the service)"))
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
            # Three directories through overlays, not the store bind-mounted: its lock files
            # would be the host podman's, and a :ro bind left its layers writable (hostview).
            mounts += [Mount(f"{HOST_STORE}/{part}", f"{SHARED_STORE}/{part}", "overlay",
                             purpose=f"host store's {part} (writes stay in the builder)")
                       for part in hostview.PARTS]
        for i, extra in enumerate(self.profile.extra_stores, start=1):
            mounts.append(Mount(extra, f"{SHARED_STORE}-{i}", purpose="additional image store"))
        mounts.append(self._local(Mount(str(self.storage_conf_path), STORAGE_CONF,
                                        purpose="storage.conf", file=True)))
        mounts.append(self._local(Mount(str(self.registries_conf_path), REGISTRIES_CONF,
                                        purpose="registries (TLS settings)", file=True)))
        return mounts

    def _local(self, mount: Mount, *, output: bool = False) -> Mount:
        """A bind mount of this machine's path; for a remote service, a copy of it put into the
        container before it starts (``output``: and copied back once the phase has ended)."""
        if not self.remote:
            return mount
        kind: MountKind = "sync" if output else "copy"
        how = "copied in and out" if output else "copied in"
        return dataclasses.replace(mount, kind=kind, chown=False,
                                   purpose=f"{mount.purpose} ({how})")

    def phase_mounts(self, phase: PhaseName) -> list[Mount]:
        """What the container of ``phase`` sees. Only the untrusted build phase sees the context,
        the build arguments and secrets; only the trusted phases see the registry credentials,
        the OCI output directory and the facts directory."""
        mounts = self.store_mounts()
        if phase == "debug":
            # What the build phase sees, less its secrets (build arguments reach the shell as
            # a private file in the debug directory, --secret files not at all), plus that
            # directory. Never the trusted phases' credentials, OCI output or facts.
            mounts[:0] = self._context_mounts()
            mounts.append(Mount(str(self.debug_dir), DEBUG_DIR, "bind", False,
                                "debug shell's files", chown=self.profile.userns != "host"))
        elif phase == "build":
            mounts[:0] = self._context_mounts()
            if self.build_args:
                mounts.append(Mount(self.secret_name("args"), f"{SECRETS_DIR}/{BUILD_ARGS_FILE}",
                                    "secret", True, "build arguments (a podman secret)"))
            for name, _src in self.secrets:
                mounts.append(Mount(self.secret_name(f"s-{name}"), f"{SECRETS_DIR}/{name}",
                                    "secret", True, f"secret {name} (a podman secret)"))
        else:
            if self.authfile is not None:
                # A podman secret, not a bind mount: a user-namespaced builder's root could not
                # read the user's 0600 auth file, and the secret is gone with the build.
                mounts.append(Mount(self.secret_name("auth"), f"{SECRETS_DIR}/auth.json", "secret",
                                    True,
                                    "registry credentials (a podman secret)"))
            if phase == "publish":
                target = self.push_target()
                if isinstance(target, OciTarget):
                    # A user-namespaced root cannot write a root-owned directory: podman's U
                    # hands it over, and stores.release gives it back to its owner afterwards.
                    mounts.append(self._local(
                        Mount(target.path, OCI_OUTPUT, "bind", False, "OCI layout output",
                              chown=self.profile.userns != "host"), output=True))
                mounts.append(self._local(
                    Mount(str(self.facts_dir), FACTS_DIR, "bind", False,
                          "facts written by the trusted publish phase"), output=True))
                if self.writes_archive:
                    mounts.append(self._local(
                        Mount(str(self.output_dir), OUTPUT_DIR, "bind", False,
                              "image archive for the host's podman (--load)"), output=True))
        if self.profile.userns != "host" and phase_network(phase) == "host":
            # A user namespace may not mount a fresh sysfs while it shares the host's network
            # (needed for the loopback registry); podman then needs the host's, read-only.
            mounts.append(Mount("/sys", "/sys", purpose="sysfs for a user namespace"))
        if self.overlay == "fuse":  # the kernel's overlay needs no device
            mounts.append(Mount("/dev/fuse", "/dev/fuse", "device", False, "fuse-overlayfs"))
        return mounts

    def mounts(self) -> list[Mount]:
        """The build phase's mounts: the container that runs the Containerfile's steps."""
        return self.phase_mounts("build")

    # -- what each phase runs ---------------------------------------------------------------------
    @cached_property
    def fetch_refs(self) -> tuple[str, ...]:
        """External images the build reads (bases and ``COPY --from``), build args applied.
        Read once per plan: the phases, their renderings and the runner all ask."""
        from tui.engine.containerfile import parse_containerfile, read_containerfile

        info = parse_containerfile(read_containerfile(self.containerfile))
        return tuple(info.external_images(dict(self.build_args)))

    @cached_property
    def stage_width(self) -> int:
        """How many of the Containerfile's stages could run at once (see ``parallel_stages``)."""
        from tui.engine.containerfile import (
            parallel_stages,
            parse_containerfile,
            read_containerfile,
        )

        info = parse_containerfile(read_containerfile(self.containerfile))
        return parallel_stages(info, self.target_stage, dict(self.build_args))

    @property
    def pulls_cache(self) -> bool:
        """Whether the fetch phase pulls the registry cache (not for ``--no-cache``, which
        builds every step again and pushes the result as the new cache)."""
        return bool(self.cache_repo) and not self.no_cache

    @property
    def pushes_cache(self) -> bool:
        """Whether the publish phase pushes the images this build used as the new cache."""
        return bool(self.cache_repo) and self.cache_push

    @property
    def cache_index(self) -> str:
        """The tag listing the cache images of the last build of this Containerfile and target:
        one index per variant, so two Containerfiles of a project do not evict each other."""
        if self.containerfile_outside_context:
            where = "outside:" + self.containerfile.name
        else:
            where = self.containerfile.relative_to(self.context).as_posix()
        return f"{self.cache_repo}:index-{_digest(where + chr(0) + self.target_stage)}"

    def fetch_argv(self) -> list[str]:
        """Pulls what the store lacks (``buildah pull``'s policy is "missing"), then the
        registry cache's images. The cache's index is read while the bases are pulled (it
        needs nothing from them); its images after them (they share the bases' layers)."""
        refs = self.fetch_refs
        if not refs and not self.pulls_cache:
            return []
        pulls = [shlex.join(["buildah", "pull", *self._auth_flags(), ref]) for ref in refs]
        script = "; ".join(self._prelude("fetch"))
        if self.pulls_cache:
            script += ("; " if script else "") + f"{{ {self.cache_index_script()}; }} & "
            pulls += ["wait", self.cache_pull_script()]
        elif script:
            script += "; "
        return ["sh", "-ec", script + "; ".join(pulls)]

    def cache_index_script(self) -> str:
        """Pulls the index of the cache and writes the ids its label lists to CACHE_IDS_FILE
        (in the fetch container, not the store); removes the index from the store. Nothing in
        the registry yet: no file (an earlier one is removed first). Runs beside the bases'
        pulls (``fetch_argv``)."""
        index = shlex.quote(self.cache_index)
        pull = shlex.join(["buildah", "pull", "-q", *self._auth_flags()])
        label = shlex.join(["buildah", "inspect", "--type", "image", "--format",
                            f'{{{{index .OCIv1.Config.Labels "{CACHE_LABEL}"}}}}',
                            self.cache_index])
        return " ".join([
            # A kept (session) fetch container may hold an earlier build's list.
            f"rm -f {CACHE_IDS_FILE};",
            f"if {pull} {index} >/dev/null 2>&1; then",
            f"{{ {label} || :; }} > {CACHE_IDS_FILE};",
            f"buildah rmi {index} >/dev/null 2>&1 || true; fi",
        ])

    def cache_pull_script(self) -> str:
        """Pulls every image the index listed (CACHE_IDS_FILE, ``cache_index_script``) into the
        store. Whatever the registry answers is data: only 64-hex image ids are pulled, at most
        CACHE_MAX_IMAGES, each by its own tag; a missing one is only a step built again. One
        line (every rendering keeps a phase's command on one line).

        The index lists the images in the order the build used them, its result last. That one
        is pulled first: it holds every earlier step's layers, so one ``buildah pull`` brings
        them all, and the other images then need only their manifest and config (their layers
        are in the store). Those are pulled CACHE_PULL_JOBS at a time: each is a process,
        a registry round trip and a store commit of its own (measured here, a 15-RUN build's
        17 images: the warm fetch phase 6.5 s one after another, 4.9 s this way; see README)."""
        repo = self.cache_repo
        pull = shlex.join(["buildah", "pull", "-q", *self._auth_flags()])
        one = (f'if {pull} {shlex.quote(repo)}:"$0" >/dev/null 2>&1; then echo ok; '
               f'else echo "buildcage: cache image $0 is gone from {repo}"; fi')
        return " ".join([
            f"if [ -f {CACHE_IDS_FILE} ]; then",
            "set -f;",
            f"ids=$(cat {CACHE_IDS_FILE});",
            "list=''; last=''; n=0;",
            "for id in $ids; do",
            "case $id in *[!0-9a-f]*) continue;; esac;",
            "[ ${#id} -eq 64 ] || continue;",
            'case " $list $last " in *" $id "*) continue;; esac;',
            f"n=$((n+1)); [ $n -le {CACHE_MAX_IMAGES} ] || break;",
            'list="$list $last"; last=$id;',
            "done;",
            "got=$(",
            f'{{ [ -z "$last" ] || sh -c {shlex.quote(one)} "$last";',
            f"{_each('$list', one)}; }} | {{ ok=0;"
            " while read -r line; do",
            'if [ "$line" = ok ]; then ok=$((ok+1)); else echo "$line" >&2; fi;',
            'done; echo $ok; } );',
            f'echo "buildcage: registry cache: $got images from {repo}";',
            f'else echo "buildcage: registry cache: nothing in {repo} yet"; fi',
        ])

    def _context_mounts(self) -> list[Mount]:
        """The context (its snapshot when there is one) and a Containerfile kept outside it:
        that one file, read-only, never its directory (``-f ~/Containerfile`` would otherwise
        show the builder all of home)."""
        file_target = f"{FILE_DIR}/{self.containerfile.name}"
        if self.context_snapshot is None:
            assert not self.remote, "a remote service reads a snapshot of the context"
            mounts = [Mount(str(self.context), CONTEXT_DIR, purpose="build context")]
            if self.containerfile_outside_context:
                mounts.append(Mount(str(self.containerfile), file_target, purpose="Containerfile",
                                    file=True))
            return mounts
        chown = self.profile.userns != "host"
        mounts = [self._local(Mount(str(self.snapshot_context_dir), CONTEXT_DIR, chown=chown,
                                    purpose="build context (snapshot)"))]
        if self.containerfile_outside_context:
            mounts.append(self._local(Mount(str(self.snapshot_containerfile), file_target,
                                            chown=chown, purpose="Containerfile (snapshot)",
                                            file=True)))
        return mounts

    def bud_argv(self) -> list[str]:
        # --pull=never: the trusted fetch phase pulled what was missing; the build phase has no
        # network to pull with anyway. The image's facts come out of band (publish phase).
        # A fresh store is deleted with the build: a layer per step is a commit nothing will
        # ever reuse, so it commits once (measured here: a 15-RUN build 3.4 s against 4.7 s),
        # unless the publish phase pushes the steps as the registry cache.
        keep = self.layers if self.layers is not None else (
            self.profile.store != "fresh" or self.pushes_cache)
        if keep and self.pushes_cache:
            # --rm=false keeps Buildah's working containers in the (fresh) store: each names
            # the image its step started from, so the publish phase knows which images this
            # build used (hits and new ones) from stale ones the fetch phase pulled.
            argv = ["buildah", "bud", "--layers", "--rm=false", "--pull=never"]
        else:
            layers = "--layers" if keep else "--layers=false"
            argv = ["buildah", "bud", layers, "--force-rm", "--pull=never"]
        jobs = min(self.stage_width, self.cpus)
        if jobs > 1:
            argv += ["--jobs", str(jobs)]
        if self.no_cache:
            argv.append("--no-cache")
        argv += ["-f", self._containerfile_in_builder(), "-t", self.tag]
        # Values come from the environment the build phase's script loads from a file, so they
        # are on no command line (host `ps`) and in no container's inspect.
        for key, _value in self.build_args:
            argv += ["--build-arg", key]
        for name, _src in self.secrets:
            argv += ["--secret", f"id={name},src={SECRET_COPIES}/{name}"]
        if self.target_stage:
            argv += ["--target", self.target_stage]
        argv.append(CONTEXT_DIR)
        return argv

    def build_command(self) -> list[str]:
        prelude = self._prelude("build")
        if self.build_args:
            prelude.append(f"set -a; . {SECRET_COPIES}/{BUILD_ARGS_FILE}; set +a")
        return ["sh", "-ec", "; ".join([*prelude, "exec " + shlex.join(self.bud_argv())])]

    def on_store(self, argv: list[str]) -> list[str]:
        """``argv`` for a container on this plan's store mounts that is no phase (the cancel
        sweep, the load's export, the layer reader): in host-ro, after the same private copies
        of the host store's lists and lock files that every phase takes first."""
        return hostview.on_store(SHARED_STORE, argv) if self.profile.host_store_ro else argv

    def _prelude(self, phase: PhaseName) -> list[str]:
        """What every phase runs before Buildah: its own copy of the host store's lists and its
        own lock files (host-ro, see tui.engine.hostview), then its secrets."""
        view = hostview.prelude(SHARED_STORE) if self.profile.host_store_ro else []
        return [*view, *self._unpack_secrets(phase)]

    def _unpack_secrets(self, phase: PhaseName) -> list[str]:
        """Each secret of the phase arrives base64-encoded in /run/secrets and is decoded into
        a private directory on the container's own root filesystem. Why: podman 4.3's kube
        play writes a Secret's values into the files still encoded (measured), so one form
        serves both renderings; and Buildah re-mounts a ``--secret`` with flags of its own,
        which fails in a user namespace on the flags podman locked on /run/secrets."""
        keys = [m.target.rsplit("/", 1)[-1] for m in self.phase_mounts(phase)
                if m.kind == "secret"]
        if not keys:
            return []
        return [f"mkdir -m 700 {SECRET_COPIES}",
                *(f"base64 -d < {SECRETS_DIR}/{k} > {SECRET_COPIES}/{k}" for k in keys)]

    def push_argv(self) -> tuple[str, list[str]] | None:
        """The push command and the destination it names, or None without a push."""
        target = self.push_target()
        if target is None:
            return None
        if isinstance(target, OciTarget):
            dest = f"oci:{OCI_OUTPUT}:{target.tag}"
        else:
            dest = f"docker://{target}"
        argv = ["buildah", "push", "--digestfile", f"{FACTS_DIR}/{DIGEST_FILE}",
                *self._auth_flags()]
        return str(target), argv + [self.tag, dest]

    def publish_command(self) -> list[str]:
        """Trusted: records the image the store holds under the tag (id, manifest) in the facts
        directory, then pushes it. Nothing here reads what the build printed."""
        inspect = ["buildah", "inspect", "--type", "image", self.tag]
        script = [*self._prelude("publish"),
                  f"{shlex.join(inspect)} > {FACTS_DIR}/{IMAGE_FILE}",
                  # Written by containers/storage as it set up the store, here as in the build.
                  f"cat {GRAPH_ROOT}/{MOUNT_RECORD} > {FACTS_DIR}/{OVERLAY_FILE} 2>/dev/null "
                  "|| true"]
        for index, ref in enumerate(self.fetch_refs):
            # The images the build read, as the store holds them; one that cannot be inspected
            # is only missing from the facts, it does not fail the build.
            base = ["buildah", "inspect", "--type", "image", "--format",
                    "{{.FromImageID}} {{.FromImageDigest}}", "--", ref]
            script.append(f"{{ {shlex.join(base)} > {FACTS_DIR}/{BASE_FILE.format(index=index)}"
                          " 2>/dev/null || :; }")
        push = self.push_argv()
        if push is not None:
            script.append(shlex.join(push[1]))
        if self.writes_archive:
            script.append(shlex.join(archive_argv(self.tag)))
        if self.keeps_layers:
            # Optional: a failure (a full disk) costs the layers' report, never the build.
            script.append(f"{shlex.join(layers_argv(self.tag, LAYERS_DIR))} "
                          f"|| rm -rf {LAYERS_DIR}")
        if self.pushes_cache:
            script.append(self.cache_push_script())
        return ["sh", "-ec", "; ".join(script)]

    def cache_push_script(self) -> str:
        """Pushes the images this build used to the cache and lists them in a new index; writes
        ``images N pushed K`` (or ``failed: why``) to the facts. A failure is recorded, never
        the build's: the image is built (and pushed) already.

        Used = named by a working container (``--rm=false``: the image each step started from)
        or the tagged result, minus the bases, in the order the build made its working
        containers, the result last: the index keeps that order, so the fetch phase pulls the
        deepest image first (``cache_pull_script``). Already in the registry = pulled from the
        cache (named ``REPO:ID``): not pushed again. Of the others the deepest goes first (one
        push uploads every new layer), then the rest CACHE_PULL_JOBS at a time (a manifest and
        a config each). The store is the build's, so every id it gives is checked like input
        (64 hex), and globbing is off. One line, like ``cache_pull_script``."""
        repo, index = self.cache_repo, shlex.quote("docker://" + self.cache_index)
        fact = f"{FACTS_DIR}/{CACHE_FILE}"
        image_id = ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}"]
        # The bases' ids, as this phase recorded them in the facts before (BASE_FILE).
        files = " ".join(f"{FACTS_DIR}/{BASE_FILE.format(index=i)}"
                         for i in range(len(self.fetch_refs)))
        bases = f"$(cat {files} 2>/dev/null | cut -d' ' -f1 | tr '\\n' ' ')" if files else ""
        named = re.sub(r"([.\[\]*^$\\])", r"\\\1", repo)  # as a basic regular expression
        names = shlex.quote(f'"{named}:[0-9a-f]\\{{64\\}}"')
        push = shlex.join(["buildah", "push", "-q", *self._auth_flags()])
        commit = shlex.join(["buildah", "commit", "-q", "--rm", *self._auth_flags()])
        one = (f'if {push} "$0" {shlex.quote("docker://" + repo)}:"$0" >/dev/null 2>&1; '
               'then echo ok; else echo "failed $0"; fi')
        return " ".join([
            "if ! ( set -f;",
            f'bases=" {bases} ";',
            f"have=\" $(buildah images --json | grep -o {names} | tr -d '\"' | sed 's/.*://'"
            " | tr '\\n' ' ') \";",
            "ids=$( { buildah containers -a --format '{{.ImageID}}';"
            f" {shlex.join([*image_id, self.tag])}; }} | awk '!seen[$0]++');",
            "all=''; new=''; deep=''; n=0;",
            "for id in $ids; do",
            "case $id in *[!0-9a-f]*) continue;; esac;",
            "[ ${#id} -eq 64 ] || continue;",
            'case $bases in *" $id "*) continue;; esac;',
            f"[ $n -lt {CACHE_MAX_IMAGES} ] || break; n=$((n+1));",
            'case $have in *" $id "*) ;; *) new="$new $deep"; deep=$id;; esac;',
            'all="$all $id";',
            "done;",
            "out=$( { [ -z \"$deep\" ] || sh -c " + shlex.quote(one) + ' "$deep";',
            f"{_each('$new', one)}; }} );",
            "pushed=0; bad=''; for word in $out; do case $word in",
            "ok) pushed=$((pushed+1));; failed) bad=-;; *) [ \"$bad\" != - ] || bad=$word;; esac;",
            "done;",
            f'[ -z "$bad" ] || {{ echo "failed: push of $bad to {repo}" > {fact}; exit 1; }};',
            'stale=0; for id in $have; do case "$all " in *" $id "*) ;; *) stale=1;; esac; done;',
            "if [ $pushed -gt 0 ] || [ $stale -gt 0 ]; then",
            "c=$(buildah from scratch);",
            f'buildah config --label "{CACHE_LABEL}=${{all# }}" "$c";',
            f'{commit} "$c" {index} >/dev/null'
            f' || {{ echo "failed: push of the index {self.cache_index}" > {fact}; exit 1; }};',
            "fi;",
            f'echo "images $n pushed $pushed" > {fact} ); then',
            f"[ -s {fact} ] || echo 'failed: the cache step stopped' > {fact}; fi",
        ])

    def debug_rebuild(self) -> BuildPlan:
        """This plan for a debug session's rebuild of a fresh store (tui.engine.debug_shell):
        a layer per step, so the shell has the state before the failed one. It may pull the
        registry cache (trusted fetch phase), but pushes nothing: no image, no cache."""
        return dataclasses.replace(self, layers=True, cache_push=False)

    def debug_phase(self, command: list[str]) -> Phase:
        """The container of a debug shell running ``command`` (tui.engine.debug writes it):
        the build phase's store, context, user namespace and network (none); in host-ro, after
        the private lists and lock files every container on the host store's overlays takes."""
        return Phase(name="debug", network=phase_network("debug"),
                     command=tuple(self.on_store(command)),
                     mounts=tuple(self.phase_mounts("debug")),
                     container_name=f"{self.container_name}-shell")

    def phase(self, name: PhaseName) -> Phase:
        if name == "debug":
            raise ValueError("a debug phase needs its command: BuildPlan.debug_phase")
        command = {"fetch": self.fetch_argv, "build": self.build_command,
                   "publish": self.publish_command}[name]()
        return Phase(name=name, network=phase_network(name), command=tuple(command),
                     mounts=tuple(self.phase_mounts(name)),
                     container_name=f"{self.container_name}-{name}")

    def phases(self) -> list[Phase]:
        """Fetch (when the Containerfile names external images or the registry cache is
        pulled), build, publish; in order."""
        names: list[PhaseName] = ["fetch", "build", "publish"]
        return [self.phase(n) for n in names
                if n != "fetch" or self.fetch_refs or self.pulls_cache]

    def command(self) -> list[str]:
        """The build phase's command (the container that runs untrusted steps)."""
        return self.build_command()

    def environment(self) -> dict[str, str]:
        return {"BUILDAH_ISOLATION": "chroot"}

    def security_options(self) -> list[str]:
        if self.profile.selinux == "disable":
            return ["label=disable"]
        if self.profile.selinux == "project-level" and self.selinux_enabled:
            return [f"label=level:{mcs_level(self.project)}"]
        return []

    def secret_name(self, what: str) -> str:
        """The podman secret holding one of this build's inputs (removed after the build)."""
        return f"buildcage-{self.build_id}-{what}"

    def secret_contents(self) -> dict[str, bytes]:
        """Podman secret name -> the input it carries (auth file, build arguments, --secret
        files), as the phases read it once decoded."""
        data: dict[str, bytes] = {}
        if self.authfile is not None:
            data[self.secret_name("auth")] = self.authfile.read_bytes()
        if self.build_args:
            data[self.secret_name("args")] = self.build_args_file().encode()
        for name, src in self.secrets:
            data[self.secret_name(f"s-{name}")] = Path(src).read_bytes()
        return data

    def secret_data(self) -> dict[str, bytes]:
        """Podman secret name -> what the secret holds: the contents base64-encoded (the
        phases decode them, see ``_unpack_secrets``). ``prepare`` creates, ``release`` removes."""
        return {name: base64.b64encode(raw) for name, raw in self.secret_contents().items()}

    def kube_secret_name(self, phase: PhaseName) -> str:
        """The one Kubernetes Secret a phase's Pod reads (its keys are file names)."""
        return f"buildcage-{self.build_id}-{phase}"

    def kube_secret_data(self, phase: PhaseName) -> dict[str, bytes]:
        """File name in /run/secrets -> contents, for the phase's Kubernetes Secret."""
        data = self.secret_data()
        return {m.target.rsplit("/", 1)[-1]: data[m.source]
                for m in self.phase_mounts(phase) if m.kind == "secret"}

    def _auth_flags(self) -> list[str]:
        return ["--authfile", AUTHFILE] if self.authfile is not None else []

    def _containerfile_in_builder(self) -> str:
        if not self.containerfile_outside_context:
            return f"{CONTEXT_DIR}/{self.containerfile.relative_to(self.context).as_posix()}"
        return f"{FILE_DIR}/{self.containerfile.name}"

    def build_args_file(self) -> str:
        """``NAME='value'`` lines the build phase's shell loads (values shell-quoted)."""
        return "".join(f"{key}={shlex.quote(value)}\n" for key, value in self.build_args)

    def files(self) -> dict[Path, str]:
        """Host files the renderings refer to; written before the builder is created."""
        files = {self.storage_conf_path: self.storage_conf(),
                 self.registries_conf_path: self.registries_conf}
        if self.profile.store == "host":
            files[self.mount_record_path] = "true" if self.overlay == "fuse" else "false"
        return files


TRUSTED_PHASES: tuple[PhaseName, ...] = ("fetch", "publish")
"""The phases that run only buildcage's own commands; every other one runs the Containerfile's
steps (build) or a shell in their state (debug)."""


def archive_argv(image: str) -> list[str]:
    """Writes ``image`` (a tag or an id) of the store as an OCI archive for the host's podman,
    with no name inside: loading it moves no tag (tui.engine.load tags it after its checks),
    while a docker-archive carries names that the load applies at once (measured on podman 4.3:
    a docker-archive load also gave the image its source's name). The host's image id is the
    build's either way. Quiet, so no "Copying blob" line is counted as the push's."""
    return ["buildah", "push", "--quiet", image, f"oci-archive:{OUTPUT_DIR}/{ARCHIVE_FILE}"]


def layers_argv(image: str, directory: str) -> list[str]:
    """Writes ``image``'s layers as uncompressed tars (their digests are then their diff ids)
    into a ``dir:`` layout, with its manifest and config: what tui.engine.layer_reader reads,
    headers only. Quiet: no "Copying blob" line is taken for a push's."""
    return ["buildah", "push", "--quiet", "--disable-compression", image, f"dir:{directory}"]


def phase_network(phase: PhaseName) -> str:
    """Trusted phases reach the loopback registry through the host network; the build phase,
    where the Containerfile's RUN steps execute, has no network at all: under chroot isolation
    Buildah cannot give a RUN step a namespace of its own, so it shares its container's. So has
    a debug shell, and any phase that is not known to be trusted."""
    return "host" if phase in TRUSTED_PHASES else "none"


@dataclass(frozen=True)
class Phase:
    """One container of a build: what it runs, what it sees, which network it has."""

    name: PhaseName
    network: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    container_name: str

    @property
    def trusted(self) -> bool:
        """Whether only buildcage's own commands run in it (no Containerfile step, no shell)."""
        return self.name in TRUSTED_PHASES


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
