"""The context's ``.containerignore``/``.dockerignore`` read and matched exactly as Buildah 1.28
does, for telling which context files a COPY/ADD reads.

Buildah reads the file with openshift/imagebuilder's ``ParseDockerignore`` (``.containerignore``
first, else ``.dockerignore``; lines split on ``\\n``, a line starting with ``#`` is a comment,
``/`` trimmed at both ends) and matches with containers/storage's ``fileutils.PatternMatcher``
(whitespace trimmed, ``filepath.Clean``, a leading ``!`` makes an exception; each pattern becomes
a regular expression where ``*`` and ``?`` stop at ``/``, ``**`` crosses directories, ``\\``
escapes, everything else, ``[...]`` included, is taken as written). Its copier asks
``Matches(path)`` for every path relative to the context: the last pattern that matches the path,
or the leading directories of the path as deep as the pattern, decides.

``tui.engine.context.ignore_patterns`` is a different thing: a subset, only a speed-up for the
snapshot copy.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILES = (".containerignore", ".dockerignore")
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + \
    "\u2028\u2029\u202f\u205f\u3000"
"""What Go's ``strings.TrimSpace`` trims (``unicode.IsSpace``); Python's ``strip()`` also takes
\\x1c-\\x1f, which Go keeps as part of the pattern."""
_NOT_PLAIN = re.compile(r"[\[\](){}+|^\x00-\x1f\x7f]|\\[A-Za-z0-9]")
"""Characters a pattern passes to Go's regular expressions as they are, where Python's may read
them otherwise (a class, a group, an alternative), control characters, and a backslash before a
letter or digit (``\\w``, ``\\s``, ``\\d``: ASCII in Go, Unicode in Python)."""
MAX_BYTES = 1 << 20


class IgnoreFileError(ValueError):
    """The ignore file cannot be read, or has a pattern Buildah would refuse too."""


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    dirs: int
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in ".$":
            out += "\\" + ch
        elif ch == "\\":
            if i < len(pattern):
                out += "\\" + pattern[i]
                i += 1
            else:
                out += "\\\\"
        else:
            out += ch
    try:
        # Go's ``$`` matches at the very end only (Python's also before a final newline), and
        # its ``.`` never matches a newline (no DOTALL): a name ending in one is no exception.
        return re.compile(out + r"\Z")
    except re.error as exc:
        raise IgnoreFileError(f"pattern {pattern!r}: {exc}") from None


def _go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for a Unix path (``posixpath.normpath`` keeps a leading ``//``)."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def parse_patterns(text: str) -> list[Pattern]:
    """The patterns of an ignore file's text, in order."""
    patterns = []
    for raw in text.split("\n"):
        if not raw or raw[0] == "#":
            continue
        line = raw.strip("/").strip(GO_SPACE)
        if not line:
            continue
        line = _go_clean(line)
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:]
            if not line:
                raise IgnoreFileError('illegal exclusion pattern: "!"')
        patterns.append(Pattern(line, exclusion, len(line.split("/")), _compile(line)))
    return patterns


class IgnoreMatcher:
    """``excluded(path)`` for a context-relative path (``a/b``), as Buildah's copier decides."""

    def __init__(self, patterns: list[Pattern], source: str = "") -> None:
        self.patterns = patterns
        self.source = source
        """The ignore file's name ("" when the context has none)."""

    @property
    def exact(self) -> bool:
        """Whether every pattern means the same to Python's regular expressions as to Go's:
        only ``*``, ``?``, ``**``, plain characters and escaped punctuation."""
        return not any(_NOT_PLAIN.search(p.text) for p in self.patterns)

    def excluded(self, path: str) -> bool:
        if not self.patterns or path in ("", "."):
            return False
        parent = posixpath.dirname(path) or "."
        parents = parent.split("/")
        matched = False
        for pattern in self.patterns:
            match = pattern.regex.match(path) is not None
            if not match and parent != "." and pattern.dirs <= len(parents):
                match = pattern.regex.match("/".join(parents[:pattern.dirs])) is not None
            if match:
                matched = not pattern.exclusion
        return matched


def read_ignore(context: Path) -> IgnoreMatcher:
    """The matcher of the context's ignore file (none: nothing is excluded). Raises
    IgnoreFileError when the file cannot be read as Buildah would."""
    for name in IGNORE_FILES:
        path = context / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise IgnoreFileError(f"{name}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise IgnoreFileError(f"{name}: {exc.strerror}") from None
        if len(data) > MAX_BYTES:
            raise IgnoreFileError(f"{name}: larger than {MAX_BYTES} bytes")
        return IgnoreMatcher(parse_patterns(data.decode("utf-8", "replace")), name)
    return IgnoreMatcher([])
