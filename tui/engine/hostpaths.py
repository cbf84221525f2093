"""What a host path really gives a container that mounts it: engine sockets, the host's image
store, sensitive system directories. Paths are resolved (symlinks followed) and directories are
looked into, so neither a symlink nor a mount of a parent directory hides anything.

Used twice: when a user profile is loaded (to refuse or ask for confirmation) and when the facts
of a created builder container are read (``tui.engine.facts``). It looks at this machine's
filesystem, so it describes a local podman's host.
"""

from __future__ import annotations

import glob
import os
import stat
from collections import deque
from dataclasses import dataclass
from typing import Literal

HOST_STORE = "/var/lib/containers/storage"
"""The host's podman image store (rootful)."""

ENGINE_SOCKETS = ("podman.sock", "docker.sock", "containerd.sock", "crio.sock", "buildkitd.sock")

KNOWN_SOCKETS = (
    "/run/podman/podman.sock",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/buildkit/buildkitd.sock",
)
"""Where engines put their sockets: counted whether or not the engine runs right now (a socket
activated service creates it on the first connection)."""

KNOWN_SOCKET_GLOBS = (
    "/run/user/*/podman/podman.sock",
    "/run/user/*/docker.sock",
    "/run/user/*/buildkit/buildkitd.sock",
)

SENSITIVE_DIRS = ("/", "/etc", "/run", "/var/run", "/proc", "/sys", "/dev", "/home", "/root",
                  "/boot", "/var/lib/containers", "/var/lib/docker")
"""Host directories no image store should be: the system's configuration, runtime state,
kernel interfaces, devices and people's files."""

NOTHING_INSIDE_IS_SAFE = ("/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/run", "/var/run",
                          "/var/lib/containers", "/var/lib/docker")
"""Directories every part of which is sensitive (/etc/ssh holds host keys, ...); a directory
under /home may be a person's team store."""

WALK_LIMIT = 2000
"""At most this many directory entries are looked at under one mount (breadth first)."""
WALK_DEPTH = 6

StoreRelation = Literal["none", "is", "inside", "contains"]


def realpath(path: str) -> str:
    return os.path.realpath(path)


def _under(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or inside it (both resolved)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def listening_engine_sockets(proc_net_unix: str = "/proc/net/unix") -> tuple[str, ...]:
    """Unix sockets bound in this network namespace whose name is an engine's."""
    try:
        with open(proc_net_unix, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return ()
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 8 and parts[7].startswith("/") and \
                os.path.basename(parts[7]) in ENGINE_SOCKETS:
            found.append(parts[7])
    return tuple(dict.fromkeys(found))


def engine_socket_locations() -> tuple[str, ...]:
    """Resolved paths of every engine socket on this host: known locations, the ones of any
    user's engine, and those bound right now anywhere (``/proc/net/unix``)."""
    paths = list(KNOWN_SOCKETS)
    for pattern in KNOWN_SOCKET_GLOBS:
        paths += sorted(glob.glob(pattern))
    paths += listening_engine_sockets()
    return tuple(dict.fromkeys(realpath(p) for p in paths))


def sockets_under(directory: str, limit: int = WALK_LIMIT,
                  depth: int = WALK_DEPTH) -> tuple[str, ...]:
    """Engine sockets found by a bounded, breadth-first walk of ``directory`` (symlinks are not
    followed: inside a container they resolve in the container's own filesystem)."""
    found: list[str] = []
    queue: deque[tuple[str, int]] = deque([(directory, 0)])
    seen = 0
    while queue and seen < limit:
        current, level = queue.popleft()
        try:
            entries = os.scandir(current)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > limit:
                    break
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                if stat.S_ISSOCK(mode) and entry.name in ENGINE_SOCKETS:
                    found.append(entry.path)
                elif stat.S_ISDIR(mode) and level + 1 < depth:
                    queue.append((entry.path, level + 1))
    return tuple(found)


@dataclass(frozen=True)
class PathReach:
    """What mounting one host path exposes."""

    path: str
    resolved: str
    sockets: tuple[str, ...]
    """Host paths of the engine sockets reachable through it."""
    store: StoreRelation
    sensitive: str
    """The sensitive host directory it is or is inside, or ""."""

    def in_container(self, target: str, host_path: str) -> str:
        """Where ``host_path`` (under ``resolved``) shows inside a container mounting it at
        ``target``."""
        rest = host_path[len(self.resolved.rstrip("/")):] if self.resolved != "/" else host_path
        return target.rstrip("/") + rest if rest else target


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def store_relation(resolved: str, host_store: str = HOST_STORE) -> StoreRelation:
    """How a resolved path stands to the host's image store. Its ``volumes`` directory holds
    podman volumes (a fresh builder store is one), which are not the image store."""
    store = realpath(host_store)
    if resolved == store or _same_file(resolved, store):
        return "is"
    if _under(resolved, store):
        return "none" if _under(resolved, store + "/volumes") else "inside"
    if _under(store, resolved):
        return "contains"
    return "none"


def sensitive_dir(resolved: str) -> str:
    for directory in SENSITIVE_DIRS:
        real = realpath(directory)
        if resolved == real:
            return directory
    for directory in NOTHING_INSIDE_IS_SAFE:
        if _under(resolved, realpath(directory)):
            return directory
    return ""


def reach(path: str, *, host_store: str = HOST_STORE,
          socket_locations: tuple[str, ...] | None = None) -> PathReach:
    """Everything mounting ``path`` exposes; ``socket_locations`` defaults to this host's."""
    resolved = realpath(path)
    locations = engine_socket_locations() if socket_locations is None else socket_locations
    sockets = [s for s in locations if _under(s, resolved)]
    if os.path.isdir(resolved):
        sockets += [s for s in sockets_under(resolved) if realpath(s) not in sockets]
    return PathReach(path, resolved, tuple(dict.fromkeys(sockets)),
                     store_relation(resolved, host_store), sensitive_dir(resolved))
