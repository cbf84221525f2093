"""Isolation profiles: how the builder container's image storage is laid out.

A profile is data: where the writable store lives, which extra read-only stores it sees, its user
namespace, SELinux handling, capabilities and storage.conf. The plan turns it into mounts and
options; the security facts shown to users are read back from the created container, not from here.
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Literal

from tui.engine.errors import UserError
from tui.engine.hostpaths import HOST_STORE, reach, realpath

StoreKind = Literal["fresh", "host", "project"]
"""fresh: a new volume per build, removed after it · host: the host's own store, read-write ·
project: a persistent directory per (profile, project) under buildcage's data directory."""

Selinux = Literal["default", "disable", "project-level"]

Overlay = Literal["auto", "kernel", "fuse"]
"""auto: the kernel's overlay where ``buildcage doctor``'s probe found it works, else
fuse-overlayfs (see tui.engine.overlay) · kernel: always the kernel's · fuse: always
fuse-overlayfs (``mount_program``)."""

__all__ = ["BUILTIN_PROFILES", "DEFAULT_CAPS", "HOST_STORE", "LINUX_CAPS", "Profile",
           "ProfileError", "ProfileSet", "Risk", "profile_from_config"]

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
    overlay: Overlay = "fuse"
    """Which overlay the builder mounts layers with. No capability is needed for the kernel's:
    Buildah mounts it in a user namespace of its own (see tui.engine.overlay)."""
    mount_program: str = "/usr/bin/fuse-overlayfs"
    """storage.conf mount_program when fuse-overlayfs is used; "" (older configs) means
    ``overlay = "kernel"``."""
    requires_confirmation: bool = False
    """Must be asked for explicitly (a CLI flag or a UI confirmation) before it runs."""
    registry_cache: bool = False
    """A fresh store's layer cache kept in a registry (``buildcage-cache/PROJECT``): the trusted
    fetch phase pulls it before the build, the publish phase pushes what the build added (see
    ``BuildPlan.cache_repo``). Only for ``store = "fresh"``; the other stores keep their own."""
    registry_cache_always: bool = False
    """Use the registry cache even for a build whose last full run says it does not pay
    (tui.engine.cache_worth); without it, the cache is left off there."""
    builtin: bool = True

    @property
    def keeps_cache(self) -> bool:
        return self.store != "fresh"

    @property
    def sees_host_images(self) -> bool:
        return self.store == "host" or self.host_store_ro

    def risks(self) -> tuple[Risk, ...]:
        """What must be confirmed before this profile runs (empty: nothing)."""
        return profile_risks(self)


BUILTIN_PROFILES: tuple[Profile, ...] = (
    Profile(
        name="host-ro",
        summary="host store read-only as an additional store + private writable store per project",
        store="project",
        host_store_ro=True,
        overlay="auto",
    ),
    Profile(
        name="isolated",
        summary="fresh store per build in its own user namespace, deleted afterwards; layer "
                "cache through the registry",
        store="fresh",
        userns="auto:size=65536",
        overlay="auto",
        registry_cache=True,
    ),
    Profile(
        name="project",
        summary="one persistent store per project; cache within the project only",
        store="project",
        selinux="project-level",
        overlay="auto",
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
    """A user profile in the config file is not valid or is refused as dangerous."""


# -- what a user profile may say ----------------------------------------------------------------

LINUX_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})
"""Every capability of linux/capability.h (6.x), without the CAP_ prefix."""

DEFAULT_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID",
    "SETPCAP", "SETUID", "SYS_CHROOT",
})
"""A builder's capabilities when its profile adds none (podman's default set here)."""

HOST_ESCAPE_CAPS = frozenset({
    "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_BOOT",
    "MAC_ADMIN", "MAC_OVERRIDE", "BPF", "PERFMON", "SYS_TIME", "AUDIT_CONTROL", "SYSLOG",
    "NET_ADMIN",
})
"""Capabilities that, held by the host's root, reach past the container: a known way out
(SYS_ADMIN, DAC_READ_SEARCH, SYS_PTRACE, ...), the host's kernel (SYS_MODULE, BPF, SYS_TIME,
audit, syslog), or, with the host network the builder has, the host's network (NET_ADMIN).
Refused unless the builder has its own user namespace, where they only cover what that
namespace owns."""

