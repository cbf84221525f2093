"""Pulls and pushes as they happen: each transfer with its blobs, config and manifest."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui.engine.text import visible
from tui.state.build_state import Transfer


def short_digest(digest: str, length: int = 12) -> str:
    return visible(digest.removeprefix("sha256:")[:length])


class BlobProgress(Widget):
    """Buildah prints no byte counts when it is not on a terminal, so progress is per blob:
    named (copying), skipped (already there), and done once the manifest is written."""

    COMPONENT_CLASSES = {
        "blob-progress--title", "blob-progress--done", "blob-progress--copying",
        "blob-progress--skipped",
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.transfers: list[Transfer] = []

    def show(self, transfers: list[Transfer]) -> None:
        self.transfers = transfers
        self.display = bool(transfers)
        self.refresh(layout=True)

    def _style(self, name: str):  # noqa: ANN202 - a rich Style
        return self.get_component_rich_style(f"blob-progress--{name}")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, transfer in enumerate(self.transfers):
            if index:
                text.append("\n")
            arrow = "↓ pull" if transfer.phase == "pull" else "↑ push"
            count = len(transfer.blobs)
            state = "done" if transfer.finished else "copying"
            text.append(f"{arrow} {visible(transfer.ref) or 'base image'}\n", self._style("title"))
            text.append(f"  {count} blob{'s' * (count != 1)} · ", self._style(state))
            text.append(state if transfer.finished else "copying…", self._style(state))
            for digest, skipped in transfer.blobs:
                mark, style = ("= skipped", "skipped") if skipped else (
                    ("✓", "done") if transfer.finished else ("…", "copying"))
                text.append(f"\n  {short_digest(digest)} ")
                text.append(mark, self._style(style))
            if transfer.config:
                text.append(f"\n  config {short_digest(transfer.config)}")
            if transfer.digest:
                text.append(f"\n  manifest {short_digest(transfer.digest)}", self._style("done"))
        return text
