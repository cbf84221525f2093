"""What each layer of an image holds, and how much of it is waste: from the layers' tar headers
only (``tui.engine.tar_headers``), never their contents.

For each layer: the instruction that made it, its size, and the paths it added, changed and
removed. A path is *added* when no layer below has it, *changed* when one does (the headers do
not say whether the bytes differ: a file written again with the same bytes counts as changed,
where dive, which hashes contents, would call it unmodified), *removed* by a whiteout
(``.wh.NAME``) or hidden by an opaque directory (``.wh..wh..opq``), sized by what it held below.
A directory that is only touched (its entry is in the layer because something in it changed) is
no change of its own.

The efficiency measures follow dive (github.com/wagoodman/dive, ``dive/filetree/efficiency.go``
and ``dive/image/analysis.go``, read at commit d6c6919), exactly:

- every layer is a tree of its entries; each *leaf* (a node without children in that layer:
  files, links, empty directories, whiteouts) is one copy of its path. A whiteout's copy weighs
  0 bytes when it removes a file, and everything below it when it removes a directory;
- a path's *cumulative size* is the sum over its copies, its *minimum* the smallest copy;
- **wasted bytes** are the cumulative sizes of every path with two or more copies (so a file
  written twice wastes both copies, a file added and then deleted wastes what it had);
- **efficiency** is the sum of minimums over the sum of cumulative sizes (1.0 when both are 0);
- a layer's size is the sum of its entries' sizes; the **user size** is the size of every layer
  but the first (dive takes the first as the base image), and the **wasted percent** is wasted
  bytes over user size.

One difference: dive ignores opaque markers even when it stacks layers; buildcage applies them
(the paths an opaque directory hides are removed), which only changes a later whiteout's weight.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tui.engine.errors import UserError
from tui.engine.planner import secret_looking_args
from tui.engine.tar_headers import DIRECTORY, TarHeader
from tui.engine.text import visible

ChangeKind = Literal["added", "changed", "removed"]
KINDS: tuple[ChangeKind, ...] = ("added", "changed", "removed")
MAX_WASTES = 1000
"""Paths kept in a report's waste list (largest first); the total counts every one."""
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"


@dataclass(frozen=True, slots=True)
class Entry:
    """One header of a layer's tar, read into the image's terms."""

    path: str
    """Absolute, normalised inside the image (``..`` cannot climb out of ``/``); a name's bytes
    that are not UTF-8 are kept as surrogate escapes (``shown_path`` writes them as ``\\xNN``)."""
    size: int
    is_dir: bool
    whiteout: bool = False
    """This entry removes ``path`` from the layers below."""
    opaque: bool = False
    """The directory ``path`` hides everything the layers below have in it."""


def entry_from_header(header: TarHeader) -> Entry | None:
    """The entry a tar header stands for; None for the image's root directory itself."""
    name = header.name.decode("utf-8", "surrogateescape")
    path = posixpath.normpath("/" + name.lstrip("/"))
    path = "/" + path.lstrip("/")  # normpath keeps a leading "//"
    if path == "/":
        return None
    parent, base = posixpath.split(path)
    if base == OPAQUE:
        return Entry(parent or "/", 0, True, opaque=True)
    if base.startswith(WHITEOUT):
        if base.startswith(WHITEOUT + WHITEOUT) or base == WHITEOUT:
            return None  # other AUFS metadata (hard-link directories), or a whiteout of nothing
        return Entry(posixpath.join(parent, base[len(WHITEOUT):]), 0, False, whiteout=True)
    return Entry(path, header.size, header.type == DIRECTORY)


def human_size(value: int) -> str:
    """``900 B``, ``2.0 kB``, ``1.5 MB``: decimal units with one decimal, as podman and dive
    print sizes (and as ``humanize.naturalsize`` does, without the dependency here)."""
    if value < 1000:
        return f"{value} B"
    amount = float(value)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        amount /= 1000
        if round(amount, 1) < 1000 or unit == "PB":
            return f"{amount:.1f} {unit}"
    raise AssertionError("unreachable")


