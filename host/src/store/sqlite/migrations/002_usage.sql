-- The usage journal: one row per billable transaction, marked when the meter acknowledged it.
CREATE TABLE usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL, meter TEXT NOT NULL, quantity INTEGER NOT NULL,
    operation TEXT NOT NULL, sent_ms INTEGER);
CREATE INDEX usage_unsent ON usage (sent_ms, seq);