KEYS = ("base", "cap_add", "cap_drop", "extra_stores", "host_store_ro", "mount_program",
        "overlay", "registry_cache", "registry_cache_always", "requires_confirmation", "selinux",
        "store", "summary", "userns")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_PROGRAM = re.compile(r"/[A-Za-z0-9._+/-]*")
_STORE_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_USERNS = re.compile(r"host|auto(:size=([1-9][0-9]{0,9}))?")
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))

ConfirmKind = Literal["host-rw", "unsafe"]
CONFIRM_FLAGS: dict[str, str] = {"host-rw": "--allow-host-rw", "unsafe": "--allow-unsafe-profile"}
"""The CLI flag that confirms each kind of risk."""


@dataclass(frozen=True)
class Risk:
    """Why a profile must be confirmed before it runs, and which confirmation covers it."""

    kind: ConfirmKind
    text: str


def _shown(value: Any) -> str:
    """A config value as TOML would show it (strings in double quotes)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" or ord(c) in _BIDI for c in text)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _normal_caps(where: str, key: str, value: Any, *, allow_all: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}.{key} must be a list of capability names, got "
                           f"{_shown(value)}")
    names: list[str] = []
    for raw in value:
        name = raw.strip().upper().removeprefix("CAP_")
        if name == "ALL" and allow_all:
            names.append(name)
            continue
        if name == "ALL":
            raise ProfileError(
                f"{where}.{key}: ALL is refused: every capability, including SYS_ADMIN, "
                "SYS_MODULE and SYS_RAWIO, is a way out of the container")
        if name not in LINUX_CAPS:
            raise ProfileError(f"{where}.{key}: {_shown(raw)} is not a Linux capability")
        names.append(name)
    return tuple(sorted(set(names)))


def _extra_stores(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}.extra_stores must be a list of absolute paths, got "
                           f"{_shown(value)}")
    paths = []
    for raw in value:
        if not _STORE_PATH.fullmatch(raw) or ".." in raw.split("/"):
            raise ProfileError(f"{where}.extra_stores: {_shown(raw)} must be an absolute path of "
                               "letters, digits and . _ - + @ / (no .. and no :)")
        paths.append(posixpath.normpath(raw).replace("//", "/"))
    return tuple(paths)


def _check_types(where: str, values: dict[str, Any]) -> dict[str, Any]:
    """Checks and normalizes every key's type and value; returns the values to build from."""
    out = dict(values)
    if out["store"] not in ("fresh", "project", "host"):
        raise ProfileError(f'{where}.store must be "fresh", "project" or "host", got '
                           f"{_shown(out['store'])}")
    for key in ("host_store_ro", "registry_cache", "registry_cache_always",
                "requires_confirmation"):
        if not isinstance(out[key], bool):
            raise ProfileError(f"{where}.{key} must be true or false, got {_shown(out[key])}")
    if out["registry_cache"] and out["store"] != "fresh":
        raise ProfileError(f'{where}.registry_cache needs store = "fresh": a project or host '
                           "store keeps its layers itself")
    summary = out["summary"]
    if not isinstance(summary, str) or _has_control(summary) or len(summary) > 200:
        raise ProfileError(f"{where}.summary must be one line of text without control "
                           f"characters (at most 200 characters), got {_shown(summary)}")
    userns = out["userns"]
    match = _USERNS.fullmatch(userns) if isinstance(userns, str) else None
    if match is None or (match.group(2) and int(match.group(2)) > 2**32 - 1):
        raise ProfileError(f'{where}.userns must be "host", "auto" or "auto:size=N" (N from 1 to '
                           f"4294967295), got {_shown(userns)}")
    if out["selinux"] not in ("default", "disable", "project-level"):
        raise ProfileError(f'{where}.selinux must be "default", "disable" or "project-level", '
                           f"got {_shown(out['selinux'])}")
    program = out["mount_program"]
    if not isinstance(program, str) or (
            program and (not _PROGRAM.fullmatch(program) or ".." in program.split("/"))):
        raise ProfileError(f"{where}.mount_program must be \"\" (the kernel's overlay) or an "
                           "absolute path of letters, digits and . _ - + /, got "
                           f"{_shown(program)}")
    if out["overlay"] not in ("auto", "kernel", "fuse"):
        raise ProfileError(f'{where}.overlay must be "auto", "kernel" or "fuse", got '
                           f"{_shown(out['overlay'])}")
    if program == "":  # the older spelling of the kernel's overlay
        out["overlay"], out["mount_program"] = "kernel", Profile.mount_program
    if out["overlay"] != "fuse" and out["store"] == "host":
        raise ProfileError(
            f'{where}.overlay = {_shown(out["overlay"])} is refused with store = "host": Buildah '
            "mounts the kernel's overlay in a user namespace of its own, where overlay keeps "
            "its directory markers in user.overlay.* attributes; the host's podman reads "
            "trusted.overlay.* ones, so the layers written into its store would show deleted "
            'files again (measured). Use overlay = "fuse"')
    for key in ("cap_add", "cap_drop", "extra_stores"):  # a base profile's tuples
        if isinstance(out[key], tuple):
            out[key] = list(out[key])
    out["cap_add"] = _normal_caps(where, "cap_add", out["cap_add"], allow_all=False)
    out["cap_drop"] = _normal_caps(where, "cap_drop", out["cap_drop"], allow_all=True)
    out["extra_stores"] = _extra_stores(where, out["extra_stores"])
    return out


