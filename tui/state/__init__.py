"""View-models folded from engine events: plain data, no Textual, read by widgets and the CLI."""

from tui.state.build_state import FINISHED, BuildState, StepRow, StepStatus, Transfer

__all__ = ["FINISHED", "BuildState", "StepRow", "StepStatus", "Transfer"]
