"""Security facts read from a real builder container's ``inspect`` data, never from a table.

Each fact has one function reading it from the inspect dict, so what the summary card shows is
what podman actually created (the ratings in tui.engine.summary derive from these facts).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from tui.engine.hostpaths import (
    ENGINE_SOCKETS,
    HOST_STORE,
    KNOWN_SOCKETS,
    PathReach,
    engine_socket_locations,
    reach,
    realpath,
    store_relation,
)
from tui.engine.plan import GRAPH_ROOT, STORAGE_CONF
from tui.engine.plan import MOUNT_RECORD as OVERLAY_RECORD

__all__ = ["ENGINE_SOCKETS", "MountFact", "SecurityFacts", "describe_network",
           "facts_from_inspect", "overlay_fact", "read_engine_sockets", "read_host_store",
           "read_overlay"]

KERNEL_OVERLAY = "kernel overlay"

HostAccess = Literal["none", "read-only", "read-write"]


@dataclass(frozen=True)
class MountFact:
    source: str
    target: str
    read_only: bool
    kind: str


@dataclass(frozen=True)
class SecurityFacts:
    """What the created builder container really is."""

    privileged: bool
    effective_caps: tuple[str, ...]
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    selinux: str
    """The process label, "disabled" (label=disable), or "off" (SELinux not enabled here)."""
    seccomp: str
    userns: str
    """"host (none)" or the uid map, e.g. "0:200000:65536"."""
    mounts: tuple[MountFact, ...]
    devices: tuple[str, ...]
    host_store: HostAccess
    engine_sockets: tuple[str, ...]
    """Host engine sockets the builder can reach, and where (see read_engine_sockets)."""
    network: str
    """``HostConfig.NetworkMode``: "host", "none", "slirp4netns", "private", ..."""
    pids_limit: int
    ulimits: tuple[str, ...] = field(default=())
    host_store_via: tuple[str, ...] = field(default=())
    """Builder paths through which the host's image store is reached (see read_host_store)."""
    remote: bool = False
    """The podman service runs on another host: mount sources are taken as podman names them
    (they cannot be resolved or looked into from here; a remote plan mounts no user-chosen
    path, see tui.engine.planner.check_remote_profile)."""
    overlay: str = ""
    """The overlay Buildah mounts layers with, from the storage.conf and store the container
    is given (see read_overlay): "kernel overlay", or "fuse-overlayfs (...)" saying why."""

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _caps(values: list[str] | None) -> tuple[str, ...]:
    return tuple(sorted(v.removeprefix("CAP_") for v in values or []))


def read_privileged(attrs: dict[str, Any]) -> bool:
    return bool(attrs.get("HostConfig", {}).get("Privileged"))


def read_selinux(attrs: dict[str, Any]) -> str:
    opts = attrs.get("HostConfig", {}).get("SecurityOpt") or []
    if any(o in ("label=disable", "label:disable") for o in opts):
        return "disabled"
    return attrs.get("ProcessLabel") or "off"


def read_seccomp(attrs: dict[str, Any]) -> str:
    opts = attrs.get("HostConfig", {}).get("SecurityOpt") or []
    for opt in opts:
        if opt.startswith(("seccomp=", "seccomp:")):
            value = opt.split("=", 1)[-1].split(":", 1)[-1]
            return "unconfined" if value == "unconfined" else f"profile {value}"
    return "default profile"


def read_userns(attrs: dict[str, Any]) -> str:
    maps = attrs.get("HostConfig", {}).get("IDMappings") or {}
    uid = maps.get("UidMap") or []
    return ", ".join(uid) if uid else "host (none)"


def read_mounts(attrs: dict[str, Any]) -> tuple[MountFact, ...]:
    return tuple(
        MountFact(m.get("Source", ""), m.get("Destination", ""), not m.get("RW", True),
                  m.get("Type", ""))
        for m in attrs.get("Mounts") or []
    )


def _reaches(mounts: tuple[MountFact, ...], host_store: str,
             sockets: tuple[str, ...] | None) -> list[tuple[MountFact, PathReach]]:
    locations = engine_socket_locations() if sockets is None else sockets
    return [(m, reach(m.source, host_store=host_store, socket_locations=locations))
            for m in mounts if m.source]


