"""Pulls and pushes as they happen: each transfer with its blobs, config and manifest."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive

from tui.engine.text import visible
from tui.state.build_state import Transfer
from tui.widgets.parts import PartsWidget


def short_digest(digest: str, length: int = 12) -> str:
    return visible(digest.removeprefix("sha256:")[:length])


class BlobProgress(PartsWidget):
    """Buildah prints no byte counts when it is not on a terminal, so progress is per blob:
    named (copying), skipped (already there), and done once the manifest is written. Hidden
    until ``transfers`` holds one; set it again (the same list, grown) to redraw."""

    PARTS = "blob-progress"

    COMPONENT_CLASSES = {
        "blob-progress--title", "blob-progress--done", "blob-progress--copying",
        "blob-progress--skipped",
    }

    transfers: reactive[list[Transfer]] = reactive(list, layout=True, always_update=True)

    def watch_transfers(self, transfers: list[Transfer]) -> None:
        self.display = bool(transfers)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, transfer in enumerate(self.transfers):
            if index:
                text.append("\n")
            arrow = "↓ pull" if transfer.phase == "pull" else "↑ push"
            count = len(transfer.blobs)
            state = "done" if transfer.finished else "copying"
            text.append(f"{arrow} {visible(transfer.ref) or 'base image'}\n", self.part("title"))
            text.append(f"  {count} blob{'s' * (count != 1)} · ", self.part(state))
            text.append(state if transfer.finished else "copying…", self.part(state))
            for digest, skipped in transfer.blobs:
                mark, style = ("= skipped", "skipped") if skipped else (
                    ("✓", "done") if transfer.finished else ("…", "copying"))
                text.append(f"\n  {short_digest(digest)} ")
                text.append(mark, self.part(style))
            if transfer.config:
                text.append(f"\n  config {short_digest(transfer.config)}")
            if transfer.digest:
                text.append(f"\n  manifest {short_digest(transfer.digest)}", self.part("done"))
        return text
