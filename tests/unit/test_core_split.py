"""Import contracts: the core never imports Textual (the engine and the headless CLI load without
it), the layers import downwards only (engine <- widgets <- screens <- app), and the modules of
tui/ import each other without a cycle.

The imports are read with ``ast`` rather than checked by import-linter: the contracts are a few
lines of code here, and a new test dependency (pinned, in constraints.txt) would buy nothing the
standard library does not do."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tui.engine
import tui.state

ROOT = Path(__file__).resolve().parents[2]
TUI = ROOT / "tui"


# -- reading the imports ----------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tui_modules() -> dict[str, Path]:
    """Every module of the tui package (styles/ holds no Python), by dotted name."""
    return {module_name(path): path for path in sorted(TUI.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement loads: ``from a import b`` loads ``a.b`` when that
    is a module, else ``a`` (resolved against the known tui modules by the caller)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:  # relative: resolved against this module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    yield base
    for alias in node.names:
        yield f"{base}.{alias.name}"


def imports(path: Path, *, runtime_module_level: bool) -> set[str]:
    """What ``path`` imports. Everything anywhere in the file by default (a lazy import inside
    a function still ties the layers together); with ``runtime_module_level``, only what runs
    when the module is imported: not function bodies, not ``if TYPE_CHECKING:`` blocks."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_imported(node, module, is_package))
            elif not runtime_module_level:
                for child in ast.walk(node):
                    if isinstance(child, ast.Import | ast.ImportFrom):
                        found.update(_imported(child, module, is_package))
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try | ast.TryStar):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):  # a class body runs on import
                visit(node.body)
            # function bodies run later, when called

    visit(tree.body)
    return found


def _module_of(name: str, modules: dict[str, Path]) -> str:
    """The tui module a dotted name is in (``tui.x.Name`` is in tui.x); other names as given."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return name


def tui_imports(path: Path, modules: dict[str, Path], *, runtime_module_level: bool) -> set[str]:
    """The tui modules ``path`` imports: ``from tui.x import Name`` counts as tui.x."""
    found = {_module_of(name, modules)
             for name in imports(path, runtime_module_level=runtime_module_level)}
    return (found & modules.keys()) - {module_name(path)}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# -- (a), (b): the layers -------------------------------------------------------------------

# Which modules may not import which: the engine is the core, free of the UI; widgets are
# shown by screens, never the other way round.
FORBIDDEN = {
    "tui.engine": ("textual", "tui.state", "tui.screens", "tui.widgets", "tui.app", "tui.cli"),
    "tui.state": ("textual", "tui.screens", "tui.widgets", "tui.app", "tui.cli"),
    "tui.widgets": ("tui.screens", "tui.app"),
}

# Known violations, by the module imported, each to be gone soon. The test fails when one is no
# longer needed, so the allowance is removed with the violation (as a strict xfail would be).
ALLOWED: set[str] = set()


def layer_violations() -> list[tuple[str, str]]:
    """(importer, imported) for every import FORBIDDEN names, anywhere in the importer."""
    modules = tui_modules()
    found = []
    for name, path in modules.items():
        for layer, banned in FORBIDDEN.items():
            if not _under(name, layer):
                continue
            for imported in imports(path, runtime_module_level=False):
                imported = _module_of(imported, modules)
                if any(_under(imported, prefix) for prefix in banned):
                    found.append((name, imported))
    return sorted(set(found))


def test_the_import_reader_sees_lazy_relative_and_type_checking_imports(tmp_path, monkeypatch):
    package = tmp_path / "tui" / "pkg"
    package.mkdir(parents=True)
    (tmp_path / "tui" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    source = package / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import tui.a\n"
        "from . import sibling\n"
        "from ..other import Thing\n"
        "if TYPE_CHECKING:\n"
        "    import tui.hinted\n"
        "try:\n"
        "    import tui.tried\n"
        "except ImportError:\n"
        "    pass\n"
        "class C:\n"
        "    import tui.in_class\n"
        "def f():\n"
        "    import tui.lazy\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    runtime = imports(source, runtime_module_level=True)
    everything = imports(source, runtime_module_level=False)
    assert {"tui.a", "tui.pkg.sibling", "tui.other", "tui.other.Thing", "tui.tried",
            "tui.in_class"} <= runtime
    assert "tui.hinted" not in runtime and "tui.lazy" not in runtime
    assert {"tui.hinted", "tui.lazy"} <= everything


def test_the_layers_import_downwards_only():
    """(a) the engine imports neither Textual nor the UI; (b) widgets import no screen."""
    violations = layer_violations()
    unexpected = [(a, b) for a, b in violations if b not in ALLOWED]
    assert unexpected == [], "imports against the layers:\n" + "\n".join(
        f"{a} imports {b}" for a, b in unexpected)


def test_every_allowed_violation_still_exists():
    """An allowance outlives its violation by no more than one commit: remove it from ALLOWED."""
    still = {imported for _, imported in layer_violations()}
    assert ALLOWED - still == set(), "no longer imported against the layers: remove from ALLOWED"


def test_engine_and_state_sources_do_not_mention_textual():
    for path in [*(TUI / "engine").glob("*.py"), *(TUI / "state").glob("*.py")]:
        text = path.read_text()
        assert "import textual" not in text and "from textual" not in text, path


# -- (c): the headless front end loads without Textual ---------------------------------------

def _textual_loaded_by(modules: list[str]) -> str:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return out.stdout.strip()


def test_engine_and_cli_never_import_textual():
    modules = [f"tui.engine.{m.name}" for m in pkgutil.iter_modules(tui.engine.__path__)]
    modules += [f"tui.state.{m.name}" for m in pkgutil.iter_modules(tui.state.__path__)]
    modules += ["tui.state", "tui.cli", "tui.cli_output"]
    assert len(modules) > 15
    assert _textual_loaded_by(modules) == ""


@pytest.mark.parametrize("module", ["tui.cli", "tui.cli_output"])
def test_cli_alone_loads_without_textual(module):
    """Each on its own, in a fresh interpreter: nothing imported earlier hides what it loads."""
    assert _textual_loaded_by([module]) == ""


# -- (d): no import cycle --------------------------------------------------------------------

def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] when it has none."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_tui_modules_import_each_other_without_a_cycle():
    """Module-level imports only: an import inside a function, or under TYPE_CHECKING, runs
    after every module has loaded and is how a back reference is meant to be written."""
    modules = tui_modules()
    assert len(modules) > 40
    graph = {name: tui_imports(path, modules, runtime_module_level=True)
             for name, path in modules.items()}
    assert sum(len(edges) for edges in graph.values()) > 50  # the reader did find the imports
    cycle = find_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)
