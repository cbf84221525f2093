"""Reading an image's layers where they are, and keeping their reports.

The image lives in a builder's store, which the host may not see (a project store is a plain
directory, but the isolated profile's fresh volume is gone once the build ends, and a
user-namespaced store belongs to a mapping no later container gets). So the layers are always
read by Buildah itself, in a trusted container on the store's mounts, with no network:
``buildah push --disable-compression IMAGE dir:DIR`` writes each layer as an uncompressed tar
into a private per-read directory (``DATA/builds/ID/layers``, 0700), and buildcage reads the
tars' **headers only** (``tui.engine.tar_headers``): nothing is extracted, no file's data is
read. Two moments:

- a store that outlives the build (host-ro, project, host-rw): when asked, by a short-lived
  container on the same store mounts as the build (``read_from_store``);
- a store that does not (``BuildPlan.keeps_layers``): the build's own trusted publish phase
  writes the layout into the per-build facts directory (the out-of-band channel), and the
  runner keeps the report (``keep_after_build``).

Reports are kept in ``DATA/layers/IMAGE_ID.json`` (0600; an image id is the digest of its
config, so a report never goes stale), with a small ``IMAGE_ID.where.json`` saying which
profile and project built it; the newest ``KEEP`` files stay.

Cost: the layout is a second, uncompressed copy of the image on disk while it is read (a
hostile build can make that large; it is the same size as the image its store already holds).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from tui.engine.config import data_dir, private_dir
from tui.engine.errors import UserError
from tui.engine.history import BuildRecord, HistoryError
from tui.engine.layers import (
    Entry,
    LayerInput,
    LayerReport,
    analyze,
    entry_from_header,
    instructions_for,
)
from tui.engine.plan import LAYERS_DIR, BuildPlan, Mount, Phase, layers_argv
from tui.engine.tar_headers import MAX_ENTRIES, TarError, read_headers

if TYPE_CHECKING:
    from tui.engine.session import Engine

__all__ = ["LAYERS_DIR", "LayerSource", "LayersError", "find_source", "keep_after_build",
           "entries_of", "read_from_store", "read_layers", "read_layout", "reader_command",
           "save_report",
           "save_where", "saved_report", "where_built"]

READER_DIR = "/buildcage/layers"
"""Where the short-lived reader writes the layout (a private per-read host directory)."""
KEEP = 200
"""Report and where-built files kept in ``DATA/layers`` (the newest)."""
MAX_NAME = 4096
"""Bytes in a layer's file name or link target: Linux's PATH_MAX."""
_MAX_JSON = 16 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{12,64}")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}")


class LayersError(UserError, RuntimeError):
    """The layers cannot be read or found; the message says why and what to do."""


@dataclass(frozen=True)
class LayerSource:
    """Which image, in which profile's store (and which project's, for a project store)."""

    image: str
    """An image id (64 hex), or a name the store knows."""
    profile: str
    project: str = ""
    context: str = ""


def reader_command(image: str) -> list[str]:
    """The trusted reader's argv (no shell): the image's layers into ``READER_DIR``."""
    if not _IMAGE.fullmatch(image):
        raise LayersError(f"image {image!r}: give an image id or name (letters, digits and "
                          f". _ : / @ + -, at most 255)")
    return layers_argv(image, f"{READER_DIR}/image")


# -- the layout on the host --------------------------------------------------------------------

@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """A regular file, never through a symlink: the directory was written by a builder's root
    (an unprivileged uid in a user namespace), and this process reads it as the user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LayersError(f"{path.name} in the layers' layout is not a regular file "
                              "(a symbolic link)") from exc
        raise LayersError(f"no {path.name} in the layers' layout ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LayersError(f"{path.name} in the layers' layout is not a regular file")
        yield handle


def _json(path: Path) -> Any:
    with _open(path) as handle:
        raw = handle.read(_MAX_JSON + 1)
    if len(raw) > _MAX_JSON:
        raise LayersError(f"{path.name} in the layers' layout is larger than {_MAX_JSON} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # a deep nesting recurses: not a ValueError
        raise LayersError(f"{path.name} in the layers' layout is not JSON: "
                          f"{type(exc).__name__}") from None


def _hex(digest: object, what: str) -> str:
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise LayersError(f"the layout's manifest names {what} by a digest that is not "
                          f"sha256:<64 hex>: {str(digest)[:80]!r}")
    return match.group(1)


def read_layout(directory: Path, *, source: str = "") -> LayerReport:
    """The report of the image a ``buildah push ... dir:DIRECTORY`` wrote: its manifest's
    layers in order, the config's history for what made each, the tars' headers for what each
    holds. Raises LayersError."""
    manifest = _json(directory / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise LayersError("the layers' layout has a manifest without layers")
    config_hex = _hex((manifest.get("config") or {}).get("digest"), "its config")
    config = _json(directory / config_hex)
    descriptors = manifest["layers"]
    history = config.get("history") if isinstance(config, dict) else None
    made_by = instructions_for(history, len(descriptors))
    inputs: list[LayerInput] = []
    budget = MAX_ENTRIES
    for index, descriptor in enumerate(descriptors):
        digest = _hex(descriptor.get("digest") if isinstance(descriptor, dict) else None,
                      f"layer {index}")
        path = directory / digest
        try:
            with _open(path) as blob:
                size = os.fstat(blob.fileno()).st_size
                entries = list(_entries(blob, budget))
        except TarError as exc:
            raise LayersError(f"layer {index} (sha256:{digest[:12]}): {exc}") from exc
        budget -= len(entries)
        instruction, folded = made_by[index]
        inputs.append(LayerInput(f"sha256:{digest}", entries, instruction, folded, size))
    return analyze(config_hex, inputs, source=source)


def _entries(blob: IO[bytes], budget: int) -> Iterator[Entry]:
    magic = blob.read(4)
    blob.seek(0)
    if magic[:2] == b"\x1f\x8b":  # a gzip layer (a store that kept one compressed)
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=blob, mode="rb"))  # forward only
    elif magic == b"\x28\xb5\x2f\xfd":
        raise TarError("a zstd-compressed layer, which buildcage cannot read")
    else:
        stream = blob
    return entries_of(stream, budget)


def entries_of(stream: IO[bytes], budget: int) -> Iterator[Entry]:
    """The entries of an uncompressed tar stream (a layout's blob, a store's tar-split record:
    tui.engine.store_layers); raises TarError."""
    try:
        for header in read_headers(stream, max_entries=budget):
            if len(header.name) > MAX_NAME or len(header.linkname) > MAX_NAME:
                # No store can hold it (PATH_MAX); and a long path costs its depth in every
                # walk of the analysis.
                raise TarError(f"a name of {max(len(header.name), len(header.linkname))} "
                               f"bytes, longer than a path can be ({MAX_NAME})")
            entry = entry_from_header(header)
            if entry is not None:
                yield entry
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TarError(f"cannot read it: {exc}") from exc


# -- reading from a store ---------------------------------------------------------------------

def store_name(plan: BuildPlan) -> str:
    """Whose store, in words."""
    store = plan.profile.store
    if store == "host":
        return f"the host's store ({plan.profile.name})"
    if store == "fresh":
        return f"a fresh store ({plan.profile.name})"
    return f"the store of project {plan.project} ({plan.profile.name})"


def read_from_store(client: Any, plan: BuildPlan, image: str) -> LayerReport:
    """Runs the trusted reader on the plan's store mounts (no network, nothing from a
    Containerfile), reads the layout it wrote, and removes both. Raises LayersError."""
    from tui.engine.containers import remove_container, wait_exit
    from tui.engine.orphans import owned
    from tui.engine.paths import check_own_path
    from tui.engine.renderings import create_kwargs
    from tui.engine.stores import write_plan_files
    from tui.engine.transfer import copy_in, copy_out

    argv = reader_command(image)
    plan = owned(plan)
    write_plan_files(plan)  # the store's storage.conf and registries file
    out = plan.build_dir / "layers"
    try:
        check_own_path(out, plan.data_dir)
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        mounts = (*plan.store_mounts(),
                  Mount(str(out), READER_DIR, "sync" if plan.remote else "bind", False,
                        "the image's layers, written by buildah push"),
                  *([Mount("/dev/fuse", "/dev/fuse", "device", False, "fuse-overlayfs")]
                    if plan.overlay == "fuse" else []))
        spec = Phase(name="publish", network="none", command=tuple(plan.on_store(argv)),
                     mounts=mounts,
                     container_name=f"{plan.container_name}-layers")
        container = client.containers.create(**create_kwargs(plan, spec))
        try:
            copy_in(container, spec.mounts)
            container.start()
            code = wait_exit(container)
            if code != 0:
                logs = container.logs(stdout=True, stderr=True, tail=3)
                tail = b"".join(logs).decode("utf-8", "replace").strip()
                raise LayersError(f"could not read the layers of {image} from "
                                  f"{store_name(plan)} (buildah exit {code}): {tail}")
            copy_out(container, spec.mounts)
        finally:
            remove_container(container)
        return read_layout(out / "image", source=store_name(plan))
    finally:
        shutil.rmtree(plan.build_dir, ignore_errors=True)


def keep_after_build(plan: BuildPlan, image_id: str, store_root: str | None = None,
                     canceled: Callable[[], bool] | None = None) -> str:
    """After a build: where the image was built, and, for a store that goes with the build,
    the report of its layers: from the layout its publish phase wrote, or, with no publish
    phase (``BuildPlan.facts_read_here``), from the store at ``store_root`` itself
    (tui.engine.store_layers). Returns a warning, or ""."""
    from tui.engine.store_layers import StoreLayersError, read_store_layers

    problem = ""
    try:
        save_where(plan.data_dir, image_id, profile=plan.profile.name, project=plan.project,
                   context=str(plan.context))
        if plan.keeps_layers:
            if store_root is not None:
                report = read_store_layers(store_root, image_id, canceled=canceled,
                                           source=f"the build's store ({plan.profile.name}: it "
                                                  f"is not kept)")
            else:
                report = read_layout(plan.facts_dir / "layers",
                                     source=f"the build's publish phase ({plan.profile.name}: "
                                            f"its store is not kept)")
            if report.image_id != image_id:
                raise LayersError(f"they were of image {report.image_id[:12]}, not the built "
                                  f"{image_id[:12]}")
            save_report(plan.data_dir, report)
    except (LayersError, StoreLayersError, OSError) as exc:
        problem = f"the image's layers were not kept: {exc}"
    finally:
        if plan.keeps_layers:
            shutil.rmtree(plan.facts_dir / "layers", ignore_errors=True)
    return problem


# -- kept reports -----------------------------------------------------------------------------

def _folder(data: Path) -> Path:
    from tui.engine.paths import check_own_path

    private_dir(data)
    folder = private_dir(data / "layers")
    check_own_path(folder, data)
    return folder


def _write(path: Path, document: dict[str, Any], keep: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _prune(path.parent, keep)


def _prune(folder: Path, keep: int) -> None:
    files = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def save_report(data: Path, report: LayerReport, *, keep: int = KEEP) -> None:
    if not _HEX64.fullmatch(report.image_id):
        raise LayersError(f"not an image id: {report.image_id[:80]!r}")
    _write(_folder(data) / f"{report.image_id}.json", report.to_dict(), keep)


def saved_report(data: Path, image_id: str) -> LayerReport | None:
    """The kept report of ``image_id``, or None (none kept, or not readable as one)."""
    if not _HEX64.fullmatch(image_id):
        return None
    try:
        return LayerReport.from_dict(_json(data / "layers" / f"{image_id}.json"))
    except (LayersError, KeyError, TypeError, ValueError, AttributeError):
        return None


def save_where(data: Path, image_id: str, *, profile: str, project: str, context: str,
               keep: int = KEEP) -> None:
    if not _HEX64.fullmatch(image_id):
        raise LayersError(f"not an image id: {image_id[:80]!r}")
    _write(_folder(data) / f"{image_id}.where.json",
           {"profile": profile, "project": project, "context": context}, keep)


def where_built(data: Path, image_id: str) -> dict[str, str] | None:
    if not _HEX64.fullmatch(image_id):
        return None
    try:
        raw = _json(data / "layers" / f"{image_id}.where.json")
    except LayersError:
        return None
    if not isinstance(raw, dict):
        return None
    where = {k: raw.get(k) for k in ("profile", "project", "context")}
    return {k: v for k, v in where.items() if isinstance(v, str)} \
        if all(isinstance(v, str) for v in where.values()) else None


def _known_id(data: Path, prefix: str) -> str:
    """The one kept image id starting with ``prefix``, or ""."""
    folder = data / "layers"
    if not _HEX_PREFIX.fullmatch(prefix) or not folder.is_dir():
        return ""
    found = {p.name[:64] for p in folder.iterdir() if p.name.startswith(prefix)
             and _HEX64.fullmatch(p.name[:64])}
    return found.pop() if len(found) == 1 else ""


# -- which image, where ------------------------------------------------------------------------

def _source_of(record: BuildRecord, data: Path, profile: str, project: str) -> LayerSource:
    from tui.engine.planner import project_name

    where = where_built(data, record.image_id) or {}
    context = where.get("context") or record.context
    return LayerSource(image=record.image_id, profile=profile or record.profile,
                       project=project or where.get("project") or project_name(Path(context)),
                       context=context)


def _built(engine: Engine, image: str) -> BuildRecord | None:
    """The newest successful build whose image is ``image`` (an id, or its start), or whose tag
    is; None when history cannot say."""
    from tui.engine.registry import BadReference, parse_reference

    try:
        records = engine.history.recent(KEEP)
    except HistoryError:
        return None
    try:
        tag = str(parse_reference(image))
    except BadReference:
        tag = image
    hexish = bool(_HEX_PREFIX.fullmatch(image))
    for record in records:
        if record.status != "succeeded" or not record.image_id:
            continue
        if (hexish and record.image_id.startswith(image)) or record.tag in (image, tag):
            return record
    return None


def find_source(engine: Engine, image: str = "", *, last: bool = False, profile: str = "",
                project: str = "") -> LayerSource:
    """What ``buildcage layers [IMAGE | --last]`` reads. No IMAGE: the last successful build.
    An IMAGE that a build in history made: that build's profile and project (unless given).
    Any other IMAGE: the given profile (default: the config's) and project (default: the
    current directory's), e.g. a host image read through host-ro's read-only host store."""
    from tui.engine.planner import project_name

    data = data_dir().resolve()
    if image and last:
        raise LayersError("name an IMAGE or --last, not both")
    if not image:
        try:
            records = engine.history.recent(KEEP)
        except HistoryError as exc:
            raise LayersError(str(exc)) from exc
        record = next((r for r in records if r.status == "succeeded" and r.image_id), None)
        if record is None:
            raise LayersError("no successful build in history yet: build one, or name an IMAGE")
        return _source_of(record, data, profile, project)
    reader_command(image)  # a name buildah can be given, checked before anything else
    record = _built(engine, image)
    if record is not None and not (profile and project):
        return _source_of(record, data, profile, project)
    known = _known_id(data, image)
    where = where_built(data, known) if known else None
    if where is not None and not (profile and project):
        return LayerSource(image=known, profile=profile or where.get("profile", ""),
                           project=project or where.get("project", ""),
                           context=where.get("context", ""))
    if known and saved_report(data, known) is not None and not profile:
        return LayerSource(image=known, profile=engine.config.default_profile)
    return LayerSource(image=image, profile=profile or engine.config.default_profile,
                       project=project or project_name(Path.cwd()), context=str(Path.cwd()))


def read_layers(engine: Engine, source: LayerSource) -> LayerReport:
    """The report of ``source``: the kept one when there is (an image id never changes its
    layers), else read from its store, then kept. Raises LayersError."""
    from tui.engine.planner import PlanError, make_plan, project_name

    data = data_dir().resolve()
    if _HEX64.fullmatch(source.image):
        kept = saved_report(data, source.image)
        if kept is not None:
            return kept
    try:
        profile = engine.profiles.get(source.profile)
    except ValueError as exc:
        raise LayersError(str(exc)) from exc
    if profile.store == "fresh":
        raise LayersError(f"profile {profile.name}'s store is removed with its build, and no "
                          f"report of {source.image[:19]}'s layers was kept (buildcage keeps "
                          f"one for each build it runs from now on): build it again")
    if profile.userns != "host":
        raise LayersError(f"profile {profile.name} runs its builder in a user namespace of its "
                          f"own, which a later container cannot share, and no report of "
                          f"{source.image[:19]}'s layers was kept: build it again")
    where = where_built(data, source.image) if not source.project else None
    project = source.project or (where or {}).get("project") \
        or project_name(Path(source.context or Path.cwd()))
    with tempfile.TemporaryDirectory(prefix="buildcage-layers-") as ctx:
        # A plan only for its store mounts: nothing is built, and the reader runs nothing from
        # a Containerfile (so no profile confirmation is asked for, as for a build).
        (Path(ctx) / "Containerfile").write_text("FROM scratch\n")
        try:
            plan = make_plan(ctx, config=engine.config, profile=profile.name, project=project,
                             confirmed=True, snapshot=False, remote=engine.remote)
        except PlanError as exc:
            raise LayersError(str(exc)) from exc
    report = read_from_store(engine.client(), plan, source.image)
    with contextlib.suppress(LayersError, OSError):
        save_report(data, report)
    return report