def read_host_store_mounts(mounts: tuple[MountFact, ...], host_store: str = HOST_STORE,
                           remote: bool = False) -> tuple[MountFact, ...]:
    """The mounts through which the builder reaches the host's image store: the store itself,
    a part of it, or a directory holding it, after resolving symlinks on the host. A podman
    volume lives under the store's ``volumes`` directory but is not the image store."""
    if remote:
        return tuple(m for m in mounts if m.source and m.kind != "volume"
                     and literal_store_relation(m.source, host_store) != "none")
    return tuple(m for m in mounts if m.source and m.kind != "volume"
                 and store_relation(realpath(m.source), host_store) != "none")


def literal_store_relation(source: str, host_store: str = HOST_STORE) -> str:
    """How a path on another host stands to that host's store, from the names alone."""
    source, store = source.rstrip("/") or "/", host_store.rstrip("/")
    if source == store:
        return "is"
    if source.startswith(store + "/"):
        return "none" if source.startswith(store + "/volumes/") else "inside"
    return "contains" if store.startswith(source.rstrip("/") + "/") else "none"


def read_host_store(mounts: tuple[MountFact, ...], host_store: str = HOST_STORE,
                    remote: bool = False) -> HostAccess:
    """How the container reaches the host's image store: the strongest access of any mount."""
    through = read_host_store_mounts(mounts, host_store, remote)
    if any(not m.read_only for m in through):
        return "read-write"
    return "read-only" if through else "none"


