-- A history database written by buildcage 7a94290's own History class,
-- schema 3 (3), dumped by make_old.py beside this file.
PRAGMA user_version = 3;
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL, profile TEXT NOT NULL, context TEXT NOT NULL,
    containerfile TEXT NOT NULL, tag TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, duration_s REAL NOT NULL, steps_total INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL, image_id TEXT NOT NULL, pushed TEXT NOT NULL,
    build_args TEXT NOT NULL, stage_target TEXT NOT NULL, no_cache INTEGER NOT NULL,
    warm INTEGER NOT NULL, loaded TEXT NOT NULL DEFAULT '',
    store TEXT NOT NULL DEFAULT '', bases TEXT NOT NULL DEFAULT ''
);
INSERT INTO "builds" VALUES(1,1700000000.0,'host-ro','/src/app','/src/app/Containerfile','localhost/app:latest','','succeeded',3.5,3,2,'sha256:abababababababababababababababababababababababababababababababab','','{"GREETING": "hi", "TOKEN": "hmac-sha256:c9f354e4dbeefcbd4bab17c5b15ec01d0f46b11b1acbac67994bf7ee7af6a60f"}','',0,1,'','host-ro','{"busybox": {"digest": "sha256:efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef", "id": "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"}}');
INSERT INTO "builds" VALUES(2,1700000100.0,'project','/src/other','','','','failed',1.0,1,0,'','','{}','',0,0,'','','');
CREATE TABLE cache_misses (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    stage INTEGER NOT NULL, step INTEGER NOT NULL, instruction TEXT NOT NULL,
    compared_with INTEGER, reasons TEXT NOT NULL,
    PRIMARY KEY (build_id, stage, step)
);
INSERT INTO "cache_misses" VALUES(1,1,3,'RUN test -n "$TOKEN"',NULL,'[{"kind": "first"}]');
CREATE TABLE cache_steps (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    stage INTEGER NOT NULL, step INTEGER NOT NULL, instruction TEXT NOT NULL,
    layer_id TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, files TEXT,
    PRIMARY KEY (build_id, stage, step)
);
INSERT INTO "cache_steps" VALUES(1,1,1,'FROM busybox','l1','from','{"base": "busybox"}',NULL);
INSERT INTO "cache_steps" VALUES(1,1,3,'RUN test -n "$TOKEN"','l3','built','{"args": {"GREETING": "hi", "TOKEN": "hmac-sha256:c9f354e4dbeefcbd4bab17c5b15ec01d0f46b11b1acbac67994bf7ee7af6a60f"}}',NULL);
CREATE TABLE steps (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, stage INTEGER NOT NULL, step INTEGER NOT NULL,
    instruction TEXT NOT NULL, duration_s REAL NOT NULL, cached INTEGER NOT NULL,
    PRIMARY KEY (build_id, seq)
);
INSERT INTO "steps" VALUES(1,0,1,1,'FROM busybox',0.0,1);
INSERT INTO "steps" VALUES(1,1,1,2,'ARG TOKEN',0.0,1);
INSERT INTO "steps" VALUES(1,2,1,3,'RUN test -n "$TOKEN"',1.2,0);
INSERT INTO "steps" VALUES(2,0,1,1,'FROM busybox',0.2,0);
CREATE INDEX builds_by_time ON builds (started_at);
CREATE INDEX builds_by_profile ON builds (profile, context, status, started_at);
CREATE INDEX builds_by_store ON builds (store, context, started_at);
CREATE INDEX cache_steps_by_layer ON cache_steps (layer_id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('builds',2);
