"""A phase's exit code from conmon's exit file, as soon as its container exits.

podman learns that a container exited from the file its conmon writes (``--exit-dir``/ID),
and its ``wait`` answers only once the clean-up process conmon starts next (``podman container
cleanup``: unmounting the root file system, the volumes, the network) has let go of the
container's lock. Measured here (podman 4.3.1, a builder running ``sleep 0.3; exit 3``, 8
runs): the file was there 0.30 s after the start, the wait answered 0.36 s after it, 55 ms
later every time; in a session's warm *tiny* build 46 ms of its 0.31 s. conmon writes the
file last: after the container's PID 1 is gone (and with it every process of its PID
namespace: the kernel reaps them before PID 1's exit is reported), after draining its output
into the log and syncing the log. So a phase read from the file has all its output and
nothing of it runs any more; what podman still does is its own clean-up, which the next
request for that container (a start, a remove) waits for under the same lock.

Trusted as podman trusts it: the file is conmon's, in podman's own run directory, which no
builder mounts. Where that cannot be seen to hold, the phase waits for podman, as before:
- the exit directory is read from the command line of the container's own conmon
  (``State.ConmonPid``: owned by this user, in this PID namespace, running the conmon binary
  its command line names, ``-c`` this container's id), not guessed from a default;
- it must be absolute, named with no link, a folder of this user that nobody else may write
  into, and not inside anything the container mounts writable;
- the file must be a regular file of this user, not a link, written after this start (podman
  removes the last run's file when it starts a container again; the time is checked all the
  same), holding a plain exit status (0-255: conmon writes -1 for a timeout, left to podman).
A remote service's files are on another machine: never looked for. Nor where the output is
read through the API (another log driver): the file is looked for as often as podman's log
file is read (``EXIT_POLL_S``).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.engine.paths import within

EXIT_POLL_S = 0.01
"""How often a running phase looks for its exit file (a stat and a read of its log each time:
about 0.1 ms of CPU here); the answer comes at most this much after the exit."""

_STATUS = re.compile(rb"\s*(\d{1,3})\s*")


@dataclass(frozen=True)
class ExitFile:
    """Where conmon writes one container's exit status, and when its start began."""

    path: Path
    since_ns: int
    """``time.time_ns()`` before the start: a file older than that is an earlier run's."""

    def code(self) -> int | None:
        """The exit status once conmon wrote it for this run; None before, or when the file is
        not plainly conmon's (the phase then takes podman's answer)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                         | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or info.st_mtime_ns < self.since_ns):
                return None
            data = os.read(fd, 16)
        except OSError:
            return None
        finally:
            os.close(fd)
        match = _STATUS.fullmatch(data)
        if match is None or int(match[1]) > 255:
            return None
        return int(match[1])


def conmon_exit_dir(pid: int, container_id: str) -> Path | None:
    """The ``--exit-dir`` of process ``pid`` if it is this user's conmon of ``container_id``."""
    if pid <= 0 or not re.fullmatch(r"[0-9a-f]{64}", container_id):
        return None
    proc = Path(f"/proc/{pid}")
    try:
        if proc.stat().st_uid != os.geteuid():
            return None
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        # A process of this user could name itself conmon: a RUN step is root, as buildcage
        # is under rootful podman. It runs in its container's PID namespace and from the
        # container's files, conmon in this one and from the host's binary it names.
        if not os.path.samefile(proc / "ns" / "pid", "/proc/self/ns/pid"):
            return None
        if not argv or not argv[0].startswith(b"/") \
                or os.path.basename(argv[0]) != b"conmon" \
                or not os.path.samefile(proc / "exe", os.fsdecode(argv[0])):
            return None
    except OSError:
        return None
    # The first of each (podman puts them before its --exit-command-arg list).
    cid: bytes | None = None
    exit_dir: bytes | None = None
    args = argv[1:]
    for i, arg in enumerate(args):
        name, eq, value = arg.partition(b"=")
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else b""
        if name in (b"-c", b"--cid") and cid is None:
            cid = value
        elif name == b"--exit-dir" and exit_dir is None:
            exit_dir = value
    if cid != container_id.encode() or exit_dir is None:
        return None
    if not exit_dir.startswith(b"/") or b"\n" in exit_dir:
        return None
    return Path(os.fsdecode(exit_dir))


def _plain_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of this user that nobody else may write into, named with
    no link anywhere (so what the mount check compares is where conmon writes)."""
    if os.path.realpath(path) != str(path):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _inside(path: Path, folder: str) -> bool:
    """``path`` (named with no link: ``_plain_folder``) is ``folder`` or below it, resolved."""
    try:
        return within(path, Path(os.path.realpath(folder)))
    except ValueError:  # (a NUL in the name)
        return True  # cannot tell: as if inside


def locate(attrs: dict[str, Any], container_id: str, since_ns: int) -> ExitFile | None:
    """The exit file of a started container, from its inspect (``attrs``, read after the
    start); None when it cannot be trusted or found (then podman's wait decides)."""
    state = attrs.get("State") or {}
    pid = state.get("ConmonPid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    exit_dir = conmon_exit_dir(pid, container_id)
    if exit_dir is None or not _plain_folder(exit_dir):
        return None
    for mount in attrs.get("Mounts") or []:
        source = mount.get("Source") if isinstance(mount, dict) else None
        if isinstance(source, str) and source and mount.get("RW", True) \
                and _inside(exit_dir, source):
            return None  # the container could write there: not a channel it may speak on
    return ExitFile(exit_dir / container_id, since_ns)