def read_engine_sockets(mounts: tuple[MountFact, ...],
                        socket_locations: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Every engine socket of the host the builder can reach, each as ``HOST_PATH`` when it is
    mounted at the same path, else ``HOST_PATH as PATH_IN_BUILDER``: a mount of a directory
    (``/``, ``/run``, a symlink to one, ...) reaches every socket under it. ``socket_locations``
    defaults to this host's (see tui.engine.hostpaths)."""
    out: list[str] = []
    for m, found in _reaches(mounts, HOST_STORE, socket_locations):
        for sock in found.sockets:
            inside = found.in_container(m.target, sock)
            out.append(sock if inside == sock else f"{sock} as {inside}")
    return tuple(dict.fromkeys(out))


def _read_host_file(path: str, limit: int = 65536) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(limit)
    except (OSError, UnicodeDecodeError):
        return None


def _read_store_record(mounts: tuple[MountFact, ...], inside: str) -> str:
    """containers/storage's record in a store a RUN step may have written, read below the mount
    holding it without following a link at any step (tui.engine.store_files); "" if unread."""
    from tui.engine.store_files import StoreFileError, read_file

    found = _mount_of(mounts, inside)
    if found is None:
        return ""
    mount, rest = found
    if not rest:  # a file mounted there (host-rw's private copy of the record)
        source = PurePosixPath(mount.source)
        root, rest = str(source.parent), source.name
    else:
        root = mount.source
    try:
        return read_file(root, rest, 16).decode("ascii", "replace")
    except StoreFileError:
        return ""


def _mount_of(mounts: tuple[MountFact, ...], inside: str) -> tuple[MountFact, str] | None:
    """The mount with the longest target holding the builder's path ``inside``, and the rest of
    the path below it ("" for the target itself); None: it is in the container's own files."""
    best = None
    for m in mounts:
        target = PurePosixPath(m.target)
        path = PurePosixPath(inside)
        if m.source and (path == target or target in path.parents):
            if best is None or len(m.target) > len(best.target):
                best = m
    if best is None:
        return None
    rest = str(PurePosixPath(inside).relative_to(best.target))
    return best, "" if rest == "." else rest


def _host_path(mounts: tuple[MountFact, ...], inside: str) -> str | None:
    """Where the builder's path ``inside`` is on this host (None: in the container's own files)."""
    found = _mount_of(mounts, inside)
    if found is None:
        return None
    mount, rest = found
    return str(PurePosixPath(mount.source) / rest) if rest else mount.source


def read_overlay(mounts: tuple[MountFact, ...]) -> str:
    """The overlay the builder's Buildah mounts layers with, from what podman gave the
    container: the storage.conf mounted into it, and containers/storage's own record in a
    store on this host's disk, both read here (the podman host)."""
    conf_path = _host_path(mounts, STORAGE_CONF)
    conf = _read_host_file(conf_path) if conf_path else None
    record = _read_store_record(mounts, f"{GRAPH_ROOT}/{OVERLAY_RECORD}")
    return overlay_fact(conf, record.strip())


def overlay_fact(conf: str | None, record: str = "") -> str:
    """What a storage.conf's text and a store's record ("true", "false" or "") make Buildah
    mount: containers/storage goes on with fuse-overlayfs in a store made with it, whatever
    storage.conf says (measured)."""
    if conf is None:
        return "unknown: the builder's storage.conf cannot be read here"
    try:
        overlay = tomllib.loads(conf).get("storage", {}).get("options", {}).get("overlay", {})
        program = str(overlay.get("mount_program", ""))
    except (tomllib.TOMLDecodeError, AttributeError):
        return "unknown: the builder's storage.conf does not parse"
    if program:
        return f"fuse-overlayfs ({program})"
    if record == "true":
        return "fuse-overlayfs (the store was made with it: containers/storage keeps it)"
    return KERNEL_OVERLAY


NETWORKS = {
    "host": "host: RUN steps can reach services on the host's loopback",
    "none": "none: no network at all",
    "slirp4netns": "slirp4netns: its own namespace, no route to the host's loopback",
    "pasta": "pasta: its own namespace",
    "private": "private: its own namespace",
    "bridge": "bridge: RUN steps can reach the host and its networks through the bridge",
}


def describe_network(mode: str) -> str:
    """The network mode from inspect (``HostConfig.NetworkMode``) with what it means."""
    if mode in NETWORKS:
        return NETWORKS[mode]
    if mode.startswith(("container:", "ns:")):
        return f"{mode}: shares another namespace's network"
    return mode or "default"


def read_remote_engine_sockets(mounts: tuple[MountFact, ...]) -> tuple[str, ...]:
    """The known engine socket paths under a remote container's mount sources, by name."""
    out: list[str] = []
    for m in mounts:
        source = m.source.rstrip("/") or "/"
        for sock in KNOWN_SOCKETS:
            if m.source and (source == "/" or sock == source or sock.startswith(source + "/")):
                inside = m.target.rstrip("/") + sock[len(source.rstrip("/")):]
                out.append(sock if inside == sock else f"{sock} as {inside}")
    return tuple(dict.fromkeys(out))


def facts_from_inspect(attrs: dict[str, Any], host_store: str = HOST_STORE,
                       remote: bool = False,
                       overlay_volumes: list[dict[str, Any]] | None = None) -> SecurityFacts:
    """The facts of a container from its inspect data; mount sources are looked at on this
    machine (resolved, and looked into), which is the podman host when podman is local; on a
    ``remote`` service they are taken as named.

    ``overlay_volumes``: those the container was created with. podman 4.3's inspect shows none
    of them (measured: no trace in ``Mounts``, ``Binds`` or anywhere else), so they are taken
    as podman was asked for them; their sources are only ever read."""
    host = attrs.get("HostConfig", {})
    mounts = read_mounts(attrs) + tuple(
        MountFact(o.get("source", ""), o.get("destination", ""), True, "overlay")
        for o in overlay_volumes or [])
    store_mounts = read_host_store_mounts(mounts, host_store, remote)
    devices = tuple(d.get("PathOnHost", "") for d in host.get("Devices") or [])
    return SecurityFacts(
        privileged=read_privileged(attrs),
        effective_caps=_caps(attrs.get("EffectiveCaps")),
        cap_add=_caps(host.get("CapAdd")),
        cap_drop=_caps(host.get("CapDrop")),
        selinux=read_selinux(attrs),
        seccomp=read_seccomp(attrs),
        userns=read_userns(attrs),
        mounts=mounts,
        devices=devices,
        host_store=read_host_store(mounts, host_store, remote),
        host_store_via=tuple(m.target for m in store_mounts),
        engine_sockets=(read_remote_engine_sockets(mounts) if remote
                        else read_engine_sockets(mounts)),
        remote=remote,
        network=host.get("NetworkMode", ""),
        pids_limit=int(host.get("PidsLimit") or 0),
        ulimits=tuple(f"{u['Name'].removeprefix('RLIMIT_').lower()}={u['Soft']}:{u['Hard']}"
                      for u in host.get("Ulimits") or []),
        # On a remote service the storage.conf is copied in, not mounted: the plan says it
        # (tui.engine.probe).
        overlay="" if remote else read_overlay(mounts),
    )