def _check_refused(where: str, profile: Profile) -> None:
    """Settings no confirmation makes acceptable."""
    if profile.userns == "host":
        for cap in profile.cap_add:
            if cap in HOST_ESCAPE_CAPS:
                raise ProfileError(
                    f"{where}.cap_add: {cap} is refused without a private user namespace "
                    '(userns = "auto"): with it the builder\'s root, the host\'s root, reaches '
                    "past the container into the host")
    for path in profile.extra_stores:
        found = reach(path)
        if found.sockets:
            raise ProfileError(
                f"{where}.extra_stores: {path} is refused: it holds the engine socket "
                f"{found.sockets[0]}, and whoever reaches it controls the host's containers")


def profile_risks(profile: Profile) -> tuple[Risk, ...]:
    """Everything about ``profile`` that must be confirmed before it runs."""
    risks: list[Risk] = []
    if profile.store == "host":
        risks.append(Risk("host-rw", "it lets the build write into the host's image store "
                                     "(it can plant images the host will run)"))
    extra = sorted(set(profile.cap_add) - DEFAULT_CAPS - set(profile.cap_drop))
    if extra:
        risks.append(Risk("unsafe", "it adds capabilities beyond the builder's default set: "
                                    + ", ".join(extra)))
    if profile.selinux == "disable":
        kind: ConfirmKind = "host-rw" if profile.store == "host" else "unsafe"
        risks.append(Risk(kind, "it turns SELinux separation off"))
    for path in profile.extra_stores:
        found = reach(path)
        through = (f" (through the symlink to {found.resolved})"
                   if found.resolved != posixpath.normpath(path) else "")
        if found.store != "none":
            relation = {"is": "is", "inside": "is inside", "contains": "contains"}[found.store]
            risks.append(Risk("unsafe", f"its extra store {path} {relation} the host's image "
                                        f"store{through}: it sees every host image"))
        elif found.sensitive:
            relation = "is" if found.resolved == realpath(found.sensitive) else "is inside"
            risks.append(Risk("unsafe", f"its extra store {path} {relation} the host directory "
                                        f"{found.sensitive}{through}"))
    if profile.requires_confirmation and not risks:
        risks.append(Risk("unsafe", "its configuration asks for confirmation"))
    return tuple(risks)


def confirmation_needed(profile: Profile,
                        confirmed: bool | frozenset[str] | set[str]) -> tuple[Risk, ...]:
    """The risks of ``profile`` not covered by ``confirmed``: True (a person said yes to the
    profile as a whole, e.g. in the TUI's dialog) or the kinds confirmed by CLI flags."""
    if confirmed is True:
        return ()
    kinds = confirmed if isinstance(confirmed, (set, frozenset)) else frozenset()
    return tuple(r for r in profile.risks() if r.kind not in kinds)


