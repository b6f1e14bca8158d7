-- Snapshots as rows copied inside the database, in one statement per table, instead of a JSON
-- blob: no size limit (a blob stops at 1 GB, about 700,000 faces as JSON), nothing held in the
-- server's memory to take or apply one, and nothing parsed to read one. A snapshot taken before
-- this migration keeps its JSON in snapshots.data (new ones leave it empty) until it expires.
CREATE TABLE snapshot_collections (
    sid TEXT PRIMARY KEY, name TEXT NOT NULL, user_data TEXT, recognition_model TEXT NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE snapshot_persons (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT);
CREATE INDEX snapshot_persons_by_snapshot ON snapshot_persons (sid);
CREATE TABLE snapshot_faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL, person_id TEXT, face_id TEXT NOT NULL, user_data TEXT,
    model TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX snapshot_faces_by_snapshot ON snapshot_faces (sid);
