"""``buildcage layers``' human output: each layer with the instruction that made it, its size,
what it added, changed and removed as a tree (largest first), then dive's measures. Every name
and instruction comes from the image (hostile) and is shown through ``shown_path``."""

from __future__ import annotations

from collections.abc import Iterator

from tui.engine.layers import (
    Layer,
    LayerReport,
    TreeNode,
    WasteLimit,
    change_tree,
    shown_path,
)
from tui.engine.layers import human_size as size

MARKS = {"added": "+", "changed": "~", "removed": "-", None: " "}
INSTRUCTION_WIDTH = 200


def percent(value: float) -> str:
    return f"{value:.2f}%" if value != float("inf") else "∞%"


def summary(report: LayerReport) -> list[str]:
    count = len(report.layers)
    read = f" · read from {report.source}" if report.source else ""
    lines = [f"image {report.image_id[:12]} · {count} layer{'s' * (count != 1)} · "
             f"{size(report.total_size)}{read}"]
    lines.append(f"efficiency {percent(100 * report.efficiency)} · wasted "
                 f"{size(report.wasted_bytes)}, {percent(report.wasted_percent)} of the "
                 f"{size(report.user_size)} the layers above the first add")
    return lines


def counts(layer: Layer) -> str:
    parts = []
    for kind, (number, total) in layer.counts.items():
        parts.append(f"{MARKS[kind]}{number} {kind}" + (f" {size(total)}" if number else ""))
    return " · ".join(parts)


def instruction(layer: Layer) -> str:
    text = shown_path(layer.instruction)
    return text if len(text) <= INSTRUCTION_WIDTH else text[:INSTRUCTION_WIDTH - 1] + "…"


def tree_lines(root: TreeNode) -> Iterator[str]:
    """Depth first, each level largest first (as ``change_tree`` orders it), indented."""
    todo = [(child, 0) for child in reversed(root.children)]
    while todo:
        node, depth = todo.pop()
        name = shown_path(node.name) + ("/" if node.is_dir else "")
        yield f"{size(node.size):>9}  {'  ' * depth}{MARKS[node.kind]} {name}"
        todo.extend((child, depth + 1) for child in reversed(node.children))


def print_report(report: LayerReport, limit: int | None = 20) -> None:
    """``limit``: tree lines per layer (None: all of them)."""
    for line in summary(report):
        print(line)
    for layer in report.layers:
        print()
        print(f"layer {layer.index}  {size(layer.size)}  {instruction(layer)}")
        if layer.folded:
            print(f"{'':9}with: " + "; ".join(shown_path(f) for f in layer.folded))
        print(f"{'':9}{counts(layer)}")
        lines = list(tree_lines(change_tree(layer)))
        shown = lines if limit is None else lines[:limit]
        for line in shown:
            print(line)
        if len(shown) < len(lines):
            print(f"{'':9}… {len(lines) - len(shown)} more lines (--all shows them)")
    if report.inefficiencies:
        print()
        print("wasted (paths in two or more layers), largest first:")
        for waste in report.inefficiencies[:limit]:
            print(f"{size(waste.size):>9}  {waste.count} copies  {shown_path(waste.path)}")


def waste_message(report: LayerReport, limit: WasteLimit) -> str:
    return (f"{report.wasted_bytes} bytes wasted ({percent(report.wasted_percent)} of the "
            f"{report.user_size} bytes the layers above the first add): over --max-waste "
            f"{limit.describe()}")
