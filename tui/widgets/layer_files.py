"""The files one layer added, changed and removed, as a tree with sizes, largest first.

Built lazily: a directory's children are added when it is expanded, at most ``MAX_CHILDREN``
of them (a layer of a hundred thousand files stays quick), and the tree opens by itself only
as far as ``OPEN_LINES`` lines. Names come from the image: every label is built as Text from
``shown_path`` (a ``str`` label would be read as Rich markup)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Tree
from textual.widgets._tree import TreeNode as UiNode

from tui.engine.layers import ChangeKind, TreeNode, shown_path
from tui.engine.layers import human_size as size

MARKS: dict[ChangeKind | None, str] = {"added": "+", "changed": "~", "removed": "-", None: " "}
MAX_CHILDREN = 500
OPEN_LINES = 60


class LayerFiles(Tree[TreeNode | None]):
    """``show(tree)``: a layer's changes (``ChangeIndex.tree``). A node's data is the engine's
    ``TreeNode`` (None: the "… N more" line)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = Tree.COMPONENT_CLASSES | {
        "layer-files--added", "layer-files--changed", "layer-files--removed",
        "layer-files--size"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("/", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self._filled: set[int] = set()
        """Ids of the nodes whose children were added."""

    def show(self, root: TreeNode | None) -> None:
        """Draws ``root``'s children (a layer's ``ChangeIndex.tree(kinds)``); None: nothing."""
        self.clear()
        self._filled = set()
        self.root.data = root
        if root is None:
            return
        self._fill(self.root)
        self._open()
        self.root.expand()
        self.move_cursor(self.root.children[0] if self.root.children else None)

    def _fill(self, node: UiNode[TreeNode | None]) -> None:
        data = node.data
        if data is None or node.id in self._filled:
            return
        self._filled.add(node.id)
        for child in data.children[:MAX_CHILDREN]:
            label = Text(shown_path(child.name))
            if child.children:
                node.add(label, child)
            else:
                node.add_leaf(label, child)
        hidden = len(data.children) - MAX_CHILDREN
        if hidden > 0:
            node.add_leaf(Text(f"… {hidden} more, smaller"), None)

    def _open(self) -> None:
        """Expands breadth first while the tree stays under ``OPEN_LINES`` lines."""
        lines = len(self.root.children)
        todo = list(self.root.children)
        while todo:
            node = todo.pop(0)
            if not node.allow_expand or node.data is None:
                continue
            more = min(len(node.data.children), MAX_CHILDREN + 1)
            if lines + more > OPEN_LINES:
                break
            self._fill(node)
            node.expand()
            lines += more
            todo.extend(node.children)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[TreeNode | None]) -> None:
        self._fill(event.node)

    def render_label(self, node: UiNode[TreeNode | None], base_style: Style,
                     style: Style) -> Text:
        data = node.data
        if data is None:
            label = Text(node.label) if isinstance(node.label, str) else node.label.copy()
            label.stylize(style)
            return Text.assemble((" " * 12, base_style), label)
        kind = self.get_component_rich_style(f"layer-files--{data.kind}", partial=True) \
            if data.kind else Style()
        label = Text.assemble(
            (f"{size(data.size):>9} ", self.get_component_rich_style("layer-files--size",
                                                                       partial=True)),
            (f"{MARKS[data.kind]} ", kind),
            (shown_path(data.name) + ("/" if data.is_dir else ""), kind),
        )
        label.stylize(style)
        if node.allow_expand:
            icon = self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE
        else:
            icon = "  "
        return Text.assemble((icon, base_style), label)
