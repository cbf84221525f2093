"""The context's Containerfile fields: which file, build arguments (prefilled from its ARG
defaults) and the target stage (a Select of its named stages)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select

from tui.engine.containerfile import ContainerfileError, find_containerfile, parse_containerfile
from tui.engine.planner import PlanError, parse_build_args, parse_secrets


def split_args(text: str) -> tuple[tuple[str, str], ...]:
    """``A=1 "B=two words"`` -> (("A", "1"), ("B", "two words")); raises PlanError."""
    try:
        return parse_build_args(shlex.split(text))
    except ValueError as exc:  # shlex's unbalanced quotes, or PlanError
        raise PlanError(str(exc)) from exc


class BuildArgsValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        try:
            split_args(value)
        except PlanError as exc:
            return self.failure(str(exc))
        return self.success()


class ContainerfileFields(Vertical):
    class Loaded(Message):
        """A Containerfile was read (``path`` None: there is none); ``text`` is for the preview."""

        def __init__(self, path: Path | None, text: str) -> None:
            super().__init__()
            self.path, self.text = path, text

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context: Path | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("File", classes="form-label")
            yield Input(compact=True, id="containerfile")
        with Horizontal(classes="form-row"):
            yield Label("Args", classes="form-label")
            yield Input(compact=True, placeholder="NAME=VALUE …", id="build-args",
                        validators=[BuildArgsValidator()])
        with Horizontal(classes="form-row"):
            yield Label("Secrets", classes="form-label")
            yield Input(compact=True, placeholder="id=NAME,src=FILE … (RUN --mount=type=secret)",
                        id="secrets")
        with Horizontal(classes="form-row"):
            yield Label("Stage", classes="form-label")
            yield Select([], prompt="last stage", compact=True, id="stage")

    def set_context(self, context: Path) -> None:
        self.context = context
        found = find_containerfile(context)
        with self.prevent(Input.Changed):
            self.query_one("#containerfile", Input).value = found.name if found else ""
        self._load(found, prefill=True)

    @on(Input.Changed, "#containerfile")
    def _file_edited(self, event: Input.Changed) -> None:
        event.stop()
        if self.context is not None:
            path = self.context / event.value.strip() if event.value.strip() else None
            self._load(path if path and path.is_file() else None, prefill=False)

    def _load(self, path: Path | None, prefill: bool) -> None:
        stage = self.query_one("#stage", Select)
        if path is None:
            stage.set_options([])
            self.post_message(self.Loaded(None, "no Containerfile or Dockerfile here"))
            return
        try:
            text = path.read_text(encoding="utf-8")
            info = parse_containerfile(text)
        except (OSError, UnicodeDecodeError, ContainerfileError) as exc:
            self.post_message(self.Loaded(None, f"cannot read {path.name}: {exc}"))
            return
        # Buildah's --target takes a stage name, so only named stages are offered.
        stage.set_options([(f"{s.name} (stage {s.index + 1})", s.name)
                           for s in info.stages if s.name])
        if prefill:
            args = " ".join(shlex.quote(f"{k}={v}") for k, v in info.args.items() if v is not None)
            self.query_one("#build-args", Input).value = args
        self.post_message(self.Loaded(path, text))

    @property
    def containerfile(self) -> str:
        """The chosen file as an absolute path ("" to let the planner find it)."""
        text = self.query_one("#containerfile", Input).value.strip()
        return str(self.context / text) if text and self.context is not None else ""

    def build_args(self) -> tuple[tuple[str, str], ...]:
        """Raises PlanError for a malformed argument."""
        return split_args(self.query_one("#build-args", Input).value)

    def secrets(self) -> tuple[tuple[str, str], ...]:
        """``id=NAME,src=FILE`` words, each checked (the file exists, is readable, small
        enough); raises PlanError saying which is wrong. Relative files are from the context."""
        words = self.query_one("#secrets", Input).value.split()
        if self.context is not None:
            words = [_from_context(w, self.context) for w in words]
        return parse_secrets(words)

    @property
    def target_stage(self) -> str:
        value = self.query_one("#stage", Select).value
        return "" if value is Select.NULL else str(value)


def _from_context(spec: str, context: Path) -> str:
    """``src=`` of a secret relative to the context directory, as the file field is."""
    parts = []
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        if key == "src" and eq and not Path(value).expanduser().is_absolute():
            part = f"src={context / value}"
        parts.append(part)
    return ",".join(parts)
