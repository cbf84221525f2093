"""Build history in SQLite (``data_dir()/history.sqlite3``): what ran, how long, how warm."""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from tui.engine.config import data_dir, ensure_data_dir, private_file
from tui.engine.errors import UserError

SCHEMA_VERSION = 2
_SIDE_FILES = ("-journal", "-wal", "-shm")
STATUSES = ("succeeded", "failed", "canceled")

_SCHEMA = """
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL, profile TEXT NOT NULL, context TEXT NOT NULL,
    containerfile TEXT NOT NULL, tag TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, duration_s REAL NOT NULL, steps_total INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, image_id TEXT NOT NULL, pushed TEXT NOT NULL,
    build_args TEXT NOT NULL, stage_target TEXT NOT NULL, no_cache INTEGER NOT NULL,
    warm INTEGER NOT NULL, loaded TEXT NOT NULL DEFAULT ''
);
CREATE INDEX builds_by_time ON builds (started_at);
CREATE INDEX builds_by_profile ON builds (profile, context, status, started_at);
CREATE TABLE steps (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, stage INTEGER NOT NULL, step INTEGER NOT NULL,
    instruction TEXT NOT NULL, duration_s REAL NOT NULL, cached INTEGER NOT NULL,
    PRIMARY KEY (build_id, seq)
);
"""
_MIGRATIONS = {
    # 1 -> 2: the host tag a build was loaded under (--load), "" for none.
    2: "ALTER TABLE builds ADD COLUMN loaded TEXT NOT NULL DEFAULT ''",
}


class HistoryError(UserError, RuntimeError):
    """The history database cannot be opened or has an unknown schema."""


@dataclass(frozen=True)
class StepRecord:
    """One finished step; stage and step numbers as Buildah prints them."""

    stage: int
    step: int
    instruction: str
    duration_s: float
    cached: bool


@dataclass(kw_only=True)
class BuildRecord:
    """One build as remembered; ``warm`` is stored true whenever ``cache_hits`` > 0."""

    id: int | None = None
    started_at: float
    profile: str
    context: str
    containerfile: str = ""
    tag: str = ""
    target: str = ""
    status: str
    duration_s: float = 0.0
    steps_total: int = 0
    cache_hits: int = 0
    image_id: str = ""
    pushed: str = ""
    """``REF@DIGEST`` when the build pushed, else ""."""
    build_args: dict[str, str] = field(default_factory=dict)
    stage_target: str = ""
    no_cache: bool = False
    warm: bool = False
    loaded: str = ""
    """The host tag the image was loaded under (``--load``, or later from the TUI), else ""."""
    steps: list[StepRecord] = field(default_factory=list)


# Scalar columns of ``builds``, in dataclass order; ``id`` is the key and steps have a table.
_COLUMNS = tuple(f.name for f in fields(BuildRecord) if f.name not in ("id", "steps"))
_BOOLS = ("no_cache", "warm")


def _row_values(record: BuildRecord) -> tuple[Any, ...]:
    values = {name: getattr(record, name) for name in _COLUMNS}
    values["build_args"] = json.dumps(record.build_args, sort_keys=True)
    values["warm"] = record.warm or record.cache_hits > 0
    return tuple(values[name] for name in _COLUMNS)


def _from_row(row: sqlite3.Row, steps: list[StepRecord]) -> BuildRecord:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    values.update({name: bool(row[name]) for name in _BOOLS})
    values["build_args"] = json.loads(row["build_args"])
    return BuildRecord(**values, id=row["id"], steps=steps)


