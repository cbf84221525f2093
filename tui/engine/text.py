"""Making build-derived text safe to show on a terminal.

A RUN step, a Containerfile or a registry's answer can hold terminal escape sequences (``ESC ]0;
title BEL`` retitles the terminal, ``ESC [2J`` wipes it) or Unicode bidi overrides that make text
read differently from what it is. Every place that shows such text (the TUI, the human CLI
output, error messages) passes it through ``visible`` first; it is pure and cheap on clean text.
"""

from __future__ import annotations

import re

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Arabic letter mark, LRM, RLM, the embeddings/overrides U+202A-202E and isolates U+2066-2069."""

_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + BIDI + "]"  # C0 (not tab, LF, CR), DEL, C1, bidi
    "|\r(?!\n)"  # a CR that does not end a line: it returns the cursor to overwrite the line
)


def _show(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character except tab and newline (and CR before LF) written
    out as ``\\xNN`` (ESC becomes ``\\x1b``, C1 controls ``\\x9b``, DEL ``\\x7f``, a lone CR
    ``\\x0d``) and every bidi control as ``\\uNNNN``; clean text comes back unchanged."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_show, text)


def visible_lines(lines: list[str]) -> list[str]:
    """``visible`` of each line; one regex scan for a clean batch (the build log's case)."""
    if _UNSAFE.search("\t".join(lines)) is None:  # tab: a CR ending a line stays lone
        return lines
    return [visible(line) for line in lines]
