-- Groups and lists, persons, persisted faces, training results, snapshots and their operations.
CREATE TABLE collections (
    kind TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT,
    recognition_model TEXT NOT NULL, created_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE persons (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT,
    UNIQUE (kind, cid, person_id));
CREATE TABLE faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT, face_id TEXT NOT NULL, user_data TEXT,
    model TEXT NOT NULL, embedding BLOB NOT NULL,
    UNIQUE (kind, cid, face_id));
CREATE INDEX faces_by_person ON faces (kind, cid, person_id);
CREATE TABLE training (
    kind TEXT NOT NULL, cid TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL,
    last_action_ms INTEGER NOT NULL, last_success_ms INTEGER, message TEXT,
    PRIMARY KEY (kind, cid));
CREATE TABLE trained_faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT, face_id TEXT NOT NULL,
    model TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX trained_by_collection ON trained_faces (kind, cid);
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, object_id TEXT NOT NULL, apply_scope TEXT NOT NULL,
    user_data TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE operations (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_ms INTEGER NOT NULL, last_action_ms INTEGER NOT NULL,
    resource_location TEXT, message TEXT);
