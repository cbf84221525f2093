"""Security facts read from a real builder container's ``inspect`` data, never from a table.

Each fact has one function reading it from the inspect dict, so what the summary card shows is
what podman actually created (the ratings in tui.engine.summary derive from these facts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tui.engine.profiles import HOST_STORE

ENGINE_SOCKETS = ("podman.sock", "docker.sock", "containerd.sock", "crio.sock", "buildkitd.sock")
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
    network: str
    pids_limit: int
    ulimits: tuple[str, ...] = field(default=())

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


def read_host_store(mounts: tuple[MountFact, ...], host_store: str = HOST_STORE) -> HostAccess:
    """How the container reaches the host's image store: the strongest access of any mount."""
    access: HostAccess = "none"
    for m in mounts:
        if m.source == host_store or m.source.startswith(host_store + "/overlay"):
            if not m.read_only:
                return "read-write"
            access = "read-only"
    return access


def read_engine_sockets(mounts: tuple[MountFact, ...]) -> tuple[str, ...]:
    return tuple(m.source for m in mounts if m.source.endswith(ENGINE_SOCKETS)
                 or m.source.rstrip("/") in ("/run/podman", "/var/run/docker", "/run/containerd"))


def facts_from_inspect(attrs: dict[str, Any]) -> SecurityFacts:
    host = attrs.get("HostConfig", {})
    mounts = read_mounts(attrs)
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
        host_store=read_host_store(mounts),
        engine_sockets=read_engine_sockets(mounts),
        network=host.get("NetworkMode", ""),
        pids_limit=int(host.get("PidsLimit") or 0),
        ulimits=tuple(f"{u['Name'].removeprefix('RLIMIT_').lower()}={u['Soft']}:{u['Hard']}"
                      for u in host.get("Ulimits") or []),
    )