_SURROGATE = re.compile("[\udc80-\udcff]")


def shown_path(path: str) -> str:
    """A path safe to print: control characters, bidi controls, newlines and tabs written out
    (``visible``), and bytes that were not UTF-8 as ``\\xNN``."""
    text = _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xdc00:02x}", path)
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: ChangeKind
    size: int
    """Added or changed: its size in this layer; removed: what it held in the layers below
    (a directory: everything in it)."""
    is_dir: bool = False


@dataclass(frozen=True)
class Layer:
    index: int
    digest: str
    """The layer's digest as stored (uncompressed: its diff id)."""
    instruction: str
    """The history entry that made it, as ``RUN ...``, ``COPY ...``; "(no history)" if none."""
    size: int
    """dive's layer size: the sum of its entries' sizes."""
    tar_size: int
    entries: int
    changes: tuple[Change, ...]
    folded: tuple[str, ...] = ()
    """Instructions recorded without a layer of their own just before this one (``ENV``...;
    under ``--layers=false``, as the isolated profile builds, every earlier step of the build:
    their files are in this layer)."""

    @property
    def counts(self) -> dict[ChangeKind, tuple[int, int]]:
        """Kind -> (how many, bytes); directories count only when removed."""
        out: dict[ChangeKind, tuple[int, int]] = {}
        for kind in KINDS:
            found = [c for c in self.changes if c.kind == kind and (kind == "removed"
                                                                    or not c.is_dir)]
            out[kind] = (len(found), sum(c.size for c in found))
        return out


@dataclass(frozen=True, slots=True)
class Waste:
    """A path with two or more copies in the image (dive's "inefficiency")."""

    path: str
    count: int
    size: int
    """Its cumulative size: every copy's bytes."""


@dataclass(frozen=True)
class LayerReport:
    image_id: str
    layers: tuple[Layer, ...]
    efficiency: float
    wasted_bytes: int
    user_size: int
    inefficiencies: tuple[Waste, ...] = ()
    """Largest first, at most ``MAX_WASTES``."""
    source: str = ""
    """Where the layers were read (which store, or the build's publish phase)."""

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def wasted_percent(self) -> float:
        """dive's ``userWastedPercent`` x 100: wasted bytes over the user size; 0 when both are
        0 (an image of one layer)."""
        if self.user_size == 0:
            return 0.0 if self.wasted_bytes == 0 else math.inf
        return 100.0 * self.wasted_bytes / self.user_size

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form, also how reports are saved (``layer_reader.save_report``)."""
        return {
            "image_id": self.image_id, "source": self.source,
            "efficiency": self.efficiency, "wasted_bytes": self.wasted_bytes,
            "user_size": self.user_size, "total_size": self.total_size,
            "wasted_percent": (self.wasted_percent if math.isfinite(self.wasted_percent)
                               else None),
            "inefficiencies": [{"path": w.path, "count": w.count, "size": w.size}
                               for w in self.inefficiencies],
            "layers": [{
                "index": layer.index, "digest": layer.digest,
                "instruction": layer.instruction, "folded": list(layer.folded),
                "size": layer.size, "tar_size": layer.tar_size, "entries": layer.entries,
                "counts": {k: {"count": n, "size": s} for k, (n, s) in layer.counts.items()},
                "changes": [{"path": c.path, "kind": c.kind, "size": c.size, "dir": c.is_dir}
                            for c in layer.changes],
            } for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerReport:
        """Raises KeyError, TypeError or ValueError on a document that is not a report."""
        layers = tuple(Layer(
            index=int(raw["index"]), digest=str(raw["digest"]),
            instruction=str(raw["instruction"]), folded=tuple(str(x) for x in raw["folded"]),
            size=int(raw["size"]), tar_size=int(raw["tar_size"]), entries=int(raw["entries"]),
            changes=tuple(Change(str(c["path"]), _kind(c["kind"]), int(c["size"]),
                                 bool(c["dir"])) for c in raw["changes"]),
        ) for raw in data["layers"])
        return cls(image_id=str(data["image_id"]), layers=layers,
                   efficiency=float(data["efficiency"]), wasted_bytes=int(data["wasted_bytes"]),
                   user_size=int(data["user_size"]), source=str(data.get("source", "")),
                   inefficiencies=tuple(Waste(str(w["path"]), int(w["count"]), int(w["size"]))
                                        for w in data["inefficiencies"]))


def _kind(value: object) -> ChangeKind:
    for kind in KINDS:
        if value == kind:
            return kind
    raise ValueError(f"not a change kind: {value!r}")


@dataclass
class LayerInput:
    """One layer to analyse: its digest, its entries (in tar order) and what made it."""

    digest: str
    entries: Sequence[Entry]
    instruction: str = "(no history)"
    folded: tuple[str, ...] = ()
    tar_size: int = 0


# -- the analysis ----------------------------------------------------------------------------------

class _Node:
    """A path in a tree of paths: the stack of the layers so far, or one layer's own tree."""

    __slots__ = ("children", "entry", "is_dir", "size")

    def __init__(self, is_dir: bool = True, size: int = 0, entry: Entry | None = None) -> None:
        self.children: dict[str, _Node] = {}
        self.is_dir = is_dir
        self.size = size
        self.entry = entry

    def total(self) -> int:
        """Its size and everything below it (iterative: paths may be absurdly deep)."""
        total, todo = 0, [self]
        while todo:
            node = todo.pop()
            total += node.size
            todo.extend(node.children.values())
        return total


