"""What each step is keyed on, read on the host: build arguments a RUN sees, the context files a
COPY/ADD reads (ignore file applied, links never followed, nothing blocks)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from tui.engine.cache_inputs import read_inputs, secret_digest
from tui.engine.config import Config
from tui.engine.planner import make_plan

KEY = b"k" * 32


@pytest.fixture(autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


def inputs(ctx: Path, text: str, **options):
    (ctx / "Containerfile").write_text(text)
    plan = make_plan(ctx, config=Config(), profile="project", **options)
    return read_inputs(plan, KEY)


def test_a_run_sees_the_arguments_declared_before_it_with_a_value(tmp_path: Path) -> None:
    found = inputs(tmp_path, "ARG G=global\nARG H\nFROM scratch\nARG G\nARG A=1\nARG B\n"
                   "ARG H\nRUN x\nARG C=3\nRUN y\nFROM scratch\nRUN z\n",
                   build_args=(("B", "given"), ("C", "over"), ("HTTP_PROXY", "p")))
    run_x, run_y = found.step(1, 6), found.step(1, 8)
    # G: the global default, redeclared; H: declared, no value anywhere: not seen (as Buildah
    # leaves it out of the RUN's history); the proxy variables need no ARG.
    assert run_x.args == {"HTTP_PROXY": "p", "G": "global", "A": "1", "B": "given"}
    assert run_y.args == {**run_x.args, "C": "over"}
    assert found.step(2, 2).args == {"HTTP_PROXY": "p"}  # a new stage declares anew


def test_a_secret_looking_argument_is_kept_as_an_hmac(tmp_path: Path) -> None:
    found = inputs(tmp_path, "FROM scratch\nARG API_TOKEN\nRUN x\n",
                   build_args=(("API_TOKEN", "s3cr3t"),))
    step = found.step(1, 3)
    assert step.args == {"API_TOKEN": secret_digest(KEY, "API_TOKEN", "s3cr3t")}
    assert step.secret_args == {"API_TOKEN"}
    assert "s3cr3t" not in repr(found)


def test_a_copied_directory_lists_its_contents_without_ignored_files(tmp_path: Path) -> None:
    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "app" / "sub" / "x.log").write_text("log\n")
    (tmp_path / "app" / "sub" / "keep.log").write_text("keep\n")
    (tmp_path / ".containerignore").write_text("app/sub/*.log\n!app/sub/keep.log\n")
    found = inputs(tmp_path, "FROM scratch\nCOPY app /app\nCOPY --from=x /a /b\n")
    copy = found.step(1, 2)
    assert sorted(copy.files) == ["app/main.py", "app/sub", "app/sub/keep.log"]
    assert copy.files["app/main.py"].digest == hashlib.sha256(b"print(1)\n").hexdigest()
    assert found.step(1, 3).files is None and found.step(1, 3).copy_from == "x"


def test_sources_are_globbed_and_kept_inside_the_context(tmp_path: Path) -> None:
    (tmp_path / "a1.txt").write_text("1")
    (tmp_path / "a2.txt").write_text("2")
    (tmp_path / "b.txt").write_text("b")
    found = inputs(tmp_path, "FROM scratch\nCOPY a*.txt ../../b.txt /dst/\n")
    assert sorted(found.step(1, 2).files) == ["a1.txt", "a2.txt", "b.txt"]


def test_links_are_recorded_not_followed_and_a_fifo_never_blocks(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "out").symlink_to("/etc")
    (tmp_path / "d" / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "d" / "pipe")
    files = inputs(tmp_path, "FROM scratch\nCOPY d /d\n").step(1, 2).files
    assert files["d/out"].kind == "l" and files["d/out"].digest == "/etc"
    assert files["d/passwd"].kind == "l"
    assert files["d/pipe"].kind == "o"
    assert not any(path.startswith("d/out/") for path in files)


def test_a_source_through_a_link_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    step = inputs(tmp_path, "FROM scratch\nCOPY link/passwd /x\n").step(1, 2)
    assert step.files is None and "link" in step.files_note


def test_a_link_named_as_a_source_is_not_read(tmp_path: Path) -> None:
    """Buildah copies what a source that is itself a link points to (measured: ``COPY link /x``
    made /x a file with the target's content, and a change of the target was a cache miss);
    the host, which never follows a link, cannot say what that is. A link inside a copied
    directory is copied as a link: its target's text is what counts."""
    (tmp_path / "target.txt").write_text("one\n")
    (tmp_path / "link").symlink_to("target.txt")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inner").symlink_to("../target.txt")
    found = inputs(tmp_path, "FROM scratch\nCOPY link /x\nCOPY d /d\nCOPY l* /y/\n")
    assert found.step(1, 2).files is None and "link" in found.step(1, 2).files_note
    assert found.step(1, 3).files is not None and found.step(1, 3).files["d/inner"].kind == "l"
    assert found.step(1, 4).files is None  # a glob's match is a source too


FAR = 10**20
"""A reading clock far after any file's times: nothing is "racy" (see RACY_NS)."""


def test_an_unchanged_file_keeps_its_digest_without_being_read(tmp_path: Path) -> None:
    (tmp_path / "big").write_text("content")
    (tmp_path / "Containerfile").write_text("FROM scratch\nCOPY big /big\n")
    plan = make_plan(tmp_path, config=Config(), profile="project")
    first = read_inputs(plan, KEY, now_ns=FAR).step(1, 2).files
    assert first is not None
    # An earlier record with the same size, times and inode but another digest: taken as it
    # is, which shows the file was not read again...
    marked = {"big": dataclasses.replace(first["big"], digest="from-the-record")}
    assert read_inputs(plan, KEY, marked, now_ns=FAR).step(1, 2).files["big"].digest == \
        "from-the-record"
    (tmp_path / "big").write_text("changed")
    # ...and a file written since is read again.
    changed = read_inputs(plan, KEY, marked, now_ns=FAR).step(1, 2).files["big"].digest
    assert changed == hashlib.sha256(b"changed").hexdigest()


def test_a_file_changed_just_before_it_was_read_is_read_again_next_time(tmp_path: Path) -> None:
    """The kernel stamps a file's times from a clock that moves in ticks: a write in the same
    tick as the read, after it, leaves size, times and inode as they were. An entry whose
    times are that close to its reading keeps no ctime, so no later build trusts its digest
    (git's "racy clean" rule)."""
    (tmp_path / "f").write_text("one")
    (tmp_path / "Containerfile").write_text("FROM scratch\nCOPY f /f\n")
    plan = make_plan(tmp_path, config=Config(), profile="project")
    changed_at = os.stat(tmp_path / "f").st_ctime_ns
    racy = read_inputs(plan, KEY, now_ns=changed_at + 1_000_000).step(1, 2).files["f"]
    settled = read_inputs(plan, KEY, now_ns=changed_at + 3 * 10**9).step(1, 2).files["f"]
    assert racy.ctime_ns == 0 and settled.ctime_ns == changed_at
    # The write that came in the same tick: same size, same times, another content.
    forged = {"f": dataclasses.replace(racy, digest="the-content-before")}
    again = read_inputs(plan, KEY, forged, now_ns=FAR).step(1, 2).files["f"]
    assert again.digest == hashlib.sha256(b"one").hexdigest()


def test_add_from_a_url_and_an_unfollowed_variable_are_noted(tmp_path: Path) -> None:
    found = inputs(tmp_path, "FROM scratch\nADD https://example.invalid/x /x\n"
                   "ENV D=x\nCOPY $D /y\n")
    assert found.step(1, 2).files is None and "URL" in found.step(1, 2).files_note
    assert found.step(1, 4).files is None and "variable" in found.step(1, 4).files_note


def test_stages_know_their_bases(tmp_path: Path) -> None:
    found = inputs(tmp_path, "ARG BASE=reg/x:1\nFROM $BASE AS build\nFROM build\nFROM scratch\n")
    assert [(s.base_ref, s.base_stage) for s in found.stages] == [
        ("reg/x:1", None), ("", 1), ("", None)]
    assert found.stage_index("build") == 1 and found.stage_index("1") == 2


def test_an_unreadable_containerfile_is_a_note_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    plan = make_plan(tmp_path, config=Config(), profile="project")
    (tmp_path / "Containerfile").write_bytes(b"FROM \xff\n")
    assert "could not be read" in read_inputs(plan, KEY).note


def test_owners_count_unless_the_builder_reads_a_snapshot(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.chown(tmp_path / "f", 1234, 1234)
    (tmp_path / "Containerfile").write_text("FROM scratch\nCOPY f /f\n")
    direct = make_plan(tmp_path, config=Config(), profile="project", snapshot=False)
    copied = make_plan(tmp_path, config=Config(), profile="project", snapshot=True)
    assert read_inputs(direct, KEY).step(1, 2).files["f"].uid == 1234
    # A snapshot's copies belong to the builder's root whoever owns the originals.
    assert read_inputs(copied, KEY).step(1, 2).files["f"].uid == 0


def test_a_directory_that_cannot_be_read_is_not_listed_as_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads every directory here: the refusal a user without rights (or root-squashed
    NFS) meets is given by a stand-in for ``os.open``."""
    (tmp_path / "d" / "closed").mkdir(parents=True)
    (tmp_path / "d" / "closed" / "f").write_text("x")
    real_open = os.open

    def refusing(path, flags, mode=0o777, *, dir_fd=None):
        if path == "closed":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", refusing)
    step = inputs(tmp_path, "FROM scratch\nCOPY d /d\n").step(1, 2)
    assert step.files is None and "cannot be read" in step.files_note
