"""Build history in SQLite (``data_dir()/history.sqlite3``): what ran, how long, how warm."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Self

from tui.engine.config import data_dir, ensure_data_dir, private_file
from tui.engine.errors import UserError
from tui.engine.secret_args import has_secret, withhold

SCHEMA_VERSION = 4
_SIDE_FILES = ("-journal", "-wal", "-shm")
STATUSES = ("succeeded", "failed", "canceled")

_BASE_TABLES = """
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL, profile TEXT NOT NULL, context TEXT NOT NULL,
    containerfile TEXT NOT NULL, tag TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, duration_s REAL NOT NULL, steps_total INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, image_id TEXT NOT NULL, pushed TEXT NOT NULL,
    build_args TEXT NOT NULL, stage_target TEXT NOT NULL, no_cache INTEGER NOT NULL,
    warm INTEGER NOT NULL, loaded TEXT NOT NULL DEFAULT '',
    store TEXT NOT NULL DEFAULT '', bases TEXT NOT NULL DEFAULT '',
    plan_key TEXT NOT NULL DEFAULT '', unchanged INTEGER NOT NULL DEFAULT 0
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
_CACHE_TABLES = """
CREATE INDEX IF NOT EXISTS builds_by_store ON builds (store, context, started_at);
CREATE TABLE IF NOT EXISTS cache_steps (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    stage INTEGER NOT NULL, step INTEGER NOT NULL, instruction TEXT NOT NULL,
    layer_id TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, files TEXT,
    PRIMARY KEY (build_id, stage, step)
);
CREATE INDEX IF NOT EXISTS cache_steps_by_layer ON cache_steps (layer_id);
CREATE TABLE IF NOT EXISTS cache_misses (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    stage INTEGER NOT NULL, step INTEGER NOT NULL, instruction TEXT NOT NULL,
    compared_with INTEGER, reasons TEXT NOT NULL,
    PRIMARY KEY (build_id, stage, step)
);
"""
"""What the cache-miss explanations compare (tui.engine.cache_why): each step's layer, outcome
and inputs (build arguments it saw, secret-looking ones as an HMAC; the context files it
copied), and the reasons found for the steps that ran."""
_SCHEMA = _BASE_TABLES + _CACHE_TABLES

# Schema 4 is every column and table above; the files older buildcages wrote lack some:
#   1          (before --load and the cache explanations): none of loaded, store, bases;
#   2 (--load) : loaded;
#   2 (why)    : store, bases and the cache tables (a development branch that also called
#                its schema 2; told apart from --load's by its columns, not its number);
#   3          : plan_key and unchanged (unchanged builds).
# So an upgrade adds what is missing, column by column, whichever file it is.
_ADDED_COLUMNS = {
    "loaded": "TEXT NOT NULL DEFAULT ''",  # the host tag a build was loaded under (--load)
    "store": "TEXT NOT NULL DEFAULT ''",  # the image store it used: its cache
    "bases": "TEXT NOT NULL DEFAULT ''",  # the images it read from outside, JSON
    "plan_key": "TEXT NOT NULL DEFAULT ''",  # tui.engine.unchanged.plan_key
    "unchanged": "INTEGER NOT NULL DEFAULT 0",  # an unchanged build: no container ran
}
KEEP_FILE_LISTS = 5
"""File lists (the largest part of a cache record) are kept for the newest builds of each
context and store; older builds keep one digest of them."""