def _parts(path: str) -> list[str]:
    """The names of a normalised absolute path (``Entry.path``): ``/a/b`` -> ``a``, ``b``."""
    return path[1:].split("/") if len(path) > 1 else []


def _find(root: _Node, path: str) -> _Node | None:
    node: _Node | None = root
    for name in _parts(path):
        node = node.children.get(name) if node is not None else None
    return node


def _parent(root: _Node, path: str) -> tuple[_Node, str]:
    """The directory holding ``path`` in the stack (made as needed) and ``path``'s name."""
    *dirs, name = _parts(path)
    node = root
    for part in dirs:
        child = node.children.get(part)
        if child is None or not child.is_dir:
            child = node.children[part] = _Node()
        node = child
    return node, name


def _layer_tree(entries: Iterable[Entry]) -> list[tuple[str, _Node]]:
    """dive's tree of one layer; returns its leaves as (path, node). A whiteout is a node of
    its own (``.wh.NAME``) whose path is the removed one; opaque markers are left out."""
    root = _Node()
    for entry in entries:
        if entry.opaque:
            _parent(root, entry.path.rstrip("/") + "/x")  # its directories, not the marker
            continue
        parent, name = _parent(root, entry.path)
        key = WHITEOUT + name if entry.whiteout else name
        node = parent.children.get(key)
        if node is None:
            parent.children[key] = _Node(entry.is_dir, entry.size, entry)
        else:  # an entry named twice: the later header wins, as when extracting
            node.is_dir, node.size, node.entry = entry.is_dir, entry.size, entry
    leaves: list[tuple[str, _Node]] = []
    todo: list[tuple[str, _Node]] = [("", root)]
    while todo:
        path, node = todo.pop()
        for name, child in node.children.items():
            shown = name[len(WHITEOUT):] if child.entry is not None and child.entry.whiteout \
                else name
            child_path = f"{path}/{shown}"
            if child.children:
                todo.append((child_path, child))
            else:
                leaves.append((child_path, child))
    return leaves


def _removed_under(lower: _Node, path: str, present: set[str]) -> list[Change]:
    """What an opaque directory at ``path`` hides: every path the layers below have in it that
    this layer does not have, at the top-most level."""
    out: list[Change] = []
    todo = [(path, lower)]
    while todo:
        where, node = todo.pop()
        for name, child in node.children.items():
            child_path = f"{where.rstrip('/')}/{name}"
            if child_path not in present:
                out.append(Change(child_path, "removed", child.total(), child.is_dir))
            elif child.is_dir:
                todo.append((child_path, child))
    return out


