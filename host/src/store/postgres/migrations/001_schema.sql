-- The face database on PostgreSQL: the tables of the SQLite store's migrations 001-004 as they
-- stand, in PostgreSQL's types (embeddings and index parts are BYTEA, times BIGINT ms). Ids sort
-- by their bytes (COLLATE "C"), as in SQLite, whatever the database's collation: pages follow
-- one order on every host.
CREATE TABLE collections (
    kind TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, name TEXT NOT NULL, user_data TEXT,
    recognition_model TEXT NOT NULL, created_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE persons (
    seq BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT COLLATE "C" NOT NULL, name TEXT NOT NULL, user_data TEXT,
    UNIQUE (kind, cid, person_id));
-- person_id is '' for a list's faces, as in the SQLite store.
CREATE TABLE faces (
    seq BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT COLLATE "C" NOT NULL, face_id TEXT COLLATE "C" NOT NULL,
    user_data TEXT, model TEXT NOT NULL, embedding BYTEA NOT NULL,
    UNIQUE (kind, cid, face_id));
CREATE INDEX faces_by_person ON faces (kind, cid, person_id, seq);
CREATE TABLE training (
    kind TEXT NOT NULL, cid TEXT NOT NULL, state TEXT NOT NULL, created_ms BIGINT NOT NULL,
    last_action_ms BIGINT NOT NULL, last_success_ms BIGINT, message TEXT,
    PRIMARY KEY (kind, cid));
CREATE TABLE operations (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_ms BIGINT NOT NULL, last_action_ms BIGINT NOT NULL,
    resource_location TEXT, message TEXT);
-- The usage journal: one row per billable transaction, marked when the meter acknowledged it.
-- Every host writes its own records here; a record's id is unique, so none is counted twice.
CREATE TABLE usage (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, time_ms BIGINT NOT NULL, meter TEXT NOT NULL, quantity INTEGER NOT NULL,
    operation TEXT NOT NULL, sent_ms BIGINT);
CREATE INDEX usage_unsent ON usage (seq) WHERE sent_ms IS NULL;
-- Counts kept by triggers for the quotas: once per statement, from its transition table, so
-- copying or deleting a million faces updates a count once, not a million times.
CREATE TABLE counts (
    kind TEXT NOT NULL, cid TEXT NOT NULL,
    persons BIGINT NOT NULL DEFAULT 0, faces BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, cid));
CREATE FUNCTION persons_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO counts (kind, cid, persons) SELECT kind, cid, count(*) FROM added GROUP BY kind, cid
        ON CONFLICT (kind, cid) DO UPDATE SET persons = counts.persons + EXCLUDED.persons;
    RETURN NULL;
END $$;
CREATE FUNCTION persons_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counts c SET persons = c.persons - r.n
        FROM (SELECT kind, cid, count(*) AS n FROM removed GROUP BY kind, cid) r
        WHERE c.kind = r.kind AND c.cid = r.cid;
    RETURN NULL;
END $$;
CREATE FUNCTION faces_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO counts (kind, cid, faces) SELECT kind, cid, count(*) FROM added GROUP BY kind, cid
        ON CONFLICT (kind, cid) DO UPDATE SET faces = counts.faces + EXCLUDED.faces;
    RETURN NULL;
END $$;
CREATE FUNCTION faces_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counts c SET faces = c.faces - r.n
        FROM (SELECT kind, cid, count(*) AS n FROM removed GROUP BY kind, cid) r
        WHERE c.kind = r.kind AND c.cid = r.cid;
    RETURN NULL;
END $$;
CREATE TRIGGER persons_counted AFTER INSERT ON persons REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION persons_added();
CREATE TRIGGER persons_uncounted AFTER DELETE ON persons REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION persons_removed();
CREATE TRIGGER faces_counted AFTER INSERT ON faces REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION faces_added();
CREATE TRIGGER faces_uncounted AFTER DELETE ON faces REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION faces_removed();
-- The trained index in its compact binary form, in parts, and the faces deleted since.
CREATE TABLE trained_index (
    kind TEXT NOT NULL, cid TEXT NOT NULL, trained_ms BIGINT NOT NULL, part INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (kind, cid, trained_ms, part));
CREATE TABLE trained_dead (
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT NOT NULL, face_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL);
CREATE INDEX trained_dead_by_collection ON trained_dead (kind, cid);
-- Snapshots as rows copied inside the database.
CREATE TABLE snapshots (
    id TEXT COLLATE "C" PRIMARY KEY, kind TEXT NOT NULL, object_id TEXT NOT NULL, apply_scope TEXT NOT NULL,
    user_data TEXT, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE TABLE snapshot_collections (
    sid TEXT PRIMARY KEY, name TEXT NOT NULL, user_data TEXT, recognition_model TEXT NOT NULL,
    created_ms BIGINT NOT NULL);
CREATE TABLE snapshot_persons (
    seq BIGSERIAL PRIMARY KEY,
    sid TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT);
CREATE INDEX snapshot_persons_by_snapshot ON snapshot_persons (sid);
CREATE TABLE snapshot_faces (
    seq BIGSERIAL PRIMARY KEY,
    sid TEXT NOT NULL, person_id TEXT NOT NULL, face_id TEXT NOT NULL, user_data TEXT,
    model TEXT NOT NULL, embedding BYTEA NOT NULL);
CREATE INDEX snapshot_faces_by_snapshot ON snapshot_faces (sid);
-- faceIds from detect, which every host answers for until they expire. Unlogged: a faceId is a
-- cache of at most a day, not worth the write-ahead log; a crash of the database loses them,
-- as a restart of the one host does with the other scenarios.
CREATE UNLOGGED TABLE face_ids (
    id TEXT PRIMARY KEY, recognition TEXT NOT NULL, model TEXT NOT NULL, embedding BYTEA NOT NULL,
    expires_ms BIGINT NOT NULL);
CREATE INDEX face_ids_by_expiry ON face_ids (expires_ms);
