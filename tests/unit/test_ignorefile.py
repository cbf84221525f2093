"""The ignore file matched as Buildah 1.28 matches it (imagebuilder's reader, containers/storage's
PatternMatcher.Matches, which its copier calls for every context path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui.engine.ignorefile import IgnoreFileError, IgnoreMatcher, parse_patterns, read_ignore


def matcher(text: str) -> IgnoreMatcher:
    return IgnoreMatcher(parse_patterns(text))


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    ("*.log", "a.log", True),
    ("*.log", "sub/a.log", False),  # * stops at /: only the context's top level
    ("**/*.log", "sub/deep/a.log", True),
    ("**/*.log", "a.log", True),
    ("build", "build/x/y.o", True),  # a directory's contents go with it
    ("build/x", "build/x/y/z", True),
    ("build/x", "build/y", False),
    ("/secret.txt", "secret.txt", True),  # / trimmed at both ends
    ("dir/", "dir/file", True),
    ("*\n!keep.log", "keep.log", False),  # the last pattern that matches decides
    ("*.log\n!keep.log\nkeep*", "keep.log", True),
    ("docs\n!docs/README", "docs/README", False),
    ("# a comment\nx", "# a comment", False),
    ("  spaced  ", "spaced", True),  # whitespace trimmed (after the / trim)
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[ab].txt", "b.txt", True),
    ("[^ab].txt", "c.txt", True),
    ("a.c", "abc", False),  # . is literal
    ("foo\\*", "foo*", True),
    ("./x/../y", "y", True),  # cleaned
    ("**", "any/thing", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("x\r", "x", True),  # CRLF files
    ("*.log", "x.log\n", False),  # Go's $ is the very end, its . no newline (review, s10)
    ("*", "a\nb", True),  # (a negated class takes a newline in both)
    ("secret.txt\x1f", "secret.txt", False),  # Go's TrimSpace keeps \x1c-\x1f
    ("secret.txt\xa0", "secret.txt", True),  # and trims what unicode.IsSpace says
])
def test_patterns_match_as_buildah_does(patterns: str, path: str, excluded: bool) -> None:
    assert matcher(patterns).excluded(path) is excluded


def test_the_context_itself_is_never_excluded() -> None:
    assert not matcher("*").excluded(".")
    assert not matcher("**").excluded("")


def test_a_lone_exclamation_mark_is_refused_as_buildah_refuses_it() -> None:
    with pytest.raises(IgnoreFileError, match="illegal exclusion"):
        parse_patterns("!\n")


def test_containerignore_wins_over_dockerignore(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a\n")
    assert read_ignore(tmp_path).excluded("a")
    (tmp_path / ".containerignore").write_text("b\n")
    found = read_ignore(tmp_path)
    assert found.source == ".containerignore"
    assert found.excluded("b") and not found.excluded("a")


def test_no_ignore_file_excludes_nothing(tmp_path: Path) -> None:
    assert not read_ignore(tmp_path).excluded("anything")


def test_an_ignore_file_that_is_a_link_or_a_fifo_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / ".containerignore").symlink_to("/etc/hostname")
    with pytest.raises(IgnoreFileError):
        read_ignore(tmp_path)
    (tmp_path / ".containerignore").unlink()
    os.mkfifo(tmp_path / ".containerignore")
    # Opened non-blocking: reading an empty FIFO gives nothing instead of waiting forever.
    assert read_ignore(tmp_path).patterns == []


@pytest.mark.parametrize(("patterns", "exact"), [
    ("*.log\nbuild/**\n!keep.log\nfoo\\*\na?c", True),
    ("[ab].txt", False), ("(a|b)", False), ("a+", False), ("x{2}", False),
    ("secret.txt\x1f", False),
    ("d/secret\\w.txt", False), ("a\\s", False)])  # ASCII in Go, Unicode in Python
def test_patterns_go_reads_otherwise_are_told(patterns: str, exact: bool) -> None:
    """What an unchanged build may trust (tui.engine.unchanged): only patterns that mean the
    same to Python's regular expressions as to Go's."""
    assert matcher(patterns).exact is exact