def _apply(stack: _Node, entries: Sequence[Entry]) -> list[Change]:
    """Classifies a layer's entries against the layers below (``stack``), then applies them.
    Whiteouts and opaque directories act on the layers below only (OCI image spec)."""
    changes: list[Change] = []
    present = {e.path for e in entries if not e.whiteout and not e.opaque}
    for entry in entries:
        below = _find(stack, entry.path)
        if entry.opaque:
            if below is not None and below.is_dir:
                changes += _removed_under(below, entry.path, present)
        elif entry.whiteout:
            changes.append(Change(entry.path, "removed", below.total() if below else 0,
                                  below.is_dir if below else False))
        elif below is None:
            changes.append(Change(entry.path, "added", entry.size, entry.is_dir))
        elif not entry.is_dir or not below.is_dir:
            changes.append(Change(entry.path, "changed", entry.size, entry.is_dir))
    for entry in entries:  # removals first: they concern the layers below
        if entry.opaque and entry.path == "/":
            stack.children = {}  # an opaque root hides every layer below
        elif entry.whiteout or entry.opaque:
            parent, name = _parent(stack, entry.path)
            if entry.whiteout:
                parent.children.pop(name, None)
            else:
                node = parent.children.get(name)
                if node is not None:
                    node.children = {}
    for entry in entries:
        if entry.whiteout or entry.opaque:
            continue
        parent, name = _parent(stack, entry.path)
        node = parent.children.get(name)
        if entry.is_dir and node is not None and node.is_dir:
            continue  # a directory touched, its contents kept
        parent.children[name] = _Node(entry.is_dir, 0 if entry.is_dir else entry.size)
    return changes


def analyze(image_id: str, inputs: Sequence[LayerInput], *, source: str = "") -> LayerReport:
    """The report of an image whose layers, bottom first, are ``inputs``."""
    stack = _Node()
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    copies: dict[str, int] = {}
    layers: list[Layer] = []
    for index, layer in enumerate(inputs):
        for path, node in _layer_tree(layer.entries):  # dive's measures, against the stack below
            if node.entry is not None and node.entry.whiteout:
                below = _find(stack, path)
                size = below.total() if below is not None and below.is_dir else 0
            else:
                size = node.size
            cumulative[path] = cumulative.get(path, 0) + size
            minimum[path] = min(minimum.get(path, size), size)
            copies[path] = copies.get(path, 0) + 1
        changes = _apply(stack, layer.entries)
        layers.append(Layer(index=index, digest=layer.digest, instruction=layer.instruction,
                            folded=layer.folded, size=sum(e.size for e in layer.entries),
                            tar_size=layer.tar_size, entries=len(layer.entries),
                            changes=tuple(changes)))
    total = sum(cumulative.values())
    efficiency = 1.0 if total == 0 else sum(minimum.values()) / total
    wastes = sorted((Waste(p, n, cumulative[p]) for p, n in copies.items() if n >= 2),
                    key=lambda w: (-w.size, w.path))
    return LayerReport(image_id=image_id, layers=tuple(layers), efficiency=efficiency,
                       wasted_bytes=sum(w.size for w in wastes),
                       user_size=sum(layer.size for layer in layers[1:]),
                       inefficiencies=tuple(wastes[:MAX_WASTES]), source=source)


# -- what made each layer --------------------------------------------------------------------------

_ARGS_PREFIX = re.compile(r"\|(\d+) ")
_ARG_NAME = re.compile(r"(?:^| )([A-Za-z_][A-Za-z0-9_]*)=")
_SHELL = " /bin/sh -c "
HIDDEN = "(secret: not shown)"