def _run(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _upgrade(db: sqlite3.Connection, key: Callable[[], bytes]) -> None:
    """Brings a schema 1, either schema 2 or a schema 3 up to schema 4, keeping every row; the
    values of secret-looking build arguments those kept in clear become digests (``key``:
    history's)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(builds)")}
    if not have:
        raise sqlite3.DatabaseError("no builds table")
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE builds ADD COLUMN {name} {declaration}")
    _run(db, _CACHE_TABLES)
    for build_id, text in db.execute("SELECT id, build_args FROM builds").fetchall():
        args = json.loads(text)
        if isinstance(args, dict) and has_secret(args):
            db.execute("UPDATE builds SET build_args = ? WHERE id = ?",
                       (json.dumps(withhold(args, key()), sort_keys=True), build_id))


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
    store: str = ""
    """Which image store the build used (``tui.engine.cache_why.store_key``): its cache."""
    bases: dict[str, dict[str, str]] | None = None
    """Images it read from outside (ref -> {"id", "digest"}), from the publish phase's facts;
    None when not recorded (the build ended before publishing)."""
    plan_key: str = ""
    """What in its plan made the build beside its steps' inputs (tui.engine.unchanged)."""
    unchanged: bool = False
    """An unchanged build: nothing ran (not counted in the median build time)."""


@dataclass(frozen=True)
class CacheStep:
    """One step of a build as the cache saw it: its layer, what happened to it ("from",
    "cached", "built", "failed", "canceled") and what Buildah keyed it on (``detail``: build
    arguments, file digest, --from, base; ``files``: the context files it copied, or None)."""

    stage: int
    step: int
    instruction: str
    layer_id: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[Any]] | None = None


@dataclass(frozen=True)
class CacheMissRecord:
    """The reasons (JSON form of tui.engine.cache_reasons) a step of a build ran."""

    stage: int
    step: int
    instruction: str
    compared_with: int | None
    reasons: list[dict[str, Any]]


# Scalar columns of ``builds``, in dataclass order; ``id`` is the key and steps have a table.
_COLUMNS = tuple(f.name for f in fields(BuildRecord) if f.name not in ("id", "steps"))
_BOOLS = ("no_cache", "warm", "unchanged")


def _row_values(record: BuildRecord) -> tuple[Any, ...]:
    values = {name: getattr(record, name) for name in _COLUMNS}
    values["build_args"] = json.dumps(record.build_args, sort_keys=True)
    values["warm"] = record.warm or record.cache_hits > 0
    values["bases"] = "" if record.bases is None else json.dumps(record.bases, sort_keys=True)
    return tuple(values[name] for name in _COLUMNS)


