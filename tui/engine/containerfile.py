"""Reading a Containerfile: its stages, build arguments and base images (for the UI and pinning)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tui.engine.errors import UserError
from tui.engine.go_parser import dockerfile

NAMES = ("Containerfile", "Dockerfile")

_VAR_RE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


# COPY --from=X, ADD --from=X, RUN --mount=type=bind,from=X (also type=cache).
_FROM_FLAG_RE = re.compile(r"(?:^|[\s,])-{0,2}from=([^\s,]+)")


class ContainerfileError(UserError, ValueError):
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
    stage_from: dict[int, list[str]] = field(default_factory=dict)
    """The same ``--from=`` values by the index of the stage they are in."""

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


def read_containerfile(path: Path) -> str:
    """The Containerfile's text, read as UTF-8 (as Buildah reads it); raises ContainerfileError
    naming the line, column and byte when it is not UTF-8, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContainerfileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ContainerfileError(
            f"{path}: line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8;"
            " save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def find_containerfile(context: Path) -> Path | None:
    """``context/Containerfile``, else ``context/Dockerfile``, else None."""
    for name in NAMES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    return None


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


def _parse_from(line_no: int, words: tuple[str, ...], index: int) -> Stage:
    # The parser has already moved the --platform flag out of ``words``.
    if not words:
        raise ContainerfileError(f"line {line_no}: FROM needs an image")
    if len(words) == 1:
        return Stage(index, None, words[0])
    if len(words) == 3 and words[1].lower() == "as":
        return Stage(index, words[2].lower(), words[0])
    raise ContainerfileError(
        f"line {line_no}: expected 'FROM IMAGE [AS NAME]', got {' '.join(words)!r}")


def _instructions(text: str) -> tuple[dockerfile.Command, ...]:
    """The instructions of ``text`` as BuildKit's parser (which Buildah uses) reads them: parser
    directives, continuations, comments and heredocs handled, line numbers kept."""
    if "\0" in text:
        # The parser gets a C string and would silently stop at the NUL.
        line = text.count("\n", 0, text.index("\0")) + 1
        raise ContainerfileError(f"line {line}: the Containerfile has a NUL byte")
    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        if str(exc) == "file with no instructions":
            return ()  # empty, or only comments: nothing to show yet
        raise ContainerfileError(f"cannot parse the Containerfile: {exc}") from None


def instructions(text: str) -> tuple[dockerfile.Command, ...]:
    """Every instruction of ``text`` as Buildah's parser reads it (line numbers, flags, words
    and heredocs apart); raises ContainerfileError as ``parse_containerfile`` does."""
    return _instructions(text)


def parse_arg_words(words: tuple[str, ...]) -> dict[str, str | None]:
    """An ARG instruction's words -> {name: default or None}, quotes removed."""
    return _parse_args(" ".join(words))


def parse_containerfile(text: str) -> ContainerfileInfo:
    """Parse Containerfile ``text`` into stages and ARGs; raise ContainerfileError on a bad FROM
    or what the parser rejects (an unterminated heredoc)."""
    info = ContainerfileInfo()
    for command in _instructions(text):
        instruction = command.cmd.upper()
        if instruction == "FROM":
            info.stages.append(_parse_from(command.start_line, command.value, len(info.stages)))
        elif instruction in ("COPY", "ADD", "RUN"):
            for flag in command.flags:
                found = _FROM_FLAG_RE.findall(flag)
                info.copy_from += found
                if info.stages:
                    info.stage_from.setdefault(len(info.stages) - 1, []).extend(found)
        elif instruction == "ARG":
            # The parser keeps quotes in ARG words (Buildah removes them when it evaluates).
            for name, default in _parse_args(" ".join(command.value)).items():
                # A later declaration without a default must not hide an earlier default.
                targets = [info.args] if info.stages else [info.args, info.global_args]
                for target in targets:
                    if default is not None or name not in target:
                        target[name] = default
    return info


def parallel_stages(info: ContainerfileInfo, target: str = "",
                    build_args: dict[str, str] | None = None) -> int:
    """How many stages of the build could run at once: the widest level of the graph of the
    stages the target needs (Buildah skips the others), a stage's level being one more than the
    deepest stage it starts FROM or reads with ``--from``. 1 for a chain or a single stage.

    Buildah 1.28 resolves ``--from=`` words as written (no ARG expansion, its own TODO), and a
    stage name or index; FROM words with the global ARGs, as ``base_images`` does."""
    if not info.stages:
        return 1
    names = {s.name: s.index for s in info.stages if s.name}
    values = info.global_values(build_args)

    def stage_of(word: str, before: int) -> int | None:
        word = word.lower()
        index = names.get(word)
        if index is None and word.isdigit():
            index = int(word)
        return index if index is not None and index < before else None

    needs: dict[int, set[int]] = {}
    for stage in info.stages:
        words = [substitute(stage.base, values), *info.stage_from.get(stage.index, [])]
        needs[stage.index] = {i for w in words if (i := stage_of(w, stage.index)) is not None}
    last = stage_of(target, len(info.stages)) if target else len(info.stages) - 1
    if last is None:
        return 1  # an unknown target: Buildah says so itself
    wanted: set[int] = set()
    todo = [last]
    while todo:
        index = todo.pop()
        if index not in wanted:
            wanted.add(index)
            todo.extend(needs[index])
    level: dict[int, int] = {}
    for index in sorted(wanted):  # a stage needs only earlier ones: one pass suffices
        level[index] = 1 + max((level[n] for n in needs[index]), default=-1)
    widths: dict[int, int] = {}
    for depth in level.values():
        widths[depth] = widths.get(depth, 0) + 1
    return max(widths.values())