def hide_secret_args(created_by: str) -> str:
    """Buildah writes the build arguments a RUN saw into the image's history (``|2 A=1
    TOKEN=x /bin/sh -c ...``); the value of each one named like a secret
    (``planner.secret_looking_args``) is replaced by ``HIDDEN``, so a report kept under the
    data directory, the JSON and the screen never hold it. A value runs to the next ``NAME=``
    or to the command (``/bin/sh -c``, else the next space); when a value holds `` X=`` (more
    names than the count), everything after the first secret-looking name is hidden."""
    match = _ARGS_PREFIX.match(created_by)
    if match is None:
        return created_by
    start = match.end()
    shell = created_by.find(_SHELL, start)
    names = list(_ARG_NAME.finditer(created_by, start - 1,  # from the space before the first
                                    shell if shell >= 0 else len(created_by)))
    if not any(secret_looking_args(((m.group(1), ""),)) for m in names):
        return created_by
    if shell < 0:  # exec form: the last value ends at the next space
        last = names[-1].end()
        space = created_by.find(" ", last)
        shell = space if space >= 0 else len(created_by)
    # A value holds " X=" (which ones are values is then not known), or a count no history
    # holds (over 4300 digits int() raises): everything after the first secret name is hidden.
    if len(match.group(1)) > 6 or len(names) != int(match.group(1)):
        first = next(m for m in names if secret_looking_args(((m.group(1), ""),)))
        return created_by[:first.end()] + HIDDEN + created_by[shell:]
    out, pos = [created_by[:start]], start
    for index, name in enumerate(names):
        value_end = names[index + 1].start() if index + 1 < len(names) else shell
        out.append(created_by[pos:name.end()])
        secret = bool(secret_looking_args(((name.group(1), ""),)))
        out.append(HIDDEN if secret else created_by[name.end():value_end])
        pos = value_end
    out.append(created_by[pos:])
    return "".join(out)


def instruction_text(created_by: str) -> str:
    """``/bin/sh -c #(nop) COPY ...`` -> ``COPY ...``; ``/bin/sh -c CMD`` -> ``RUN CMD``;
    secret-looking build arguments' values hidden (``hide_secret_args``)."""
    text = hide_secret_args(created_by.strip())
    if "#(nop) " in text:
        return text.split("#(nop) ", 1)[1].strip()
    if text.startswith("/bin/sh -c "):
        return "RUN " + text[len("/bin/sh -c "):].strip()
    return text or "(no history)"


def instructions_for(history: object, count: int) -> list[tuple[str, tuple[str, ...]]]:
    """(instruction, folded) for each of ``count`` layers, from the image config's history:
    the n-th entry that is not an ``empty_layer`` made the n-th layer (as dive maps them); the
    empty ones just before it are folded into it."""
    entries = history if isinstance(history, list) else []
    out: list[tuple[str, tuple[str, ...]]] = []
    folded: list[str] = []
    for item in entries:
        if not isinstance(item, dict):
            continue
        text = instruction_text(str(item.get("created_by", "")))
        if item.get("empty_layer"):
            folded.append(text)
            continue
        out.append((text, tuple(folded)))
        folded = []
        if len(out) == count:
            break
    out += [("(no history)", ())] * (count - len(out))
    return out


# -- the file tree of a layer ----------------------------------------------------------------------

class _Dir:
    """A path in a layer's change tree, with its bytes of each kind of change below it."""

    __slots__ = ("change", "children", "counts", "sizes", "sorted")

    def __init__(self) -> None:
        self.children: dict[str, _Dir] = {}
        self.change: Change | None = None
        self.sizes = [0, 0, 0]
        """Bytes of added, changed, removed changes at and below this path."""
        self.counts = [0, 0, 0]
        """How many added, changed, removed changes are at and below this path."""
        self.sorted: dict[frozenset[ChangeKind], tuple[TreeNode, ...]] = {}


@dataclass(frozen=True)
class TreeNode:
    name: str
    path: str
    size: int
    """The change's size, or for a directory holding changes, the sum of theirs."""
    kind: ChangeKind | None = None
    """None: a directory shown only because changes are inside it."""
    is_dir: bool = False
    kinds: frozenset[ChangeKind] = field(default=frozenset(KINDS), repr=False, compare=False)
    node: _Dir | None = field(default=None, repr=False, compare=False)

    @property
    def children(self) -> tuple[TreeNode, ...]:
        """Largest first, then by name; made when first asked (a layer may hold a hundred
        thousand paths, and a tree is drawn a level at a time)."""
        node = self.node
        if node is None:
            return ()
        found = node.sorted.get(self.kinds)
        if found is None:
            found = tuple(sorted((_tree_node(name, f"{self.path.rstrip('/')}/{name}", child,
                                             self.kinds)
                                  for name, child in node.children.items()
                                  if _weight(child, self.kinds) is not None),
                                 key=lambda t: (-t.size, t.name)))
            node.sorted[self.kinds] = found
        return found


