-- Leases: the hosts of one database take turns at a training or a snapshot operation through a
-- row each (key, its holder, the holder's token, an expiry by the database's clock), renewed
-- while the work runs and free once it expires. Rows, not session advisory locks: a pooler in
-- transaction mode keeps them, and a dropped connection does not release them.
CREATE TABLE leases (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
-- The usage journal's records are claimed by the host that sends them (for 30 s, renewed while
-- the meter is away), so two hosts' heartbeats do not send the same records; a dead host's claim
-- expires and another host sends them.
ALTER TABLE usage ADD COLUMN claimed_by TEXT, ADD COLUMN claimed_until TIMESTAMPTZ;
