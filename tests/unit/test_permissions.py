"""buildcage's data directory is 0700 and its history database 0600, whatever the umask; ones
left more open (by an older buildcage, or by hand) are tightened when buildcage starts."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.engine.config import data_dir
from tui.engine.history import BuildRecord, History
from tui.engine.planner import make_plan
from tui.engine.stores import write_plan_files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """umask 022 (files 0644, directories 0755 by default) and a data home of our own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    old = os.umask(0o022)
    try:
        yield tmp_path / "xdg" / "buildcage"
    finally:
        os.umask(old)


def test_history_creates_a_private_data_dir_and_database(open_umask: Path):
    assert data_dir() == open_umask
    with History() as history:
        history.add(BuildRecord(started_at=1.0, profile="host-ro", context="/c",
                                status="succeeded"))
        # A write in progress: SQLite's rollback journal exists now; it takes the db's mode.
        other = sqlite3.connect(history.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO builds (started_at, profile, context, containerfile, tag,"
                      " target, status, duration_s, steps_total, cache_hits, image_id, pushed,"
                      " build_args, stage_target, no_cache, warm) VALUES"
                      " (2, 'p', 'c', '', '', '', 'failed', 0, 0, 0, '', '', '{}', '', 0, 0)")
        journal = history.path.with_name(history.path.name + "-journal")
        assert journal.exists()
        assert mode(journal) == 0o600
        other.execute("ROLLBACK")
        other.close()
    assert mode(open_umask) == 0o700
    assert mode(open_umask / "history.sqlite3") == 0o600


def test_too_open_ones_are_tightened_on_start(open_umask: Path):
    open_umask.mkdir(parents=True, mode=0o755)
    os.chmod(open_umask, 0o755)
    db = open_umask / "history.sqlite3"
    with History():
        pass
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")):
        path.touch()
        os.chmod(path, 0o644)
    with History():
        pass
    assert mode(open_umask) == 0o700
    assert mode(db) == 0o600
    assert mode(db.with_name(db.name + "-wal")) == 0o600
    assert mode(db.with_name(db.name + "-journal")) == 0o600


def test_a_build_makes_the_data_dir_private_too(open_umask: Path, tmp_path: Path):
    from tui.engine.config import Config

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\n")
    plan = make_plan(context, config=Config(), profile="project", project="p")
    assert plan.data_dir == open_umask and not open_umask.exists()
    write_plan_files(plan)
    assert mode(open_umask) == 0o700