class History:
    """The history store; one connection shared across threads behind a lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / "history.sqlite3"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            if path is None:
                ensure_data_dir()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0600 whatever the umask: SQLite gives its -journal/-wal/-shm files the database
            # file's mode, so those follow; ones left more open by an older buildcage are
            # tightened here.
            private_file(self.path)
            for suffix in _SIDE_FILES:
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    private_file(side)
            # The TUI records from a worker thread; the lock serialises all use.
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except (OSError, sqlite3.Error, HistoryError) as exc:
            self.close()
            if isinstance(exc, HistoryError):
                raise
            raise HistoryError(f"{self.path}: cannot open build history: {exc}") from exc

    def _migrate(self) -> None:
        db = self._conn()
        # IMMEDIATE takes the write lock first, so two processes opening a new file cannot
        # both create the schema.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path}: written by a newer buildcage"
                    f" (schema {version} > {SCHEMA_VERSION})"
                )
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            else:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    db.execute(_MIGRATIONS[step])  # a file an older buildcage wrote
            if version != SCHEMA_VERSION:  # written only when it changes: opening stays a read
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise HistoryError(f"{self.path}: history is closed")
        return self._db

    def _failed(self, exc: sqlite3.Error) -> HistoryError:
        return HistoryError(f"{self.path}: cannot use build history: {exc}")

    def add(self, record: BuildRecord) -> int:
        """Store ``record`` (its ``id`` is ignored) with its steps; return the new id."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}: {record.status!r}")
        try:
            return self._add(record)
        except sqlite3.Error as exc:  # a database damaged since it was opened, a full disk
            raise self._failed(exc) from exc

    def _add(self, record: BuildRecord) -> int:
        marks = ", ".join("?" * len(_COLUMNS))
        with self._lock, self._conn() as db:
            cursor = db.execute(
                f"INSERT INTO builds ({', '.join(_COLUMNS)}) VALUES ({marks})", _row_values(record)
            )
            build_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (build_id, seq, s.stage, s.step, s.instruction, s.duration_s, s.cached)
                    for seq, s in enumerate(record.steps)
                ],
            )
        return build_id

    def _records(self, where: str, params: tuple[Any, ...]) -> list[BuildRecord]:
        try:
            return self._read(where, params)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def _read(self, where: str, params: tuple[Any, ...]) -> list[BuildRecord]:
        with self._lock:
            db = self._conn()
            rows = db.execute(f"SELECT * FROM builds {where}", params).fetchall()
            steps: dict[int, list[StepRecord]] = {row["id"]: [] for row in rows}
            # One query for all the steps, selected by the same clause as the builds.
            for s in db.execute(
                f"SELECT * FROM steps WHERE build_id IN (SELECT id FROM builds {where})"
                " ORDER BY build_id, seq",
                params,
            ):
                values = (s["stage"], s["step"], s["instruction"], s["duration_s"])
                steps[s["build_id"]].append(StepRecord(*values, cached=bool(s["cached"])))
        return [_from_row(row, steps[row["id"]]) for row in rows]

    def recent(self, limit: int = 100) -> list[BuildRecord]:
        """The ``limit`` most recent builds, newest first."""
        return self._records("ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))

    def get(self, build_id: int) -> BuildRecord | None:
        """The build with id ``build_id``, or None."""
        found = self._records("WHERE id = ?", (build_id,))
        return found[0] if found else None

    def median_duration(
        self, profile: str, context: str | None = None, status: str = "succeeded", last: int = 20
    ) -> float | None:
        """Median duration of the ``last`` matching builds (recent ones predict best), or None."""
        where, params = "profile = ? AND status = ?", [profile, status]
        if context is not None:
            where, params = where + " AND context = ?", [*params, context]
        query = f"SELECT duration_s FROM builds WHERE {where} ORDER BY started_at DESC LIMIT ?"
        try:
            with self._lock:
                rows = self._conn().execute(query, (*params, last)).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return statistics.median(row[0] for row in rows) if rows else None

    def loaded_before(self, tag: str, image_id: str) -> bool:
        """Whether buildcage loaded ``image_id`` into the host under ``tag`` (the tag rule of
        tui.engine.load: such a tag may move to the next build's image)."""
        query = "SELECT 1 FROM builds WHERE loaded = ? AND image_id = ? LIMIT 1"
        try:
            with self._lock:
                return self._conn().execute(query, (tag, image_id)).fetchone() is not None
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def mark_loaded(self, image_id: str, tag: str) -> bool:
        """Records a load after the build (the TUI's key) on the latest build of ``image_id``;
        False when history has no such build."""
        query = ("UPDATE builds SET loaded = ? WHERE id = (SELECT id FROM builds WHERE "
                 "image_id = ? ORDER BY started_at DESC, id DESC LIMIT 1)")
        try:
            with self._lock, self._conn() as db:
                return db.execute(query, (tag, image_id)).rowcount > 0
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
