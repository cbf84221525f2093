"""A directory picker for the build context: directories only, ◆ marks those with a Containerfile
(or Dockerfile)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.widgets import DirectoryTree
from textual.widgets._directory_tree import DirEntry
from textual.widgets._tree import TreeNode

from tui.engine.containerfile import find_containerfile

MARK = " ◆"


class ContextTree(DirectoryTree):
    COMPONENT_CLASSES = DirectoryTree.COMPONENT_CLASSES | {"context-tree--buildable"}

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        root = Path(path).expanduser().resolve()
        # The root's label is its name only: the full path says little and changes per machine.
        self.root.set_label(root.name or str(root))
        self.buildable: dict[Path, bool] = {root: find_containerfile(root) is not None}
        """Which directories hold a Containerfile; filled while the tree loads (in its thread)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        kept = []
        for path in paths:
            if path.name.startswith(".") or not self._safe_is_dir(path):
                continue
            self.buildable[path.resolve()] = find_containerfile(path) is not None
            kept.append(path)
        return kept

    def is_buildable(self, path: Path) -> bool:
        return self.buildable.get(path.resolve(), False)

    def render_label(self, node: TreeNode[DirEntry], base_style: Style, style: Style) -> Text:
        label = super().render_label(node, base_style, style)
        if node.data is not None and self.is_mounted and self.is_buildable(node.data.path):
            label.append(MARK, self.get_component_rich_style("context-tree--buildable",
                                                              partial=True))
        return label
