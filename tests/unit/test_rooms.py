"""Who may import whom (ARCHITECTURE.md): arrows point down, from the front ends to the engine.

engine <- state <- widgets <- screens <- app; the CLI uses engine and state only. Screens ask the
app for things with messages (tui.messages), never by calling its methods by name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"^\s*(?:from|import) (tui(?:\.\w+)*)", re.MULTILINE)

ALLOWED = {
    "engine": ("tui.engine",),
    "state": ("tui.engine", "tui.state"),
    "widgets": ("tui.engine", "tui.state", "tui.widgets"),
    "screens": ("tui.engine", "tui.state", "tui.widgets", "tui.screens", "tui.messages",
                "tui.services", "tui.batching", "tui.styles_path", "tui.app"),
}


def imports(path: Path) -> list[str]:
    return IMPORT.findall(path.read_text())


def test_each_room_imports_only_the_rooms_below_it() -> None:
    for room, allowed in ALLOWED.items():
        for path in (ROOT / "tui" / room).glob("*.py"):
            for name in imports(path):
                assert name.startswith(allowed), f"{path.relative_to(ROOT)} imports {name}"


def test_screens_import_the_app_for_typing_only() -> None:
    for path in (ROOT / "tui" / "screens").glob("*.py"):
        text = path.read_text()
        if "tui.app" in text:
            assert "if TYPE_CHECKING:\n    from tui.app import" in text, path


def test_the_screens_directory_holds_screens_only() -> None:
    for path in (ROOT / "tui" / "screens").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert re.search(r"^class \w+\((\w*Screen|Dialog)\[", path.read_text(), re.MULTILINE), path


def test_screens_ask_the_app_with_messages_not_method_calls() -> None:
    for path in (ROOT / "tui" / "screens").glob("*.py"):
        text = path.read_text()
        assert "type: ignore" not in text, path
        assert not re.search(r"self\.app\.(start_build|open_compare)\(", text), path
    assert "session.action_compare(" not in (ROOT / "tui" / "app.py").read_text()


def test_the_cli_uses_engine_and_state_only() -> None:
    for name in ("cli.py", "cli_output.py", "cli_layers.py"):
        for imported in imports(ROOT / "tui" / name):
            assert imported.startswith(("tui.engine", "tui.state", "tui.cli", "tui.interrupts",
                                        "tui.app")), (name, imported)
