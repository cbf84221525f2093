"""What screens ask of the app. A screen posts one of these; it bubbles to ``BuildcageApp``,
which handles it with ``@on`` (harlequin's way): screens never call app methods by name, and the
app never calls back into a screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual.message import Message

from tui.engine.request import BuildRequest

if TYPE_CHECKING:  # (the layers' reader is imported when a screen asks for layers)
    from tui.engine.layer_reader import LayerSource


@dataclass
class BuildRequested(Message):
    """Prepare ``request`` as the CLI does and open the build screen (or show what is wrong).
    ``confirmed``: the user said yes to the profile's confirmation, if it asks for one."""

    request: BuildRequest
    confirmed: bool = False


@dataclass
class CompareRequested(Message):
    """Open the comparison screen for ``request``'s context and settings."""

    request: BuildRequest


@dataclass
class CompareAsked(Message):
    """The command palette's "Compare profiles": the session screen, which owns the form,
    answers with a ``CompareRequested`` for what the form holds. Posted to that screen only."""

    bubble: ClassVar[bool] = False


@dataclass
class LayersRequested(Message):
    """Open the layers screen for ``source`` (an image in a profile's store, or a kept report):
    from a build's result and from history."""

    source: LayerSource
