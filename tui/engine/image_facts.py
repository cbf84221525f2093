"""The facts a build's user relies on (image id, layer sizes, the pushed digest), read from the
files the trusted publish phase wrote: Buildah's ``inspect`` of the image the store holds under
the tag, and ``buildah push --digestfile``. Never from the build's output, which a RUN step
writes to as freely as Buildah does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tui.engine.events import CacheExported, ImageFact, Pushed
from tui.engine.plan import (
    BASE_FILE,
    CACHE_FILE,
    CACHE_MAX_IMAGES,
    DIGEST_FILE,
    IMAGE_FILE,
    OVERLAY_FILE,
    BuildPlan,
)
from tui.engine.text import visible

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
    bases: tuple[ImageFact, ...] | None = None
    """The external images the build read (``BuildPlan.fetch_refs``) as the store held them;
    None when the publish phase wrote none of them."""
    cache: CacheExported | None = None
    """The registry cache's update; None when the build has no registry cache."""


def read_facts(plan: BuildPlan) -> ImageFacts:
    image_id, layers = _image(plan)
    return ImageFacts(image_id=image_id, layers=layers, pushed=_pushed(plan),
                      bases=_bases(plan), cache=_cache(plan),
                      overlay=_overlay(plan))


def _overlay(plan: BuildPlan) -> str:
    record = _read(plan.facts_dir / OVERLAY_FILE).strip()
    return {"false": "kernel", "true": "fuse"}.get(record, "")


def _bases(plan: BuildPlan) -> tuple[ImageFact, ...] | None:
    found = []
    for index, ref in enumerate(plan.fetch_refs):
        words = _read(plan.facts_dir / BASE_FILE.format(index=index)).split()
        image_id = words[0] if words else ""
        digest = words[1] if len(words) > 1 else ""
        if _ID_RE.fullmatch(image_id):
            found.append(ImageFact(ref=ref, id=image_id,
                                   digest=digest if _DIGEST_RE.fullmatch(digest) else ""))
    return tuple(found) if found else None


_CACHE_RE = re.compile(r"images (\d{1,4}) pushed (\d{1,4})")


def _cache(plan: BuildPlan) -> CacheExported | None:
    if not plan.pushes_cache:
        return None
    text = _read(plan.facts_dir / CACHE_FILE)[:1000].strip()
    match = _CACHE_RE.fullmatch(text)
    if match and int(match[2]) <= int(match[1]) <= CACHE_MAX_IMAGES:
        return CacheExported(repo=plan.cache_repo, images=int(match[1]), pushed=int(match[2]))
    if text.startswith("failed: ") and "\n" not in text:
        return CacheExported(repo=plan.cache_repo, error=visible(text.removeprefix("failed: ")))
    return CacheExported(repo=plan.cache_repo,
                         error="the publish phase left no readable record")


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
