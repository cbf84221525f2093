"""History schema 4 from every older file: schema 1, main's schema 2 (--load's ``loaded``
column), the why branch's own schema 2 (``store``/``bases`` and the cache tables) and schema 3
(before ``plan_key``). Each old
database was written by that version's own History class and dumped to SQL
(tests/data/history/make_old.py says how); each held a secret-looking build argument in clear.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tui.engine.errors import UserError
from tui.engine.history import (
    SCHEMA_VERSION,
    BuildRecord,
    CacheMissRecord,
    CacheStep,
    History,
    StepRecord,
)
from tui.engine.request import BuildRequest
from tui.engine.secret_args import is_withheld, secret_digest

OLD = Path(__file__).parent.parent / "data" / "history"
SECRET = b"hunter2"
OLD_STEPS = [StepRecord(1, 1, "FROM busybox", 0.0, True), StepRecord(1, 2, "ARG TOKEN", 0.0, True),
             StepRecord(1, 3, 'RUN test -n "$TOKEN"', 1.2, False)]


def old_database(tmp_path: Path, kind: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.executescript((OLD / f"schema{kind}.sql").read_text())
    db.close()
    assert SECRET in path.read_bytes()  # the old version kept it in clear
    return path


def shape(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """Columns of every table and the names of every index."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        columns = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}
        indexes = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
        return columns, indexes
    finally:
        db.close()


def version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["1", "2-load", "2-why"])
def test_every_old_schema_becomes_schema_4_with_its_rows(tmp_path: Path, kind: str) -> None:
    fresh = tmp_path / "fresh" / "history.sqlite3"
    History(fresh).close()
    path = old_database(tmp_path, kind)
    with History(path) as history:
        first, second = history.get(1), history.get(2)
        assert first is not None and second is not None
        assert (first.context, first.tag, first.status, first.cache_hits, first.steps) == (
            "/src/app", "localhost/app:latest", "succeeded", 2, OLD_STEPS)
        assert first.image_id == "sha256:" + "ab" * 32 and first.warm
        assert (second.context, second.status, second.build_args) == ("/src/other", "failed", {})
        assert first.loaded == ("localhost/app:latest" if kind == "2-load" else "")
        if kind == "2-why":
            assert first.store == "host-ro" and first.bases is not None
            assert [c.layer_id for c in history.cache_steps(1)] == ["l1", "l3"]
            assert history.cache_misses(1)[0].reasons == [{"kind": "first"}]
        else:
            assert first.store == "" and first.bases is None and history.cache_steps(1) == []
        # The secret-looking argument's value is gone, the other one kept.
        assert first.build_args["GREETING"] == "hi"
        assert first.build_args["TOKEN"] == secret_digest(history.secret_key(), "TOKEN",
                                                          "hunter2")
        # Schema 4 is written to: a build with a cache record, a load and a plan key.
        new_id = history.add(
            BuildRecord(started_at=2e9, profile="project", context="/src/app", status="succeeded",
                        loaded="localhost/app:new", store="project:app",
                        bases={"busybox": {"id": "i", "digest": "d"}}, plan_key="k1"),
            cache=[CacheStep(1, 2, "RUN a", "abc", "built", {"args": {"A": "1"}})],
            misses=[CacheMissRecord(1, 2, "RUN a", 1, [{"kind": "no_cache"}])])
        assert history.build_with_layer("project:app", "abc") == (new_id, 1, 2)
        assert history.loaded_before("localhost/app:new", "")
        assert len(history.recent()) == 3
        assert history.get(new_id).plan_key == "k1" and first.plan_key == ""
    assert version(path) == SCHEMA_VERSION == 4
    assert shape(path) == shape(fresh)
    assert SECRET not in path.read_bytes()  # overwritten in the file, not left in a free page
    with History(path) as again:  # opening a schema 4 file changes nothing
        assert len(again.recent()) == 3
    assert version(path) == 4


def test_schema_3_gains_the_plan_key_and_keeps_its_cache_record(tmp_path: Path) -> None:
    """Written by 7a94290's History (secrets already withheld there)."""
    fresh = tmp_path / "fresh" / "history.sqlite3"
    History(fresh).close()
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.executescript((OLD / "schema3.sql").read_text())
    db.close()
    assert version(path) == 3 and "plan_key" not in shape(path)[0]["builds"]
    with History(path) as history:
        first = history.get(1)
        assert first is not None and first.plan_key == "" and first.bases is not None
        assert [c.layer_id for c in history.cache_steps(1)] == ["l1", "l3"]
        assert first.build_args["GREETING"] == "hi"
    assert version(path) == 4
    assert shape(path) == shape(fresh)


def test_why_schema_2_is_told_apart_by_its_columns(tmp_path: Path) -> None:
    """Both schema 2 files say user_version 2; only their columns differ."""
    load, why = (shape(old_database(tmp_path / k, k))[0]["builds"] for k in ("2-load", "2-why"))
    assert "loaded" in load and "store" not in load
    assert "store" in why and "loaded" not in why


def test_a_file_with_no_builds_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE other (x)")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="no builds table"):
        History(path)
    assert version(path) == 2  # rolled back, not half migrated


def test_a_secret_looking_argument_is_stored_as_a_digest_and_not_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with History(path) as history:
        build_id = history.add(BuildRecord(
            started_at=1.0, profile="host-ro", context="/src/app", status="succeeded",
            build_args={"TOKEN": "hunter2", "api_key": "k3y-value", "GREETING": "hi"}))
        stored = history.get(build_id)
        assert stored is not None
        assert is_withheld(stored.build_args["TOKEN"]) and is_withheld(stored.build_args["api_key"])
        assert stored.build_args["GREETING"] == "hi"
        with pytest.raises(UserError, match="api_key, TOKEN|TOKEN, api_key"):
            BuildRequest.from_record(stored)
    data = path.read_bytes()
    assert SECRET not in data and b"k3y-value" not in data
    assert json.loads(json.dumps(stored.build_args))  # what `history --json` prints: digests


def test_the_key_is_private_and_beside_the_database(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with History(path) as history:
        key = history.secret_key()
    key_file = tmp_path / "history.sqlite3.key"
    assert len(key) == 32 and key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    os.chmod(key_file, 0o644)  # loosened since: tightened when next read
    with History(path) as history:
        assert history.secret_key() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
