"""What each step of a build is keyed on in Buildah's layer cache, read on the host before the
build: the instruction, the build arguments a RUN step sees, and the context files a COPY/ADD
reads (ignore file applied). ``tui.engine.cache_why`` compares them with an earlier build's.

What Buildah 1.28 keys a step on, measured here with real rebuilds (a project store):

* RUN: its text and every build argument declared in its stage so far that has a value
  (``|2 A=1 B=2 /bin/sh -c ...`` in the layer's history), used or not. An ARG step itself is
  keyed on the names only; ENV, WORKDIR and the rest on their text as written (``ENV X=$A`` came
  from cache after ``A`` changed).
* COPY/ADD from the context: the content, mode and owner of the files it copies (a ``chmod`` or
  ``chown`` of a copied file was a miss), not their mtime (``touch`` was a hit), nor the mode of
  a copied directory itself; files the ignore file excludes do not count.
* The first step of a stage: the image it starts from.

Files are read through directory descriptors opened with ``O_NOFOLLOW`` (the context is
hostile: nothing outside it is read, a FIFO never blocks) and hashed with SHA-256; a file whose
size, mtime, ctime and inode are those of the earlier build's record keeps that record's digest
instead of being read again, unless it had changed just before that record was read
(``RACY_NS``). A source that is itself a link is not read: Buildah copies what it points to
(measured), which the host does not follow. Secret-looking build arguments
(``secret_looking_args``) are kept as an HMAC under a key of the history's, never as values.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import stat
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.engine.containerfile import (
    _instructions,
    _parse_args,
    parse_containerfile,
    read_containerfile,
    substitute,
)
from tui.engine.go_parser import dockerfile
from tui.engine.ignorefile import IGNORE_FILES, IgnoreFileError, IgnoreMatcher, read_ignore
from tui.engine.plan import BuildPlan
from tui.engine.planner import secret_looking_args
from tui.engine.secret_args import secret_digest

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_GLOB = re.compile(r"[*?\[]")
MAX_ENTRIES = 100_000
"""Per step: a COPY of more context entries than this is not listed (its files are "not
checked")."""
RACY_NS = 2_000_000_000
"""An entry whose mtime or ctime is less than this before its reading keeps no ctime, so the
next build reads the file again instead of trusting the digest: the kernel stamps file times
from a clock that moves in ticks (jiffies), so a write in the same tick as the read, after it,
leaves size, times and inode as they were (git's "racy clean" rule). An unchanged build
(tui.engine.unchanged) trusts these digests."""
BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                          "ftp_proxy", "NO_PROXY", "no_proxy"})
"""Build arguments Buildah lets every stage see without an ARG (imagebuilder's allow-list)."""


@dataclass(frozen=True)
class FileEntry:
    """One context path a COPY/ADD reads. ``kind``: f (file), d (directory), l (link), o (other:
    device, FIFO, socket). ``digest``: SHA-256 of a file's content, a link's target."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    digest: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0

    def differences(self, other: FileEntry) -> tuple[str, ...]:
        """What Buildah's cache key sees differ between ``self`` (earlier) and ``other``."""
        what = []
        if self.kind != other.kind:
            return ("type",)
        if self.digest != other.digest:
            what.append("link" if self.kind == "l" else "content")
        if stat.S_IMODE(self.mode) != stat.S_IMODE(other.mode) and self.kind != "l":
            what.append("mode")
        if (self.uid, self.gid) != (other.uid, other.gid):
            what.append("owner")
        return tuple(what)

    def to_list(self) -> list[object]:
        return [self.kind, self.mode, self.uid, self.gid, self.size, self.digest, self.mtime_ns,
                self.ctime_ns, self.ino]

    @classmethod
    def from_list(cls, values: list[Any]) -> FileEntry:
        kind, mode, uid, gid, size, digest, mtime_ns, ctime_ns, ino = values
        return cls(str(kind), int(mode), int(uid), int(gid), int(size), str(digest),
                   int(mtime_ns), int(ctime_ns), int(ino))


Listing = dict[str, FileEntry]