def _weight(node: _Dir, kinds: frozenset[ChangeKind]) -> int | None:
    """Its bytes of ``kinds``, or None when no change of those kinds is at or below it."""
    wanted = [i for i, kind in enumerate(KINDS) if kind in kinds]
    if not any(node.counts[i] for i in wanted):
        return None
    return sum(node.sizes[i] for i in wanted)


def _tree_node(name: str, path: str, node: _Dir, kinds: frozenset[ChangeKind]) -> TreeNode:
    change = node.change
    kind = change.kind if change is not None and change.kind in kinds else None
    return TreeNode(name=name, path=path, size=_weight(node, kinds) or 0, kind=kind,
                    is_dir=bool(node.children) or (change is not None and change.is_dir),
                    kinds=kinds, node=node)


class ChangeIndex:
    """A layer's changes as a tree of paths, made once; ``tree(kinds)`` views it with only
    those kinds, each level largest first. Iterative throughout: paths may be absurdly deep."""

    def __init__(self, layer: Layer) -> None:
        self.root = _Dir()
        for change in layer.changes:
            node = self.root
            for part in _parts(change.path):
                child = node.children.get(part)
                if child is None:
                    child = node.children[part] = _Dir()
                node = child
            node.change = change
        # Sizes below each path, children before parents (an explicit post-order walk).
        order: list[_Dir] = []
        todo = [self.root]
        while todo:
            node = todo.pop()
            order.append(node)
            todo.extend(node.children.values())
        for node in reversed(order):
            own = node.change
            if own is not None:
                kind = KINDS.index(own.kind)
                node.counts[kind] += 1
                if not own.is_dir or own.kind == "removed":
                    node.sizes[kind] += own.size
            for child in node.children.values():
                for i in range(3):
                    node.sizes[i] += child.sizes[i]
                    node.counts[i] += child.counts[i]

    def tree(self, kinds: Iterable[ChangeKind] = KINDS) -> TreeNode:
        wanted = frozenset(kinds)
        return TreeNode(name="/", path="/", size=_weight(self.root, wanted) or 0,
                        is_dir=True, kinds=wanted, node=self.root)


def change_tree(layer: Layer, kinds: Iterable[ChangeKind] = KINDS) -> TreeNode:
    """The layer's changes of ``kinds`` as a tree of paths, each level largest first (then by
    name); sizes of directories add up what changed inside them."""
    return ChangeIndex(layer).tree(kinds)


# -- the CI gate -----------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}
_LIMIT = re.compile(r"(\d+(?:\.\d+)?)(%|[A-Za-z]*)")


@dataclass(frozen=True)
class WasteLimit:
    """``--max-waste``: bytes, or percent of the user size (dive's highestUserWastedPercent)."""

    value: float
    percent: bool

    def exceeded(self, *, wasted_bytes: int, wasted_percent: float) -> bool:
        if self.percent:
            return wasted_percent > self.value
        return wasted_bytes > self.value

    def describe(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)} bytes"


def parse_max_waste(text: str) -> WasteLimit:
    """``6000``, ``6kB``, ``1.5MiB`` (bytes) or ``10%``; raises UserError otherwise."""
    match = _LIMIT.fullmatch(text.strip())
    unit = match.group(2).lower() if match else ""
    if match is None or (unit != "%" and unit not in _UNITS):
        raise UserError(f"--max-waste {text!r}: give bytes (6000, 6kB, 1.5MiB) or a percent of "
                        f"what the build added (10%)")
    value = float(match.group(1))
    if unit == "%":
        if value > 100:
            raise UserError(f"--max-waste {text!r}: a percent is at most 100%")
        return WasteLimit(value, True)
    return WasteLimit(value * _UNITS[unit], False)