def confirmation_message(profile: Profile, risks: tuple[Risk, ...]) -> str:
    flags = " ".join(CONFIRM_FLAGS[k] for k in CONFIRM_FLAGS if any(r.kind == k for r in risks))
    return (f"profile {profile.name!r} must be confirmed: "
            + "; ".join(r.text for r in risks)
            + f"; confirm it explicitly (CLI: {flags}, TUI: answer the confirmation)")


def profile_from_config(name: str, table: dict[str, Any], source: str = "config") -> Profile:
    """Builds a user profile from a ``[profiles.NAME]`` TOML table, or raises ProfileError
    naming ``source`` (the config file), the profile and the key.

    ``base = "host-ro"`` starts from a built-in profile; the other keys are Profile's fields.
    """
    if not _NAME.fullmatch(name):
        raise ProfileError(f"{source}: profiles.{_shown(name)}: a profile name is 1 to 40 "
                           "lower-case letters, digits, - and _, starting with a letter or digit")
    where = f"{source}: profiles.{name}"
    if not isinstance(table, dict):
        raise ProfileError(f"{where} must be a table")
    for key in table:
        if key == "privileged":
            raise ProfileError(f"{where}.privileged is not supported: a privileged builder is "
                               "root on the host with every device; buildcage never creates one")
        if key not in KEYS:
            raise ProfileError(f"{where}.{key} is not a profile key (known: {', '.join(KEYS)})")
    values: dict[str, Any] = {f.name: f.default for f in fields(Profile)
                              if f.default is not MISSING}
    values.update(summary=f"user profile {name}", store="project")
    if "base" in table:
        builtin = {p.name: p for p in BUILTIN_PROFILES}
        if not isinstance(table["base"], str) or table["base"] not in builtin:
            raise ProfileError(f"{where}.base must be one of the built-in profiles "
                               f"({', '.join(builtin)}), got {_shown(table['base'])}")
        values = {f.name: getattr(builtin[table["base"]], f.name) for f in fields(Profile)}
    values.update({k: v for k, v in table.items() if k != "base"})
    if "overlay" not in table:
        # Unsaid: a base's choice, else "auto"; the host's own store stays on fuse-overlayfs
        # (see _check_types).
        values["overlay"] = values["overlay"] if "base" in table else "auto"
        if values.get("store") == "host":
            values["overlay"] = "fuse"
    elif table.get("mount_program") == "" and table["overlay"] != "kernel":
        raise ProfileError(f'{where}: mount_program = "" means the kernel\'s overlay, but '
                           f"overlay is {_shown(table['overlay'])}")
    if "registry_cache" not in table and values["store"] != "fresh":
        values["registry_cache"] = False  # base = "isolated" with a store of its own
    values = _check_types(where, values)
    values.update(name=name, builtin=False)
    profile = Profile(**values)
    _check_refused(where, profile)
    risks = profile_risks(replace(profile, requires_confirmation=False))
    if risks and table.get("requires_confirmation") is False:
        raise ProfileError(f"{where}.requires_confirmation cannot be false: this profile "
                           + risks[0].text.removeprefix("it "))
    if risks:
        profile = replace(profile, requires_confirmation=True)
    return profile


@dataclass
class ProfileSet:
    """The built-in profiles followed by the user's, looked up by name."""

    profiles: list[Profile] = field(default_factory=lambda: list(BUILTIN_PROFILES))

    @classmethod
    def from_config(cls, tables: dict[str, dict[str, Any]], source: str = "config") -> ProfileSet:
        """``source`` names the config file in error messages."""
        builtin_names = {p.name for p in BUILTIN_PROFILES}
        user = []
        for name, table in tables.items():
            if name in builtin_names:
                raise ProfileError(f"{source}: profiles.{name}: {name} is built in; "
                                   "give yours another name")
            user.append(profile_from_config(name, table, source))
        return cls(list(BUILTIN_PROFILES) + user)

    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def get(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise ProfileError(f"no profile named {name!r}; known: {', '.join(self.names())}")