@dataclass
class StepInput:
    """One step as the host reads it; ``stage`` and ``step`` are Buildah's (1-based)."""

    stage: int
    step: int
    instruction: str
    command: str
    """The instruction's keyword, upper-case (RUN, COPY, FROM...)."""
    args: dict[str, str] = field(default_factory=dict)
    """Build arguments it sees and their values (secret ones as ``hmac-sha256:...``)."""
    secret_args: frozenset[str] = frozenset()
    files: Listing | None = None
    """What a COPY/ADD from the context reads; None for other steps or when not checked."""
    files_note: str = ""
    """Why a COPY/ADD's files were not checked."""
    copy_from: str = ""
    """A ``--from=`` value: a stage (name or index) or an image."""
    inexact: str = ""
    """Why the files listed may not be exactly those Buildah copies ("" when they are): good
    enough to explain a miss, not to skip a build (tui.engine.unchanged)."""

    @property
    def copies_context(self) -> bool:
        return self.command in ("COPY", "ADD") and not self.copy_from

    def files_digest(self) -> str:
        """One digest of everything Buildah's key sees in ``files`` ("" when not read)."""
        if self.files is None:
            return ""
        h = hashlib.sha256()
        # Files that are one inode: Buildah copies them as hard links of each other (a new
        # image id when the link is broken, measured). Each names the first path of its group.
        first: dict[int, str] = {}
        count: Counter[int] = Counter()
        for path in sorted(self.files):
            e = self.files[path]
            if e.kind == "f" and e.ino:
                first.setdefault(e.ino, path)
                count[e.ino] += 1
        shared = {ino for ino, n in count.items() if n > 1}
        for path in sorted(self.files):
            e = self.files[path]
            link = f"\0={first[e.ino]}" if e.kind == "f" and e.ino in shared else ""
            h.update(f"{path}\0{e.kind}\0{stat.S_IMODE(e.mode)}\0{e.uid}\0{e.gid}\0{e.digest}"
                     f"{link}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


@dataclass
class StageInput:
    """One stage: 1-based ``index`` as Buildah numbers it, its base."""

    index: int
    name: str | None
    base_ref: str = ""
    """The external image it starts from (build arguments applied); "" for scratch or a stage."""
    base_stage: int | None = None
    """The 1-based index of the stage it starts from."""
    steps: list[StepInput] = field(default_factory=list)


@dataclass
class BuildInputs:
    stages: list[StageInput] = field(default_factory=list)
    note: str = ""
    """Why nothing could be read (the Containerfile or the ignore file), or ""."""
    context: Path | None = None
    read_at: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Every context path listed, with its (size, mtime, ctime, inode) when it was read."""

    def settled(self) -> bool:
        """Whether every path listed is still as it was read (``lstat``): a file changed
        during the build may have been copied in another state than the one read."""
        if self.context is None:
            return not self.read_at
        for path, seen in self.read_at.items():
            try:
                info = os.lstat(self.context / path)
            except OSError:
                return False
            if stamp(info) != seen:
                return False
        return True

    def step(self, stage: int, step: int) -> StepInput | None:
        if 1 <= stage <= len(self.stages):
            steps = self.stages[stage - 1].steps
            if 1 <= step <= len(steps):
                return steps[step - 1]
        return None

    def stage_index(self, ref: str) -> int | None:
        """The 1-based index of the stage ``ref`` names (its name or 0-based index)."""
        for stage in self.stages:
            if (stage.name and stage.name == ref.lower()) or str(stage.index - 1) == ref:
                return stage.index
        return None


def read_inputs(plan: BuildPlan, key: bytes, earlier: Mapping[str, FileEntry] | None = None,
                *, files: bool = True, now_ns: int | None = None) -> BuildInputs:
    """The plan's steps as Buildah will key them. ``key`` is history's secret key (for secret
    build arguments), ``earlier`` a listing whose digests may be reused (same size, times and
    inode); ``files=False`` reads no context file (a fresh store's build is never compared
    with); ``now_ns``: the reading's time (``RACY_NS``), the clock's when None. Never raises
    for what the context holds: what cannot be read is noted."""
    try:
        text = read_containerfile(plan.containerfile)
        commands = _instructions(text)
        info = parse_containerfile(text)
    except ValueError as exc:  # ContainerfileError
        return BuildInputs(note=f"the Containerfile could not be read: {exc}")
    try:
        matcher: IgnoreMatcher | None = read_ignore(plan.context)
        ignore_note = _beside_containerfile(plan)
    except IgnoreFileError as exc:
        matcher, ignore_note = None, f"the ignore file could not be read ({exc})"
    build_args = dict(plan.build_args)
    secrets = frozenset(secret_looking_args(plan.build_args))
    global_values = info.global_values(build_args)
    # A snapshot's copies all belong to the builder's root (podman's U), whoever owns the
    # originals: their owners are not what Buildah sees.
    reader = _ContextReader(plan.context, matcher, earlier or {},
                            owners=plan.context_snapshot is None,
                            now_ns=time.time_ns() if now_ns is None else now_ns)
    inputs = BuildInputs(context=plan.context, read_at=reader.read_at)
    stage: StageInput | None = None
    scope: dict[str, str] = {}
    for command in commands:
        keyword = command.cmd.upper()
        if keyword == "FROM":
            stage = _start_stage(inputs, command, global_values)
            scope = {k: v for k, v in build_args.items() if k in BUILTIN_ARGS}
        if stage is None:
            continue  # a global ARG: seen by FROM lines only (global_values)
        if keyword == "ARG":
            _declare(command, scope, build_args, global_values, info.global_args)
        step = StepInput(stage.index, len(stage.steps) + 1, command.original.rstrip("\n"),
                         keyword)
        if keyword == "RUN":
            step.args = {name: (secret_digest(key, name, value) if name in secrets else value)
                         for name, value in scope.items()}
            step.secret_args = frozenset(name for name in scope if name in secrets)
        elif keyword in ("COPY", "ADD"):
            _sources(step, command, scope, reader,
                     ignore_note if files else "not read for a fresh store")
        stage.steps.append(step)
    return inputs


def ignore_files_beside(containerfile: Path) -> tuple[Path, ...]:
    """``<Containerfile>.containerignore`` and ``.dockerignore``: Buildah reads one beside the
    Containerfile before the context's own ignore file (measured here)."""
    return tuple(containerfile.with_name(containerfile.name + name) for name in IGNORE_FILES)


def _beside_containerfile(plan: BuildPlan) -> str:
    """Why the files are not read: an ignore file beside the Containerfile
    (``ignore_files_beside``), which buildcage does not follow; "" when there is none."""
    try:
        plan.containerfile.relative_to(plan.context)
    except ValueError:
        return ""  # mounted alone in the builder: nothing is beside it there
    for beside in ignore_files_beside(plan.containerfile):
        if os.path.lexists(beside):
            return f"Buildah reads {beside.name}, which buildcage does not follow"
    return ""


def _start_stage(inputs: BuildInputs, command: dockerfile.Command,
                 global_values: dict[str, str]) -> StageInput:
    words = command.value
    name = words[2].lower() if len(words) == 3 and words[1].lower() == "as" else None
    stage = StageInput(len(inputs.stages) + 1, name)
    base = substitute(words[0], global_values) if words else ""
    named = {s.name: s.index for s in inputs.stages if s.name}
    if base.lower() in named:  # as ContainerfileInfo.base_images tells stages from images
        stage.base_stage = named[base.lower()]
    elif base and base.lower() != "scratch":
        stage.base_ref = base
    inputs.stages.append(stage)
    return stage


def _declare(command: dockerfile.Command, scope: dict[str, str], build_args: dict[str, str],
             global_values: dict[str, str], global_args: dict[str, str | None]) -> None:
    """An ARG in a stage: given on the command line, else its default here, else the global
    ARG's value (only when it is declared globally); without any, it is not set."""
    for name, default in _parse_args(" ".join(command.value)).items():
        if name in build_args:
            scope[name] = build_args[name]
        elif default is not None:
            scope[name] = substitute(default, scope)
        elif name in global_args and name in global_values:
            scope[name] = global_values[name]


def _sources(step: StepInput, command: dockerfile.Command, scope: dict[str, str],
             reader: _ContextReader, ignore_note: str) -> None:
    for flag in command.flags:
        if flag.startswith("--from="):
            step.copy_from = substitute(flag[7:], scope)
    if step.copy_from:
        return
    sources = list(command.value[:-1])
    if not sources:
        step.files_note = "no source named"
        return
    if ignore_note:
        step.files_note = ignore_note
        return
    untracked = [s for s in sources if re.search(r"\$\{?([A-Za-z_]\w*)", s)
                 and any(n not in scope for n in re.findall(r"\$\{?([A-Za-z_]\w*)", s))]
    if untracked:
        step.files_note = f"source {untracked[0]!r} uses a variable buildcage does not follow"
        return
    resolved = [substitute(source, scope) for source in sources]
    if any("://" in s or s.startswith("git@") for s in sources + resolved):
        step.files_note = "ADD from a URL: the content is not in the context"
        return
    if any("$" in s for s in sources):
        # Build arguments are followed, not ENV (the stage's or the base image's), which
        # Buildah lets shadow them.
        step.inexact = "a source names a variable"
    elif any(c in s for s in sources for c in "[\\"):
        step.inexact = "a source has a bracket or a backslash (Go's glob reads them otherwise)"
    elif reader.matcher is not None and any(p.exclusion for p in reader.matcher.patterns):
        # Buildah looks inside an excluded directory for what a ! pattern takes back in.
        step.inexact = "the ignore file takes paths back in (!)"
    elif reader.matcher is not None and not reader.matcher.exact:
        step.inexact = "the ignore file has a pattern Go's regular expressions may read otherwise"
    try:
        listing: Listing = {}
        for source in resolved:
            reader.add(source, listing)
        step.files = listing
    except _NotChecked as exc:
        step.files_note = str(exc)
    except OSError as exc:  # the context changed under the walk, or cannot be read
        step.files_note = f"the context could not be read: {exc.strerror or exc}"


class _NotChecked(Exception):
    """A source buildcage does not read (the note says why)."""


class _ContextReader:
    """Lists and hashes context paths without following a link or leaving the context."""

    def __init__(self, context: Path, matcher: IgnoreMatcher | None,
                 earlier: Mapping[str, FileEntry], owners: bool = True,
                 now_ns: int = 0) -> None:
        self.context = context
        self.matcher = matcher
        self.earlier = earlier
        self.owners = owners
        """Record owners (False: every entry is taken as root's)."""
        self.racy_after = now_ns - RACY_NS
        """Files changed after this (ns) are recorded with no ctime (``RACY_NS``)."""
        self.cache: dict[str, tuple[tuple[int, int, int], FileEntry]] = {}
        """Entries already read in this build (several steps copy the same files), by path,
        with the (mtime, ctime, inode) they were read at."""
        self.read_at: dict[str, tuple[int, int, int, int]] = {}
        """(size, mtime, ctime, inode) of every path listed, as read (``BuildInputs``)."""

    def excluded(self, rel: str) -> bool:
        return self.matcher is not None and self.matcher.excluded(rel)

    def add(self, source: str, listing: Listing) -> None:
        rel = posixpath.normpath("/" + source).lstrip("/") or "."
        if _GLOB.search(rel):
            matches = self._glob(rel)
        else:
            matches = [rel]
        for path in matches:
            self._add_path(path, listing)

    def _glob(self, pattern: str) -> list[str]:
        """Go's filepath.Glob, component by component, inside the context."""
        import fnmatch

        found = ["."]
        for part in pattern.split("/"):
            nxt = []
            for base in found:
                if not _GLOB.search(part):
                    nxt.append(part if base == "." else f"{base}/{part}")
                    continue
                for name in self._names(base):
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(name if base == "." else f"{base}/{name}")
            found = nxt
        return sorted(found)

    def _names(self, rel: str) -> list[str]:
        fd = self._open_dir(rel, missing_ok=True)
        if fd is None:
            return []
        try:
            self._seen(rel, os.fstat(fd))  # a name added to it later is a change
            with os.scandir(fd) as entries:
                return [e.name for e in entries]
        finally:
            os.close(fd)

    def _seen(self, rel: str, info: os.stat_result) -> None:
        """Keeps what ``BuildInputs.settled`` compares: also for the directories a source
        names and the context itself, whose entries a build may copy."""
        self.read_at.setdefault(rel, stamp(info))

    def _open_dir(self, rel: str, missing_ok: bool = False) -> int | None:
        fd = os.open(self.context, _DIR_FLAGS)
        if rel == ".":
            return fd
        try:
            for part in rel.split("/"):
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(
                            os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        # Buildah resolves it inside the context; buildcage does not follow.
                        raise _NotChecked(f"{rel!r} goes through a link") from None
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and missing_ok:
                        os.close(fd)
                        return None
                    raise _NotChecked(f"{rel!r}: {exc.strerror}") from None
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _add_path(self, rel: str, listing: Listing) -> None:
        parent, name = posixpath.split(rel) if rel != "." else ("", ".")
        if rel != "." and self.excluded(rel):
            return
        dir_fd = self._open_dir(parent or ".", missing_ok=True)
        if dir_fd is None:
            return  # Buildah fails the step: nothing to compare
        try:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(info.st_mode):
                # A copied directory's contents count, not the directory itself (measured).
                self._seen(rel, info)
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._walk(sub, "" if rel == "." else rel, listing)
                finally:
                    os.close(sub)
            elif stat.S_ISLNK(info.st_mode):
                raise _NotChecked(f"{rel!r} is a link: Buildah copies what it points to")
            else:
                listing[rel] = self._entry(dir_fd, name, rel, info)
        finally:
            os.close(dir_fd)
        if len(listing) > MAX_ENTRIES:
            raise _NotChecked(f"it copies more than {MAX_ENTRIES} entries")

    def _walk(self, top_fd: int, top: str, listing: Listing) -> None:
        pending: list[tuple[int, str, bool]] = [(os.dup(top_fd), top, True)]
        while pending:
            fd, rel, _ = pending.pop()
            try:
                with os.scandir(fd) as entries:
                    names = sorted(e.name for e in entries)
                for name in names:
                    path = f"{rel}/{name}" if rel else name
                    if self.excluded(path):
                        continue
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    listing[path] = self._entry(fd, name, path, info)
                    if len(listing) > MAX_ENTRIES:
                        raise _NotChecked(f"it copies more than {MAX_ENTRIES} entries")
                    if stat.S_ISDIR(info.st_mode):
                        try:
                            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                        except OSError as exc:
                            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                                continue  # swapped for a link meanwhile: its entry says dir
                            # Not readable here (or gone): what it holds is not listed, and
                            # Buildah may read it.
                            raise _NotChecked(f"{path!r} cannot be read: {exc.strerror}") \
                                from None
                        pending.append((sub, path, False))
            finally:
                os.close(fd)

    def _entry(self, dir_fd: int, name: str, rel: str, info: os.stat_result) -> FileEntry:
        self.read_at[rel] = stamp(info)
        read_at = self.read_at[rel][1:]  # (mtime, ctime, inode)
        known = self.cache.get(rel)
        if known is not None and known[0] == read_at:
            return known[1]
        mode = info.st_mode
        if stat.S_ISREG(mode):
            kind, digest = "f", self._digest(dir_fd, name, rel, info)
        elif stat.S_ISDIR(mode):
            kind, digest = "d", _xattrs(dir_fd, name)
        elif stat.S_ISLNK(mode):
            kind, digest = "l", os.readlink(name, dir_fd=dir_fd)
        else:  # its type and device: a FIFO and a socket of one mode are not one file
            kind, digest = "o", f"{stat.S_IFMT(mode):o}:{info.st_rdev}"
        uid, gid = (info.st_uid, info.st_gid) if self.owners else (0, 0)
        racy = max(info.st_mtime_ns, info.st_ctime_ns) > self.racy_after
        entry = FileEntry(kind, mode, uid, gid, info.st_size, digest, info.st_mtime_ns,
                          0 if racy else info.st_ctime_ns, info.st_ino)
        self.cache[rel] = (read_at, entry)
        return entry

    def _digest(self, dir_fd: int, name: str, rel: str, info: os.stat_result) -> str:
        before = self.earlier.get(rel)
        if (before is not None and before.kind == "f" and before.digest
                and (before.size, before.mtime_ns, before.ctime_ns, before.ino) == stamp(info)):
            return before.digest
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise _NotChecked(f"{rel!r} cannot be read: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return ""
            return sha256_of(fd) + _xattrs(fd)
        finally:
            os.close(fd)


def stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    """What says a path is as it was read: (size, mtime, ctime, inode)."""
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def sha256_of(fd: int) -> str:
    """SHA-256 of what is left to read of an open file, 1 MiB at a time."""
    h = hashlib.sha256()
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _xattrs(where: int, name: str = "") -> str:
    """The extended attributes of an open file (``where``), or of ``name`` in the directory
    ``where`` (not followed), as one digest ("" when it has none): Buildah copies them, and a
    changed one was a cache miss (measured). Setting one changes the ctime, so a reused digest
    never hides it."""
    path: int | str = where if not name else f"/proc/self/fd/{where}/{name}"
    follow = isinstance(path, int)  # (an open file: nothing to follow)
    try:
        names = sorted(os.listxattr(path, follow_symlinks=follow))
        if not names:
            return ""
        h = hashlib.sha256()
        for attr in names:
            h.update(attr.encode("utf-8", "surrogateescape") + b"\0")
            h.update(os.getxattr(path, attr, follow_symlinks=follow) + b"\0")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ""  # a file system without them
        return "|xattrs:unreadable"
    return "|xattrs:" + h.hexdigest()
