"""Where to push: a registry picker, the reference Input (validated as you type) and a status
line that says what is wrong, or whether the registry answers (checked in a worker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select

from tui.engine.registry import BadReference, ImageRef, OciTarget, parse_push_target
from tui.engine.text import visible

Reach = Callable[[str, bool], tuple[bool, str]]
NO_PUSH = "no push: the image stays in the builder's store"
NO_PUSH_FRESH = "no push: the image is deleted with the fresh store — push it to keep it"
DEBOUNCE_S = 0.5


class PushTargetValidator(Validator):
    """Valid: empty or "none" (no push), ``oci:/abs/dir[:tag]``, or an image reference."""

    def validate(self, value: str) -> ValidationResult:
        try:
            parse_push_target(value)
        except BadReference as exc:
            return self.failure(str(exc))
        return self.success()


class PushTargetField(Vertical):
    class Reachability(Message):
        def __init__(self, serial: int, ok: bool, text: str) -> None:
            super().__init__()
            self.serial, self.ok, self.text = serial, ok, text

    def __init__(self, hosts: list[str], reach: Reach, tls_verify: Callable[[str], bool],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hosts = hosts
        """Registries offered: the local one first, then those in the config."""
        self._reach, self._tls_verify = reach, tls_verify
        self._serial = 0
        self._timer: Timer | None = None
        self.repository = "buildcage/image"
        self.problem = ""
        """Why the typed target is invalid ("" when it is valid)."""
        self.store_kept = True
        """Whether the chosen profile keeps its store (a fresh store goes, image and all)."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Registry", classes="form-label")
            yield Select([(host, host) for host in self.hosts], prompt="no push", compact=True,
                         id="registry")
        with Horizontal(classes="form-row"):
            yield Label("Push to", classes="form-label")
            yield Input(placeholder="empty: no push · HOST/REPO:TAG · oci:/dir", compact=True,
                        validators=[PushTargetValidator()], validate_on=["changed", "submitted"],
                        id="push")
        yield Label(NO_PUSH, id="push-status", classes="-muted")

    def _no_push_text(self) -> str:
        return NO_PUSH if self.store_kept else NO_PUSH_FRESH

    def set_store_kept(self, kept: bool) -> None:
        """Called when the profile changes: says what "no push" means for it."""
        self.store_kept = kept
        if not self.value.strip() or self.value.strip().lower() == "none":
            self._status(self._no_push_text(), "muted" if kept else "warn")

    @property
    def value(self) -> str:
        return self.query_one("#push", Input).value.strip()

    def set_repository(self, repository: str) -> None:
        """The context changed: suggest references for it on every registry."""
        self.repository = repository
        candidates = [f"{host}/{repository}:latest" for host in self.hosts]
        self.query_one("#push", Input).suggester = SuggestFromList(candidates)

    @on(Select.Changed, "#registry")
    def _registry_picked(self, event: Select.Changed) -> None:
        event.stop()
        push = self.query_one("#push", Input)
        push.value = "" if event.value is Select.NULL else f"{event.value}/{self.repository}:latest"

    def _status(self, text: str, kind: str) -> None:
        status = self.query_one("#push-status", Label)
        status.update(Text(visible(text)))  # a registry's answer: text, never markup
        status.set_classes(f"-{kind}")

    @on(Input.Changed, "#push")
    def _push_changed(self, event: Input.Changed) -> None:
        self._serial += 1  # results of checks started before this edit are stale
        if self._timer is not None:
            self._timer.stop()
        result = event.validation_result
        self.problem = ""
        if result is not None and not result.is_valid:
            self.problem = "; ".join(result.failure_descriptions)
            self._status("✗ " + self.problem, "error")
            return
        target = parse_push_target(event.value)
        if target is None:
            self._status(self._no_push_text(), "muted" if self.store_kept else "warn")
        elif isinstance(target, OciTarget):
            self._status(f"OCI layout in {target.path} (tag {target.tag})", "muted")
        elif isinstance(target, ImageRef):
            self._status(f"checking {target.registry}…", "muted")
            serial, host = self._serial, target.registry
            # Wait for the typing to pause: each check is a network round trip.
            self._timer = self.set_timer(DEBOUNCE_S, lambda: self._check(serial, host))

    @work(thread=True, exclusive=True, group="reach")
    def _check(self, serial: int, host: str) -> None:
        ok, text = self._reach(host, self._tls_verify(host))
        self.post_message(self.Reachability(serial, ok, text))

    def on_push_target_field_reachability(self, event: PushTargetField.Reachability) -> None:
        event.stop()
        if event.serial == self._serial:
            self._status(("✓ " if event.ok else "✗ ") + event.text, "ok" if event.ok else "warn")
