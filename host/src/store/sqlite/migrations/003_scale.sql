-- A million faces: counts kept by triggers for the quotas, the trained index in a compact
-- binary form (in parts, so no one write holds the database long), and the faces deleted since
-- the last training, which a loaded index marks dead.
CREATE TABLE counts (
    kind TEXT NOT NULL, cid TEXT NOT NULL,
    persons INTEGER NOT NULL DEFAULT 0, faces INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, cid));
INSERT INTO counts (kind, cid, persons, faces)
    SELECT c.kind, c.id,
        (SELECT COUNT(*) FROM persons p WHERE p.kind = c.kind AND p.cid = c.id),
        (SELECT COUNT(*) FROM faces f WHERE f.kind = c.kind AND f.cid = c.id)
    FROM collections c;
CREATE TRIGGER persons_counted AFTER INSERT ON persons BEGIN
    INSERT INTO counts (kind, cid, persons) VALUES (NEW.kind, NEW.cid, 1)
        ON CONFLICT (kind, cid) DO UPDATE SET persons = persons + 1;
END;
CREATE TRIGGER persons_uncounted AFTER DELETE ON persons BEGIN
    UPDATE counts SET persons = persons - 1 WHERE kind = OLD.kind AND cid = OLD.cid;
END;
CREATE TRIGGER faces_counted AFTER INSERT ON faces BEGIN
    INSERT INTO counts (kind, cid, faces) VALUES (NEW.kind, NEW.cid, 1)
        ON CONFLICT (kind, cid) DO UPDATE SET faces = faces + 1;
END;
CREATE TRIGGER faces_uncounted AFTER DELETE ON faces BEGIN
    UPDATE counts SET faces = faces - 1 WHERE kind = OLD.kind AND cid = OLD.cid;
END;
CREATE TABLE trained_index (
    kind TEXT NOT NULL, cid TEXT NOT NULL, trained_ms INTEGER NOT NULL, part INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (kind, cid, trained_ms, part));
CREATE TABLE trained_dead (
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT NOT NULL, face_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL);
CREATE INDEX trained_dead_by_collection ON trained_dead (kind, cid);
