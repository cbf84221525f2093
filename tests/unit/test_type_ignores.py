"""Every ``# type: ignore`` in tui/ names its error codes and says why, after it; every kept
blind ``except Exception`` says why in its ``# noqa: BLE001 - why``."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IGNORE = re.compile(r"#\s*type:\s*ignore\b")
# "# type: ignore[code, other-code]  # a reason in words"
EXPLAINED = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(?:,\s*[a-z-]+)*\]\s*#\s*\S.{9,}")


BLIND = re.compile(r"#\s*noqa:[^#]*\bBLE001\b")
# Wanted: the noqa's codes (BLE001, maybe others), then " - " and a reason in words.
BLIND_EXPLAINED = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:,\s*[A-Z]+[0-9]+)*\s+-\s+\S.{9,}")


def unexplained(source: str, pattern: re.Pattern[str] = IGNORE,
                explained: re.Pattern[str] = EXPLAINED) -> list[tuple[int, str]]:
    """(line, comment) of each comment matching ``pattern`` but not ``explained``: by default
    each ``type: ignore`` without codes or without a reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and pattern.search(token.string):
            if not explained.search(token.string):
                found.append((token.start[0], token.string))
    return found


def unexplained_blind_excepts(source: str) -> list[tuple[int, str]]:
    return unexplained(source, BLIND, BLIND_EXPLAINED)


def test_the_check_tells_explained_from_bare_ignores():
    assert unexplained("x = f()  # type: ignore\n")
    assert unexplained("x = f()  # type: ignore[arg-type]\n")
    assert unexplained("x = f()  # type: ignore[arg-type]  #\n")
    assert unexplained("x = f()  # type: ignore  # Textual's Widget.__init__ is untyped\n")
    assert not unexplained("x = f()  # type: ignore[arg-type]  # Textual's Widget takes **kwargs\n")
    assert not unexplained("x = f()  # type: ignore[valid-type, misc]  # a parameter as base\n")
    assert not unexplained('x = "# type: ignore"\n')  # a string, not a comment


def test_every_type_ignore_in_tui_names_its_code_and_reason():
    files = sorted((ROOT / "tui").rglob("*.py"))
    assert len(files) > 40
    bad = [f"{path.relative_to(ROOT)}:{line}: {comment}"
           for path in files for line, comment in unexplained(path.read_text())]
    assert bad == [], "say which error and why: # type: ignore[code]  # reason\n" + "\n".join(bad)


def test_the_check_tells_explained_from_bare_blind_excepts():
    assert unexplained_blind_excepts("except Exception:  # noqa: BLE001\n")
    assert unexplained_blind_excepts("except Exception:  # noqa: BLE001 -\n")
    assert unexplained_blind_excepts("except Exception:  # noqa: BLE001, S110\n")
    assert not unexplained_blind_excepts("except Exception:  # noqa: BLE001 - podman gone: say\n")
    assert not unexplained_blind_excepts(
        "except Exception:  # noqa: BLE001, S110 - an abandoned upload expires by itself\n")


def test_every_blind_except_in_tui_says_why():
    bad = [f"{path.relative_to(ROOT)}:{line}: {comment}"
           for path in sorted((ROOT / "tui").rglob("*.py"))
           for line, comment in unexplained_blind_excepts(path.read_text())]
    assert bad == [], "say why it is kept: # noqa: BLE001 - reason\n" + "\n".join(bad)