def _from_row(row: sqlite3.Row, steps: list[StepRecord]) -> BuildRecord:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    values.update({name: bool(row[name]) for name in _BOOLS})
    values["build_args"] = json.loads(row["build_args"])
    values["bases"] = json.loads(row["bases"]) if row["bases"] else None
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
            # What an update replaces (a secret value an older buildcage kept) is overwritten
            # in the file, not left in a free page (Debian's SQLite is built so; not all are).
            self._db.execute("PRAGMA secure_delete = ON")
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
                _run(db, _SCHEMA)
            elif version < SCHEMA_VERSION:
                _upgrade(db, self.secret_key)  # a file an older buildcage wrote
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

    def add(self, record: BuildRecord, cache: list[CacheStep] | None = None,
            misses: list[CacheMissRecord] | None = None) -> int:
        """Store ``record`` (its ``id`` is ignored) with its steps, and what its cache record
        and miss reasons hold; return the new id."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}: {record.status!r}")
        try:
            if has_secret(record.build_args):  # never a secret-looking value in clear
                record = replace(record, build_args=withhold(record.build_args,
                                                             self.secret_key()))
            return self._add(record, cache or [], misses or [])
        except sqlite3.Error as exc:  # a database damaged since it was opened, a full disk
            raise self._failed(exc) from exc

    def _add(self, record: BuildRecord, cache: list[CacheStep],
             misses: list[CacheMissRecord]) -> int:
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
            db.executemany(
                "INSERT OR REPLACE INTO cache_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(build_id, c.stage, c.step, c.instruction, c.layer_id, c.outcome,
                  json.dumps(c.detail, sort_keys=True),
                  None if c.files is None else json.dumps(c.files, sort_keys=True))
                 for c in cache],
            )
            db.executemany(
                "INSERT OR REPLACE INTO cache_misses VALUES (?, ?, ?, ?, ?, ?)",
                [(build_id, m.stage, m.step, m.instruction, m.compared_with,
                  json.dumps(m.reasons)) for m in misses],
            )
            if cache and record.store:
                self._prune_file_lists(db, record)
        return build_id

    @staticmethod
    def _prune_file_lists(db: sqlite3.Connection, record: BuildRecord) -> None:
        db.execute(
            "UPDATE cache_steps SET files = NULL WHERE files IS NOT NULL AND build_id IN ("
            " SELECT id FROM builds WHERE store = ? AND context = ?"
            " ORDER BY started_at DESC, id DESC LIMIT -1 OFFSET ?)",
            (record.store, record.context, KEEP_FILE_LISTS))

    def cache_steps(self, build_id: int) -> list[CacheStep]:
        """The cache record of a build's steps, in order (empty for builds recorded without)."""
        rows = self._query("SELECT * FROM cache_steps WHERE build_id = ? ORDER BY stage, step",
                           (build_id,))
        return [CacheStep(r["stage"], r["step"], r["instruction"], r["layer_id"], r["outcome"],
                          json.loads(r["detail"]),
                          None if r["files"] is None else json.loads(r["files"]))
                for r in rows]

    def cache_misses(self, build_id: int) -> list[CacheMissRecord]:
        rows = self._query("SELECT * FROM cache_misses WHERE build_id = ? ORDER BY stage, step",
                           (build_id,))
        return [CacheMissRecord(r["stage"], r["step"], r["instruction"], r["compared_with"],
                                json.loads(r["reasons"])) for r in rows]

    def last_build(self, context: str, *, store: str | None = None,
                   other_store: str | None = None, profile: str | None = None,
                   explained: bool = False) -> BuildRecord | None:
        """The newest build of ``context``: in ``store``, in any store but ``other_store``, of
        ``profile``; ``explained``: only one with a cache record."""
        where, params = ["context = ?"], [context]
        if store is not None:
            where.append("store = ?")
            params.append(store)
        if other_store is not None:
            where.append("store != ?")
            params.append(other_store)
        if profile is not None:
            where.append("profile = ?")
            params.append(profile)
        if explained:
            where.append("id IN (SELECT build_id FROM cache_steps)")
        found = self._records(f"WHERE {' AND '.join(where)} ORDER BY started_at DESC, id DESC"
                              " LIMIT 1", tuple(params))
        return found[0] if found else None

    def last_full_run(self, profile: str, context: str, containerfile: str,
                      stage_target: str) -> BuildRecord | None:
        """The newest successful build of this profile, context, Containerfile and target in
        which every step ran (none came from a cache): what its steps cost
        (tui.engine.cache_worth)."""
        found = self._records(
            "WHERE profile = ? AND context = ? AND containerfile = ? AND stage_target = ?"
            " AND status = 'succeeded' AND cache_hits = 0 AND steps_total > 0"
            " ORDER BY started_at DESC, id DESC LIMIT 1",
            (profile, context, containerfile, stage_target))
        return found[0] if found else None

    def build_with_layer(self, store: str, layer_id: str) -> tuple[int, int, int] | None:
        """(build, stage, step) of the newest build in ``store`` with a step whose layer is
        ``layer_id`` (built or reused there), or None."""
        if not layer_id:
            return None
        rows = self._query(
            "SELECT c.build_id, c.stage, c.step FROM cache_steps c JOIN builds b"
            " ON b.id = c.build_id WHERE b.store = ? AND c.layer_id = ?"
            " ORDER BY b.started_at DESC, b.id DESC LIMIT 1", (store, layer_id))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def secret_key(self) -> bytes:
        """The key of the HMACs that stand for secret build arguments: 32 random bytes in a
        private file next to the database (made once), so a copy of the database alone does
        not allow guessing them."""
        path = self.path.with_name(self.path.name + ".key")
        try:
            return self._read_key(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HistoryError(f"{path}: cannot read the history key: {exc.strerror}") from exc
        # Written whole under another name, then linked into place: a reader never sees half
        # a key, and of two processes making it at once the first one's wins.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            return self._read_key(path)
        except OSError as exc:
            raise HistoryError(f"{path}: cannot write the history key: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _read_key(path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(fd).st_mode & 0o077:  # made more open since: 0600 again
                os.fchmod(fd, 0o600)
            data = handle.read(33)
        if len(data) != 32:
            raise OSError(0, "not a 32-byte key", str(path))
        return data

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

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
        """Median duration of the ``last`` matching builds (recent ones predict best), or None.
        Unchanged builds, which ran nothing, say nothing of what a build takes."""
        where, params = "profile = ? AND status = ? AND NOT unchanged", [profile, status]
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
