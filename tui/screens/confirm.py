"""A yes/no question in a modal dialog; dismisses with True only on an explicit yes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from tui.engine.text import visible
from tui.screens.base import Dialog
from tui.styles_path import css_path


class ConfirmScreen(Dialog[bool]):
    CSS_PATH = css_path("confirm.tcss")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes, run it") -> None:
        super().__init__()
        self.question, self.detail, self.yes = question, detail, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(visible(self.question)), id="question")
            if self.detail:
                yield Static(Text(visible(self.detail)), id="detail")
            with Horizontal(id="buttons"):
                # "No" first and focused: the safe answer is the easy one.
                yield Button("No", variant="primary", id="no")
                yield Button(self.yes, variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def overwrite_question(tag: str, host_image_id: str) -> ConfirmScreen:
    """The question before a load moves a host tag that names another image (the CLI's
    ``--load-overwrite``)."""
    return ConfirmScreen(
        f"Move {tag} on the host to this build's image?",
        f"On this host it names image {host_image_id[:12]} now, which buildcage did not load "
        f"there. That image stays (by its id or other names); whatever runs {tag} afterwards "
        f"runs what this build made.", yes="Yes, move it")
