"""Writes a history database with an old buildcage's own History class, then dumps it as SQL
(the schemaN.sql files beside this script, read by tests/unit/test_history_migration.py).

Made so, from the repository root (TREE: an empty directory):
    git archive COMMIT tui | tar -x -C TREE
    python tests/data/history/make_old.py TREE COMMIT KIND tests/data/history/schemaKIND.sql
with 44c36bb 1 (schema 1), 316b4c2 2-load (main's --load schema 2), 447bebc 2-why (the why
branch's own schema 2) and 7a94290 3 (schema 3, before plan_key). Each has a build with a
secret-looking build argument, stored in clear by the versions before schema 3, and one
without.
"""

import importlib
import os
import sqlite3
import sys
from pathlib import Path


def main(tree: Path, commit: str, kind: str, out: Path) -> None:
    sys.path.insert(0, str(tree))
    os.environ["XDG_DATA_HOME"] = str(tree / "data")
    h = importlib.import_module("tui.engine.history")
    db_path = tree / f"{kind}.sqlite3"
    db_path.unlink(missing_ok=True)
    hist = h.History(db_path)
    steps = [h.StepRecord(1, 1, "FROM busybox", 0.0, True),
             h.StepRecord(1, 2, "ARG TOKEN", 0.0, True),
             h.StepRecord(1, 3, 'RUN test -n "$TOKEN"', 1.2, False)]
    extra: dict[str, object] = {}
    if kind == "2-load":
        extra = {"loaded": "localhost/app:latest"}
    if kind in ("2-why", "3"):
        extra = {"store": "host-ro",
                 "bases": {"busybox": {"id": "sha256:" + "cd" * 32,
                                       "digest": "sha256:" + "ef" * 32}}}
    first = h.BuildRecord(
        started_at=1700000000.0, profile="host-ro", context="/src/app",
        containerfile="/src/app/Containerfile", tag="localhost/app:latest", status="succeeded",
        duration_s=3.5, steps_total=3, cache_hits=2, image_id="sha256:" + "ab" * 32,
        build_args={"TOKEN": "hunter2", "GREETING": "hi"}, steps=steps, **extra)
    second = h.BuildRecord(
        started_at=1700000100.0, profile="project", context="/src/other", status="failed",
        duration_s=1.0, steps_total=1, steps=[h.StepRecord(1, 1, "FROM busybox", 0.2, False)])
    if kind in ("2-why", "3"):
        digest = importlib.import_module("tui.engine.cache_inputs").secret_digest
        key = hist.secret_key()
        args = {"TOKEN": digest(key, "TOKEN", "hunter2"), "GREETING": "hi"}
        cache = [h.CacheStep(1, 1, "FROM busybox", "l1", "from", {"base": "busybox"}),
                 h.CacheStep(1, 3, 'RUN test -n "$TOKEN"', "l3", "built", {"args": args})]
        misses = [h.CacheMissRecord(1, 3, 'RUN test -n "$TOKEN"', None, [{"kind": "first"}])]
        hist.add(first, cache=cache, misses=misses)
    else:
        hist.add(first)
    hist.add(second)
    hist.close()
    db = sqlite3.connect(db_path)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    lines = [f"-- A history database written by buildcage {commit}'s own History class,",
             f"-- schema {version} ({kind}), dumped by make_old.py beside this file.",
             f"PRAGMA user_version = {version};"]
    lines += [line for line in db.iterdump() if line not in ("BEGIN TRANSACTION;", "COMMIT;")]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
