"""Reading a Containerfile: its stages, build arguments and base images (for the UI and pinning)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

NAMES = ("Containerfile", "Dockerfile")

_DIRECTIVE_RE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"(?:^|\s)<<-?([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1")
_HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
_VAR_RE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


# COPY --from=X, ADD --from=X, RUN --mount=type=bind,from=X (also type=cache).
_FROM_FLAG_RE = re.compile(r"(?:^|[\s,])-{0,2}from=([^\s,]+)")


class ContainerfileError(ValueError):
    """The Containerfile has an instruction that cannot be understood."""


@dataclass(frozen=True)
class Stage:
    """A ``FROM`` stage: 0-based ``index``, optional ``AS`` name, and base as written."""

    index: int
    name: str | None
    base: str


@dataclass
class ContainerfileInfo:
    """What the UI and pinning need from a Containerfile.

    ``args`` has every ARG (global and in stages) with its default or None; ``global_args`` only
    those before the first FROM, which are the only ones FROM lines can use.
    """

    stages: list[Stage] = field(default_factory=list)
    args: dict[str, str | None] = field(default_factory=dict)
    global_args: dict[str, str | None] = field(default_factory=dict)
    copy_from: list[str] = field(default_factory=list)
    """``--from=`` values of COPY, ADD and ``RUN --mount``: stages, or images to fetch."""

    def global_values(self, build_args: dict[str, str] | None = None) -> dict[str, str]:
        """Values of the global ARGs (defaults, then ``build_args``), as FROM lines see them."""
        overrides = build_args or {}
        values: dict[str, str] = {}
        for name, default in self.global_args.items():
            # Defaults may refer to earlier global ARGs, like Buildah resolves them.
            default_value = None if default is None else substitute(default, values)
            value = overrides.get(name, default_value)
            if value is not None:
                values[name] = value
        return values

    def base_images(self, build_args: dict[str, str] | None = None) -> list[str]:
        """External images the stages start from, ARGs substituted, without duplicates.

        ``scratch`` and references to earlier stages are not images to pull; a base that expands
        to nothing is left out too (Buildah itself reports that as an error).
        """
        values = self.global_values(build_args)
        images: list[str] = []
        seen_stages: set[str] = set()
        for stage in self.stages:
            image = substitute(stage.base, values)
            external = image.lower() not in {"", "scratch"} | seen_stages
            if external and image not in images:
                images.append(image)
            if stage.name:
                seen_stages.add(stage.name.lower())
        return images

    def external_images(self, build_args: dict[str, str] | None = None) -> list[str]:
        """Every image the build reads from outside: bases, then ``COPY --from=IMAGE`` sources
        (a stage name or index is not an image)."""
        images = self.base_images(build_args)
        values = self.global_values(build_args)
        stages = {s.name for s in self.stages if s.name} | {str(s.index) for s in self.stages}
        for raw in self.copy_from:
            image = substitute(raw, values)
            if image and image.lower() not in stages and image not in images:
                images.append(image)
        return images


def substitute(text: str, values: dict[str, str]) -> str:
    """Expand ``$X``, ``${X}``, ``${X:-default}`` and ``${X:+alt}``; unset ones give ""."""

    def expand(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        value = values.get(name, "")
        if match.group("op") == "-":
            return value or match.group("word")
        if match.group("op") == "+":
            return match.group("word") if value else ""
        return value

    return _VAR_RE.sub(expand, text)


def find_containerfile(context: Path) -> Path | None:
    """``context/Containerfile``, else ``context/Dockerfile``, else None."""
    for name in NAMES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuations, drop comments and heredoc bodies; yield (first line number, text)."""
    escape = "\\"
    lines = text.splitlines()
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    in_directives = True
    index = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        stripped = raw.strip()
        if in_directives:
            directive = _DIRECTIVE_RE.match(stripped)
            if directive and directive.group(1).lower() == "escape":
                escape = directive.group(2) or escape
                continue
            in_directives = bool(directive)
        if stripped.startswith("#") or (not stripped and pending):
            continue  # comments and blank lines vanish, even inside a continuation
        if not stripped:
            continue
        if not pending:
            start = index
        if stripped.endswith(escape):
            pending.append(stripped[: -len(escape)])
            continue
        pending.append(stripped)
        logical = " ".join(part.strip() for part in pending)
        pending = []
        out.append((start, logical))
        if logical.split(None, 1)[0].upper() in _HEREDOC_INSTRUCTIONS:
            for _quote, word in _HEREDOC_RE.findall(logical):
                # Skip the heredoc body: its lines are data, not instructions. Without a
                # terminator it was not a heredoc, so nothing is skipped.
                ends = [i for i in range(index, len(lines)) if lines[i].strip() == word]
                index = ends[0] + 1 if ends else index
    if pending:
        out.append((start, " ".join(part.strip() for part in pending)))
    return out


def _parse_args(rest: str) -> dict[str, str | None]:
    """``ARG A=1 B "C=x y"`` -> {"A": "1", "B": None, "C": "x y"}."""
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    parsed: dict[str, str | None] = {}
    for word in words:
        name, eq, default = word.partition("=")
        parsed[name] = default if eq else None
    return parsed


def _parse_from(line_no: int, rest: str, index: int) -> Stage:
    words = [word for word in rest.split() if not word.startswith("--")]
    if not words:
        raise ContainerfileError(f"line {line_no}: FROM needs an image")
    if len(words) == 1:
        return Stage(index, None, words[0])
    if len(words) == 3 and words[1].lower() == "as":
        return Stage(index, words[2].lower(), words[0])
    raise ContainerfileError(f"line {line_no}: expected 'FROM IMAGE [AS NAME]', got {rest!r}")


def parse_containerfile(text: str) -> ContainerfileInfo:
    """Parse Containerfile ``text`` into stages and ARGs; raise ContainerfileError on a bad FROM."""
    info = ContainerfileInfo()
    for line_no, line in _logical_lines(text):
        instruction, _, rest = line.replace("\t", " ").partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            info.stages.append(_parse_from(line_no, rest, len(info.stages)))
        elif instruction in ("COPY", "ADD", "RUN"):
            info.copy_from += _FROM_FLAG_RE.findall(rest)
        elif instruction == "ARG":
            for name, default in _parse_args(rest).items():
                # A later declaration without a default must not hide an earlier default.
                targets = [info.args] if info.stages else [info.args, info.global_args]
                for target in targets:
                    if default is not None or name not in target:
                        target[name] = default
    return info
