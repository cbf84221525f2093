"""The context snapshot: a faithful copy of what is inside the context, nothing from outside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.context import copy_tree, make_snapshot, remove_snapshot
from tui.engine.planner import make_plan
from tui.engine.stores import prepare, release

pytestmark = pytest.mark.usefixtures("data_home")


@pytest.fixture
def context(tmp_path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(mode=0o700)
    os.chmod(ctx, 0o700)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    secret = ctx / "secret.txt"
    secret.write_text("private\n")
    secret.chmod(0o600)
    (ctx / "run.sh").write_text("#!/bin/sh\n")
    (ctx / "run.sh").chmod(0o755)
    sub = ctx / "sub" / "deeper"
    sub.mkdir(parents=True)
    (sub / "data.bin").write_bytes(os.urandom(300_000))
    (ctx / "sub").chmod(0o750)
    os.link(ctx / "run.sh", ctx / "hardlink.sh")
    (ctx / "rel-link").symlink_to("sub/deeper/data.bin")
    (ctx / "abs-link").symlink_to("/etc/passwd")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-secret").write_text("not for the build")
    (ctx / "dir-link").symlink_to(outside)
    os.mkfifo(ctx / "fifo")
    os.utime(ctx / "secret.txt", ns=(1_000_000_000, 1_234_567_890_123_456_789))
    return ctx


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(path), info.st_mtime_ns)
            elif stat.S_ISDIR(info.st_mode):
                out[rel] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
            elif stat.S_ISREG(info.st_mode):
                out[rel] = ("file", stat.S_IMODE(info.st_mode), info.st_mtime_ns,
                            path.read_bytes())
            else:
                out[rel] = ("other",)
    return out


def test_the_copy_keeps_contents_modes_mtimes_and_links_as_links(context, tmp_path):
    snap = copy_tree(context, tmp_path / "copy")
    original = tree(context)
    del original["fifo"]
    assert tree(tmp_path / "copy") == original
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o700
    assert (tmp_path / "copy").stat().st_mtime_ns == context.stat().st_mtime_ns
    assert snap.skipped == ["fifo"]
    assert snap.files == 5  # Containerfile, secret, run.sh, its hard link, data.bin
    assert snap.bytes == sum(p.stat().st_size for p in context.rglob("*")
                             if p.is_file() and not p.is_symlink())


def test_nothing_outside_the_context_is_read(context, tmp_path):
    copy_tree(context, tmp_path / "copy")
    assert os.readlink(tmp_path / "copy" / "dir-link") == str(tmp_path / "outside")
    assert os.readlink(tmp_path / "copy" / "abs-link") == "/etc/passwd"
    copied = [p.read_bytes() for p in (tmp_path / "copy").rglob("*")
              if p.is_file() and not p.is_symlink()]
    assert b"not for the build" not in copied
    assert not (tmp_path / "copy" / "hardlink.sh").samefile(context / "hardlink.sh")
    assert (tmp_path / "copy" / "run.sh").stat().st_ino != (context / "run.sh").stat().st_ino


def test_snapshot_is_private_and_removed_by_release(context, tmp_path):
    plan = make_plan(context, config=Config(), profile="host-ro", snapshot=True)
    state = prepare(None, plan, pin=False)  # type: ignore[arg-type]  # host-ro: no podman call
    root = plan.context_snapshot
    assert root is not None and root == state.snapshot
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    assert (plan.snapshot_context_dir / "secret.txt").read_text() == "private\n"
    assert release(None, state) == []  # type: ignore[arg-type]
    assert not root.exists()


def test_an_outside_containerfile_is_copied_alone(context, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "Build.file").write_text("FROM scratch\n")
    (elsewhere / "Build.file").chmod(0o600)
    (elsewhere / "private-key").write_text("no")
    plan = make_plan(context, config=Config(), profile="isolated",
                     containerfile=elsewhere / "Build.file")
    snap = make_snapshot(plan)
    assert snap is not None
    assert sorted(os.listdir(plan.context_snapshot)) == ["containerfile", "context"]
    assert os.listdir(plan.context_snapshot / "containerfile") == ["Build.file"]
    assert plan.snapshot_containerfile.read_text() == "FROM scratch\n"
    assert stat.S_IMODE(plan.snapshot_containerfile.stat().st_mode) == 0o600
    remove_snapshot(plan.context_snapshot)
    assert not plan.context_snapshot.exists()


def test_a_failed_copy_leaves_no_snapshot(context, monkeypatch):
    import tui.engine.context as module

    plan = make_plan(context, config=Config(), profile="host-ro", snapshot=True)

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(module, "_copy_data", broken)
    with pytest.raises(OSError, match="cannot copy from the build context"):
        make_snapshot(plan)
    assert plan.context_snapshot is not None and not plan.context_snapshot.exists()


def test_a_plan_without_snapshot_copies_nothing(context):
    plan = make_plan(context, config=Config(), profile="host-ro", snapshot=False)
    assert plan.context_snapshot is None and make_snapshot(plan) is None


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("node_modules", "node_modules", True),
    ("node_modules", "sub/node_modules", False),  # patterns are anchored at the root
    ("*.log", "a.log", True),
    ("*.log", "sub/a.log", False),  # * stays within one component
    ("**/*.log", "sub/deep/a.log", True),
    ("**/*.log", "a.log", True),  # ** matches no directory too
    ("sub/*", "sub/x", True),
    ("sub/*", "sub", False),
    ("/build/", "build", True),
    ("./dist", "dist", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("docs/**", "docs/x/y", True),
])
def test_ignore_patterns_match_as_buildah_does(tmp_path, pattern, path, expected):
    from tui.engine.context import ignore_patterns, ignored

    (tmp_path / ".containerignore").write_text(f"# comment\n\n{pattern}\n")
    patterns = ignore_patterns(tmp_path)
    assert patterns is not None
    assert ignored(tuple(path.split("/")), patterns) is expected


@pytest.mark.parametrize("text", ["*.log\n!keep.log\n", "[ab].txt\n", "a\\*b\n"])
def test_ignore_files_beyond_the_simple_syntax_skip_nothing(tmp_path, text):
    from tui.engine.context import ignore_patterns

    (tmp_path / ".dockerignore").write_text(text)
    assert ignore_patterns(tmp_path) is None


def test_both_ignore_files_skip_nothing(tmp_path):
    from tui.engine.context import ignore_patterns

    (tmp_path / ".dockerignore").write_text("x\n")
    (tmp_path / ".containerignore").write_text("y\n")
    assert ignore_patterns(tmp_path) is None


def test_the_snapshot_leaves_out_what_the_ignore_file_excludes_but_keeps_what_buildah_reads(
        tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "docker").mkdir(parents=True)
    (ctx / "docker" / "Containerfile").write_text("FROM scratch\n")
    (ctx / "docker" / "other").write_text("x")
    (ctx / "node_modules" / "pkg").mkdir(parents=True)
    (ctx / "node_modules" / "pkg" / "index.js").write_text("x" * 100_000)
    (ctx / "app.py").write_text("print()\n")
    (ctx / "debug.log").write_text("log\n")
    (ctx / ".dockerignore").write_text("node_modules\n*.log\ndocker\n.dockerignore\n")
    plan = make_plan(ctx, config=Config(), profile="host-ro", snapshot=True,
                     containerfile=ctx / "docker" / "Containerfile")
    snap = make_snapshot(plan)
    assert snap is not None
    copied = sorted(p.relative_to(plan.snapshot_context_dir).as_posix()
                    for p in plan.snapshot_context_dir.rglob("*"))
    assert copied == [".dockerignore", "app.py", "docker", "docker/Containerfile",
                      "docker/other"]
    assert snap.ignored == 2


def test_a_failed_preparation_removes_the_snapshot(context):
    class NoVolumes:
        class volumes:  # noqa: N801 - stands in for PodmanClient.volumes
            @staticmethod
            def create(*args, **kwargs):
                raise RuntimeError("podman went away")

    plan = make_plan(context, config=Config(), profile="isolated")
    assert plan.context_snapshot is not None
    with pytest.raises(RuntimeError, match="podman went away"):
        prepare(NoVolumes(), plan)  # type: ignore[arg-type]
    assert not plan.context_snapshot.exists()
