"""Whether the registry cache has anything left to push after a build, read here from the fresh
store's own files: when it has not, and the publish phase has no other work (no push target, no
``--load`` archive), the runner starts no publish container and reads the facts itself.

Why: a warm rebuild that hits the cache at every step leaves the cache as it was, and its
publish container did nothing but find that out. It cost 0.54 s of the bench's *tiny* and
0.80 s of its *steps* (isolated with the cache, warm: start, ``buildah images``, ``buildah
containers``, stop, remove), about a fifth of those builds.

What "nothing left" means is what ``BuildPlan.cache_push_script`` decides in the publish phase,
read from the same records (its twin, kept in step by tests/unit/test_cache_left.py and a real
warm build in tests/integration/test_registry_cache_real.py):

- used: the image each of the build's working containers started from (``--rm=false`` keeps
  them; ``overlay-containers/containers.json``, in the order the build made them), then the
  tagged result, without the bases (``BuildPlan.fetch_refs``), at most CACHE_MAX_IMAGES;
- in the cache: images named ``REPO:ID`` (the fetch phase pulled them from it);
- nothing left: every used image is in the cache, and every image the fetch phase pulled from
  the cache was used (else the index is written again without the stale ones).

Trust: the store is the build's, which a RUN step may have rewritten (tui.engine.store_files
reads it as hostile). A forged "nothing left" costs only the cache update: the cache keeps the
images trusted phases pushed before, and the next build uses them or builds again. A forged
"something left" runs the publish phase, as before. The publish phase's Buildah can be fooled
alike (renamed records), and reads more than this does (Go matches ``Image`` keys in any case,
and c/storage also loads ``volatile-containers.json``): a RUN step that hides a record from one
or the other changes only whether the cache is updated, never the image or its facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tui.engine.plan import CACHE_MAX_IMAGES, BuildPlan
from tui.engine.store_files import (
    StoreFileError,
    find_image,
    is_image_id,
    parse_json,
    read_file,
    read_images,
    record_names,
)


@dataclass(frozen=True)
class CacheLeft:
    used: int
    """Images the build used, as the new index would list them."""
    new: int
    """Of those, not in the cache yet."""
    stale: bool
    """The fetch phase pulled cache images this build did not use."""

    @property
    def nothing(self) -> bool:
        return self.new == 0 and not self.stale


def cache_left(plan: BuildPlan, root: str) -> CacheLeft | None:
    """What the publish phase's cache step would find in the store at ``root``; None when the
    records cannot be read as c/storage writes them (the publish phase then runs)."""
    what = "overlay-containers/containers.json"
    try:
        records = read_images(root)
        containers = parse_json(read_file(root, what), what)
    except StoreFileError:
        return None
    if not isinstance(containers, list):
        return None
    result = find_image(records, plan.tag)
    if result is None:
        return None
    bases = set()
    for ref in plan.fetch_refs:
        base = find_image(records, ref)
        if base is not None:
            bases.add(str(base["id"]))
    started = [c.get("image") for c in containers if isinstance(c, dict)]
    used: list[str] = []
    for image in [*started, result["id"]]:
        if is_image_id(image) and image not in bases and image not in used:
            if len(used) == CACHE_MAX_IMAGES:
                break
            used.append(str(image))
    named = re.compile(re.escape(plan.cache_repo) + ":([0-9a-f]{64})")
    have = {match[1] for record in records for name in record_names(record)
            if (match := named.fullmatch(name))}
    return CacheLeft(used=len(used), new=sum(1 for i in used if i not in have),
                     stale=any(i not in used for i in have))
