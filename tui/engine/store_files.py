"""A build's facts read here, from its store's own files, when the publish phase would only have
read them there (no push, no ``--load`` archive, no layers to keep, no registry cache to push).

Why: that publish container costs a warm build of ``examples/hello`` in ``project`` about half a
second of its 1.4 s (start, ``buildah inspect``, stop, remove: 0.47-0.54 s measured here, quiet
machine), for three small files this process can read itself.

Trust: the store is the build phase's, and a RUN step may have written any of its files (README,
threat model: a RUN step shares its builder container). The publish phase's Buildah read the same
files, after the same moment (the build container gone), so the facts were never better than the
store; the image id, layer sizes and base images read here are exactly as trustworthy. What
changes is who parses them: this process, as the host user. So nothing here trusts the store:

- every file is opened below a descriptor of the store's root, one component at a time with
  ``O_NOFOLLOW`` (a planted symlink leads nowhere, not even inside the store), ``O_NONBLOCK``
  (a FIFO does not hang the open), regular files only, at most ``MAX_BYTES`` read;
- every value is checked: 64-hex image ids (which alone name a directory below), ``sha256:``
  digests, non-negative integer sizes, at most ``MAX_LAYERS`` of them;
- a file with keys Go reads as one (``names``, ``Names``) is no record (``parse_json``);
- an image counts only with a readable manifest whose config is ``sha256:ID`` (``buildah
  inspect`` fails on a record without one: a RUN step's leftover process can rewrite the list
  after COMMIT, as the attacker's review measured);
- a name the records give to more than one image names none (c/storage moves a name, it never
  shares one): no image id, and the build fails as one that made no image.

Names are compared as containers/storage records them (``stored_name``: ``docker.io/library/``,
``:latest``). A short base name (no registry) is resolved only by the builder's registries.conf:
it is missing from the facts, as a base the publish phase could not inspect. A base digest is the
one ``buildah inspect`` gives (``manifest_digest``: the platform's manifest, not an index's).
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Mapping
from typing import Any, TypeGuard

from tui.engine.events import ImageFact
from tui.engine.image_facts import ImageFacts
from tui.engine.plan import MOUNT_RECORD, BuildPlan

MAX_BYTES = 16 * 1024 * 1024
"""images.json of a store with thousands of images is a few MB; a manifest a few KB."""
MAX_LAYERS = 10_000
MAX_NODES = 100_000
"""Objects and arrays in one file, at most. Within MAX_BYTES, 16 MiB of ``{},`` parsed into 5.6
million dicts: about 0.5 GB of this process and 1-3 s (measured in the review). A store of 417
images here holds 2 MB and under 10,000 of them."""
_ID_RE = re.compile(r"[0-9a-f]{64}")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def is_image_id(value: object) -> bool:
    """Whether ``value`` is an image or container id as c/storage writes one (64 hex): the only
    form in which a store's id names a directory or goes on a command line."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def is_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a ``sha256:`` digest (64 hex), the only form a store's records
    give a layer or an image."""
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def working_containers(root: str) -> list[tuple[str, list[str], str]]:
    """The store's container records (``overlay-containers/containers.json``) as (id, names,
    created), only those with a 64-hex id and a list of names; [] when they cannot be read."""
    what = "overlay-containers/containers.json"
    try:
        records = parse_json(read_file(root, what), what)
    except StoreFileError:
        return []
    return [(r["id"], [n for n in r["names"] if isinstance(n, str)], str(r.get("created", "")))
            for r in (records if isinstance(records, list) else [])
            if isinstance(r, dict) and is_image_id(r.get("id"))
            and isinstance(r.get("names"), list)]


class StoreFileError(Exception):
    """A store file that is missing, not a regular file, too big or not what it should be."""


def read_file(root: str, relative: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``root/relative``, never through a symlink, a FIFO or a device; raises
    StoreFileError. ``relative`` is buildcage's own (fixed names and checked ids)."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StoreFileError(f"{relative!r} is no path below the store")
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise StoreFileError(f"the store {root} cannot be opened: {exc.strerror}") from None
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise StoreFileError(f"{relative}: {part} is no directory ({exc.strerror})"
                                     ) from None
            os.close(fd)
            fd = next_fd
        data = read_at(fd, parts[-1], limit, relative)
    finally:
        os.close(fd)
    if data is None:
        raise StoreFileError(f"{relative} cannot be opened (No such file or directory)")
    return data


def read_at(directory: int, name: str, limit: int = MAX_BYTES, shown: str = "") -> bytes | None:
    """The bytes of regular file ``name`` in the directory open as ``directory``; None when
    there is none. Never a symlink, a FIFO or a device, at most ``limit`` bytes; raises
    StoreFileError for anything else (``shown``: its name in the message)."""
    shown = shown or name
    try:
        # Looked at before it is opened: opening a device can act (a watchdog starts).
        seen = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreFileError(f"{shown} cannot be opened ({exc.strerror})") from None
    if stat.S_ISLNK(seen.st_mode):
        raise StoreFileError(f"{shown} is a symlink")
    if not stat.S_ISREG(seen.st_mode):
        raise StoreFileError(f"{shown} is not a regular file")
    try:
        file_fd = os.open(name, _READ_FLAGS, dir_fd=directory)
    except OSError as exc:
        raise StoreFileError(f"{shown} cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (seen.st_dev,
                                                                           seen.st_ino):
            raise StoreFileError(f"{shown} is not a regular file (or was replaced)")
        if info.st_size > limit:
            raise StoreFileError(f"{shown} is larger than {limit} bytes")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(file_fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise StoreFileError(f"{shown} is larger than {limit} bytes")
        return data
    except OSError as exc:
        raise StoreFileError(f"{shown} cannot be read ({exc.strerror})") from None
    finally:
        os.close(file_fd)


def parse_json(data: bytes, what: str) -> Any:
    """``data`` as JSON; raises StoreFileError. A deep nesting is a RecursionError in Python's
    parser (one level per ``[``: 400 kB of them), not a ValueError."""
    if data.count(b"{") + data.count(b"[") > MAX_NODES:  # (brackets in strings count too)
        raise StoreFileError(f"{what} holds more than {MAX_NODES} objects and arrays")
    try:  # UTF-8 only, as Go reads it (json.loads of bytes guesses UTF-16 and skips a BOM)
        return json.loads(data.decode("utf-8"), object_pairs_hook=one_key_each,
                          parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise StoreFileError(f"{what} does not parse: {type(exc).__name__}") from None


def no_constant(word: str) -> None:
    """NaN and Infinity are no JSON (Go refuses them: Buildah would not read the file)."""
    raise ValueError(f"{word} is not JSON")


def one_key_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys Go's encoding/json would take for one field refused (ValueError).
    Buildah matches a key to a field ignoring case, with Unicode folding (``nameſ`` is
    ``names``), the last one winning; Python keeps them apart, so ``{"names": [A], "Names":
    [B]}`` would be A here and B to Buildah. (Repeated keys: the last wins in both.) Costs
    0.5 ms on a 195 kB image list."""
    record = dict(pairs)
    if len({key.casefold() for key in record}) != len(record):
        raise ValueError("keys that differ only in case")
    return record


_PARSED: dict[str, tuple[bytes, list[Mapping[str, Any]]]] = {}
"""The last image list parsed per store: its bytes and its records (a few stores at most;
shared, so read only: ``Mapping``)."""
_PARSED_STORES = 4
_PARSED_LOCK = threading.Lock()


def read_images(root: str) -> list[Mapping[str, Any]]:
    """The store's image records (``overlay-images/images.json``), each a JSON object; raises
    StoreFileError. Parsed again only when its bytes differ from the last parse of that store
    (compared whole): a build reads the host's list three or four times (the plan key's
    builder id, the check and the end of an unchanged build, host-ro's bases), 3.2 ms a parse
    of 468 images here, 0.03 ms a read and a comparison."""
    raw = read_file(root, "overlay-images/images.json")
    with _PARSED_LOCK:  # (builds in other threads read stores too)
        known = _PARSED.get(root)
    if known is not None and known[0] == raw:
        return list(known[1])
    records = parse_json(raw, "overlay-images/images.json")
    if not isinstance(records, list):
        raise StoreFileError("overlay-images/images.json is not a list")
    found: list[Mapping[str, Any]] = [r for r in records if isinstance(r, dict)]
    with _PARSED_LOCK:
        if root not in _PARSED and len(_PARSED) >= _PARSED_STORES:
            _PARSED.pop(next(iter(_PARSED)), None)
        _PARSED[root] = (raw, found)
    return list(found)


def image_names(root: str) -> list[str]:
    """Every name the store's records give an image ([] when they cannot be read)."""
    try:
        records = read_images(root)
    except StoreFileError:
        return []
    return [n for r in records for n in record_names(r)]


def record_names(record: Mapping[str, Any]) -> list[str]:
    """The names an image record gives, those that are strings."""
    names = record.get("names")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def stored_name(ref: str) -> str | None:
    """``ref`` as containers/storage records it (c/image's normalisation): ``docker.io`` for
    ``index.docker.io``, ``library/`` before a single docker.io component, ``:latest`` when no
    tag or digest is given. None for a short name (no registry): only the builder's
    registries.conf resolves it, so no record can be said to be it."""
    name, at, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        return None
    domain = "docker.io" if first == "index.docker.io" else first
    path, tag = rest, ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = rest.rsplit(":", 1)
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if at:
        return f"{domain}/{path}{':' + tag if tag else ''}@{digest}"
    return f"{domain}/{path}:{tag or 'latest'}"


def find_image(records: list[Mapping[str, Any]], ref: str) -> Mapping[str, Any] | None:
    """The one record naming ``ref`` (normalised: ``stored_name``) with a valid id; None for
    none, for several, or for a short name."""
    name = stored_name(ref)
    if name is None:
        return None
    found = [r for r in records if name in record_names(r)]
    if len(found) != 1 or not _ID_RE.fullmatch(str(found[0].get("id", ""))):
        return None
    return found[0]


def layer_sizes(root: str, image_id: str) -> tuple[int, ...] | None:
    """The sizes of the image's layers, from its manifest (the ``manifest`` big-data item, what
    ``buildah inspect`` shows as ``Manifest``); None when it cannot be read or is not one.

    Only the manifest of that image counts: its config must be ``sha256:ID`` (an image's id is
    its config's digest, pulled or built). ``buildah inspect`` fails on a record with no
    manifest (a RUN step's leftover process rewrote the tag's id after COMMIT, in the review:
    the publish phase then failed the build); read here, it is no image either."""
    if not _ID_RE.fullmatch(image_id):
        return None
    try:
        manifest = parse_json(read_file(root, f"overlay-images/{image_id}/manifest", 1 << 20),
                              "the image's manifest")
    except StoreFileError:
        return None
    if not isinstance(manifest, dict):
        return None
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("digest") != f"sha256:{image_id}":
        return None
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        return None
    sizes = []
    for layer in layers:
        size = layer.get("size") if isinstance(layer, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        sizes.append(size)
    return tuple(sizes)


def manifest_digest(record: Mapping[str, Any]) -> str:
    """What ``buildah inspect`` calls ``FromImageDigest``: the digest of the manifest the store
    keeps as ``manifest`` (for an image pulled through an index, the platform's instance, not
    the index the record's ``digest`` names); "" when the record says neither validly."""
    digests = record.get("big-data-digests")
    if isinstance(digests, dict) and _DIGEST_RE.fullmatch(str(digests.get("manifest", ""))):
        return str(digests["manifest"])
    digest = str(record.get("digest", ""))
    return digest if _DIGEST_RE.fullmatch(digest) else ""


def overlay_record(root: str) -> str:
    """"kernel" or "fuse": containers/storage's record of how it mounts this store; "" unknown."""
    try:
        record = read_file(root, MOUNT_RECORD, 16).decode("ascii", "replace").strip()
    except StoreFileError:
        return ""
    return {"false": "kernel", "true": "fuse"}.get(record, "")


def read_store_facts(plan: BuildPlan, host_bases: Mapping[str, ImageFact],
                     root: str | None = None) -> ImageFacts:
    """The facts the publish phase's ``buildah inspect`` would have written, from the plan's
    store (``BuildPlan.facts_read_here``): its project directory (``stores.store_root``), or
    ``root`` (the c/storage root of a fresh volume, as podman says where it is).
    ``host_bases``: the host images this build pinned (host-ro), as the podman service described
    them; a base the store names itself comes first, as c/storage looks in its writable store
    first."""
    if root is None:
        from tui.engine.stores import store_root

        project = store_root(plan)
        if project is None:
            return ImageFacts()
        root = str(project)
    # The host store's own record is the host's; a host-rw builder always mounts with
    # fuse-overlayfs (profiles refuse any other), and writes its record into a private copy
    # that a RUN step can write too: the plan says it, as the publish phase's Buildah did.
    overlay = overlay_record(root) if plan.profile.store != "host" else plan.overlay
    try:
        records = read_images(root)
    except StoreFileError:
        return ImageFacts(overlay=overlay)
    image_id, layers = "", None
    record = find_image(records, plan.tag)
    if record is not None:
        layers = layer_sizes(root, str(record["id"]))
        image_id = str(record["id"]) if layers is not None else ""
    bases = []
    for ref in plan.fetch_refs:
        base = find_image(records, ref)
        if base is not None:
            if layer_sizes(root, str(base["id"])) is not None:  # else buildah inspect fails
                bases.append(ImageFact(ref=ref, id=str(base["id"]), digest=manifest_digest(base)))
        elif stored_name(ref) is not None and ref in host_bases:
            bases.append(host_bases[ref])
    return ImageFacts(image_id=image_id, layers=layers, overlay=overlay,
                      bases=tuple(bases) if bases else None)
