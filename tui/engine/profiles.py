"""Isolation profiles: how the builder container's image storage is laid out.

A profile is data: where the writable store lives, which extra read-only stores it sees, its user
namespace, SELinux handling, capabilities and storage.conf. The plan turns it into mounts and
options; the security facts shown to users are read back from the created container, not from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from tui.engine.errors import UserError

StoreKind = Literal["fresh", "host", "project"]
"""fresh: a new volume per build, removed after it · host: the host's own store, read-write ·
project: a persistent directory per (profile, project) under buildcage's data directory."""

Selinux = Literal["default", "disable", "project-level"]

HOST_STORE = "/var/lib/containers/storage"
"""The host's podman image store (rootful)."""



@dataclass(frozen=True)
class Profile:
    """One way to lay out a builder's storage, and the security options that go with it."""

    name: str
    summary: str
    """One line for pickers and `buildcage profiles`."""
    store: StoreKind
    host_store_ro: bool = False
    """Mount the host store read-only at /var/lib/shared (an additional image store)."""
    extra_stores: tuple[str, ...] = ()
    """More host directories mounted read-only as additional image stores (e.g. a network mount)."""
    userns: str = "host"
    """podman user namespace mode: "host" (none) or "auto" (a private range from /etc/subuid)."""
    selinux: Selinux = "default"
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    mount_program: str = "/usr/bin/fuse-overlayfs"
    """storage.conf mount_program; "" means the kernel's overlay (needs SYS_ADMIN in a userns)."""
    requires_confirmation: bool = False
    """Must be asked for explicitly (a CLI flag or a UI confirmation) before it runs."""
    builtin: bool = True

    @property
    def keeps_cache(self) -> bool:
        return self.store != "fresh"

    @property
    def sees_host_images(self) -> bool:
        return self.store == "host" or self.host_store_ro


BUILTIN_PROFILES: tuple[Profile, ...] = (
    Profile(
        name="host-ro",
        summary="host store read-only as an additional store + private writable store per project",
        store="project",
        host_store_ro=True,
    ),
    Profile(
        name="isolated",
        summary="fresh store per build in its own user namespace, deleted afterwards; no cache",
        store="fresh",
        userns="auto:size=65536",
    ),
    Profile(
        name="project",
        summary="one persistent store per project; cache within the project only",
        store="project",
        selinux="project-level",
    ),
    Profile(
        name="host-rw",
        summary="the host's own store read-write, SELinux separation off; fastest, least secure",
        store="host",
        selinux="disable",
        requires_confirmation=True,
    ),
)

DEFAULT_PROFILE = "host-ro"


class ProfileError(UserError, ValueError):
    """A user profile in the config file is not valid."""


def profile_from_config(name: str, table: dict[str, Any]) -> Profile:
    """Builds a user profile from a ``[profiles.NAME]`` TOML table.

    ``base = "host-ro"`` starts from a built-in profile; the other keys are Profile's fields.
    """
    known = {f.name for f in fields(Profile)} - {"name", "builtin"}
    unknown = set(table) - known - {"base"}
    if unknown:
        raise ProfileError(
            f"profile {name!r}: unknown keys {sorted(unknown)}; "
            f"allowed: base, {', '.join(sorted(known))}"
        )
    base_name = table.get("base")
    values: dict[str, Any] = {"summary": f"user profile {name}", "store": "project"}
    if base_name is not None:
        base = next((p for p in BUILTIN_PROFILES if p.name == base_name), None)
        if base is None:
            raise ProfileError(f"profile {name!r}: base {base_name!r} is not a built-in profile")
        values = {f.name: getattr(base, f.name) for f in fields(Profile)}
    values.update({k: v for k, v in table.items() if k != "base"})
    for key in ("extra_stores", "cap_add", "cap_drop"):
        values[key] = tuple(values.get(key, ()))
    if values["store"] not in ("fresh", "host", "project"):
        raise ProfileError(f"profile {name!r}: store must be fresh, host or project")
    values.update(name=name, builtin=False)
    return Profile(**values)


@dataclass
class ProfileSet:
    """The built-in profiles followed by the user's, looked up by name."""

    profiles: list[Profile] = field(default_factory=lambda: list(BUILTIN_PROFILES))

    @classmethod
    def from_config(cls, tables: dict[str, dict[str, Any]]) -> ProfileSet:
        builtin_names = {p.name for p in BUILTIN_PROFILES}
        user = []
        for name, table in tables.items():
            if name in builtin_names:
                raise ProfileError(f"profile {name!r} is built in; give yours another name")
            user.append(profile_from_config(name, table))
        return cls(list(BUILTIN_PROFILES) + user)

    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def get(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise ProfileError(f"no profile named {name!r}; known: {', '.join(self.names())}")
