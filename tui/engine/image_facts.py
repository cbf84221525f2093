"""The facts a build's user relies on (image id, layer sizes, the pushed digest), read from the
files the trusted publish phase wrote: Buildah's ``inspect`` of the image the store holds under
the tag, and ``buildah push --digestfile``. Never from the build's output, which a RUN step
writes to as freely as Buildah does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tui.engine.events import Pushed
from tui.engine.plan import DIGEST_FILE, IMAGE_FILE, OVERLAY_FILE, BuildPlan

_ID_RE = re.compile(r"[0-9a-f]{64}")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_BYTES = 16 * 1024 * 1024  # an inspect of an image with thousands of layers is far less


@dataclass(frozen=True)
class ImageFacts:
    image_id: str = ""
    layers: tuple[int, ...] | None = None
    """Compressed-or-not sizes of the layers, from the image's manifest."""
    pushed: Pushed | None = None
    overlay: str = ""
    """"kernel" or "fuse": containers/storage's own record in the store the build used."""


def read_facts(plan: BuildPlan) -> ImageFacts:
    image_id, layers = _image(plan)
    return ImageFacts(image_id=image_id, layers=layers, pushed=_pushed(plan),
                      overlay=_overlay(plan))


def _overlay(plan: BuildPlan) -> str:
    record = _read(plan.facts_dir / OVERLAY_FILE).strip()
    return {"false": "kernel", "true": "fuse"}.get(record, "")


def _read(path) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(_MAX_BYTES)
    except (OSError, UnicodeDecodeError):
        return ""


def _image(plan: BuildPlan) -> tuple[str, tuple[int, ...] | None]:
    try:
        data = json.loads(_read(plan.facts_dir / IMAGE_FILE))
        image_id = str(data.get("FromImageID", ""))
        manifest = json.loads(data.get("Manifest") or "{}")
        layers = tuple(int(layer.get("size", 0)) for layer in manifest.get("layers") or [])
    except (ValueError, AttributeError, TypeError):
        return "", None
    return (image_id if _ID_RE.fullmatch(image_id) else ""), layers


def _pushed(plan: BuildPlan) -> Pushed | None:
    push = plan.push_argv()
    if push is None:
        return None
    digest = _read(plan.facts_dir / DIGEST_FILE).strip()
    return Pushed(ref=push[0], digest=digest) if _DIGEST_RE.fullmatch(digest) else None
