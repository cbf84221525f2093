"""Tests for the SQLite build history."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.engine.history import SCHEMA_VERSION, BuildRecord, History, HistoryError, StepRecord


def record(**overrides: object) -> BuildRecord:
    fields: dict[str, object] = {
        "started_at": 1000.0,
        "profile": "host-ro",
        "context": "/src/app",
        "status": "succeeded",
        "duration_s": 10.0,
    }
    fields.update(overrides)
    return BuildRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    store = History(tmp_path / "h.sqlite3")
    yield store
    store.close()


def test_round_trip_with_steps(tmp_path: Path) -> None:
    path = tmp_path / "nested/dir/h.sqlite3"
    original = record(
        containerfile="/src/app/Containerfile",
        tag="127.0.0.1:5000/app:dev",
        target="127.0.0.1:5000/app:dev",
        duration_s=12.5,
        steps_total=3,
        cache_hits=1,
        image_id="sha256:abc",
        pushed="127.0.0.1:5000/demo/app:1@sha256:" + "ab" * 32,
        build_args={"VERSION": "1.2", "EMPTY": ""},
        stage_target="runtime",
        no_cache=False,
        steps=[
            StepRecord(1, 1, "FROM alpine", 0.5, True),
            StepRecord(1, 2, "RUN make", 11.0, False),
            StepRecord(2, 1, "COPY --from=0 /out /", 1.0, False),
        ],
    )
    with History(path) as history:
        build_id = history.add(original)
    # Reopen: the history must survive the process that wrote it.
    with History(path) as reopened:
        loaded = reopened.get(build_id)
    assert loaded is not None
    assert loaded.id == build_id
    expected = BuildRecord(**{**vars(original), "id": build_id, "warm": True})
    assert loaded == expected


def test_warm_derived_from_cache_hits(history: History) -> None:
    cold = history.add(record(cache_hits=0))
    warm = history.add(record(cache_hits=2))
    assert history.get(cold).warm is False  # type: ignore[union-attr]
    assert history.get(warm).warm is True  # type: ignore[union-attr]


def test_get_missing_is_none(history: History) -> None:
    assert history.get(42) is None


def test_recent_newest_first_and_limited(history: History) -> None:
    for i, started in enumerate([30.0, 10.0, 20.0, 40.0]):
        history.add(
            record(started_at=started, tag=f"t{i}", steps=[StepRecord(1, 1, f"s{i}", 1, False)])
        )
    recent = history.recent()
    assert [r.started_at for r in recent] == [40.0, 30.0, 20.0, 10.0]
    assert [r.steps[0].instruction for r in recent] == ["s3", "s0", "s2", "s1"]
    assert [r.tag for r in history.recent(limit=2)] == ["t3", "t0"]


def test_median_duration(history: History) -> None:
    assert history.median_duration("host-ro") is None
    for i, duration in enumerate([10.0, 30.0, 20.0, 100.0]):
        history.add(record(started_at=float(i), duration_s=duration))
    history.add(record(started_at=10.0, duration_s=5.0, context="/src/other"))
    history.add(record(started_at=11.0, duration_s=999.0, status="failed"))
    history.add(record(started_at=12.0, duration_s=1.0, profile="offline"))
    assert history.median_duration("host-ro", "/src/app") == 25.0
    assert history.median_duration("host-ro") == 20.0  # 5, 10, 20, 30, 100
    assert history.median_duration("host-ro", status="failed") == 999.0
    assert history.median_duration("offline") == 1.0
    assert history.median_duration("host-ro", "/nowhere") is None
    # Only the most recent builds count: the two newest for /src/app are 20 and 100.
    assert history.median_duration("host-ro", "/src/app", last=2) == 60.0
    # An unchanged build ran nothing: it says nothing of what a build takes.
    history.add(record(started_at=50.0, duration_s=0.01, unchanged=True))
    assert history.median_duration("host-ro", "/src/app", last=2) == 60.0
    assert history.recent(limit=1)[0].unchanged


def test_bad_status_rejected(history: History) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        history.add(record(status="done"))
    assert history.recent() == []


def test_schema_version_and_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="newer buildcage"):
        History(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="cannot open build history"):
        History(path)


def test_close_is_idempotent_and_final(history: History) -> None:
    history.close()
    history.close()
    with pytest.raises(HistoryError, match="closed"):
        history.recent()


def test_writes_from_threads(history: History) -> None:
    def worker(n: int) -> None:
        for i in range(10):
            history.add(
                record(started_at=float(n * 100 + i), steps=[StepRecord(1, 1, "RUN x", 0.1, False)])
            )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    builds = history.recent(limit=1000)
    assert len(builds) == 40
    assert all(len(b.steps) == 1 for b in builds)


def test_file_lists_are_kept_for_the_newest_builds_only(history: History) -> None:
    from tui.engine.history import KEEP_FILE_LISTS, CacheStep

    files = {"a": ["f", 420, 0, 0, 1, "h", 0, 0, 0]}
    ids = [history.add(record(started_at=float(i), store="s"),
                       cache=[CacheStep(1, 2, "COPY a /a", "l", "built",
                                        {"files_digest": "x"}, files)])
           for i in range(KEEP_FILE_LISTS + 2)]
    kept = [history.cache_steps(i)[0].files is not None for i in ids]
    assert kept == [False, False] + [True] * KEEP_FILE_LISTS
    assert history.cache_steps(ids[0])[0].detail == {"files_digest": "x"}  # the digest stays


def test_the_secret_key_is_made_once_and_private(history: History) -> None:
    key = history.secret_key()
    assert len(key) == 32 and history.secret_key() == key
    path = history.path.with_name(history.path.name + ".key")
    assert path.stat().st_mode & 0o777 == 0o600
