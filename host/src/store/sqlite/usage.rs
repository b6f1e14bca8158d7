//! The usage journal in SQLite.

use rusqlite::{Connection, params};

use super::*;

impl UsageJournal for SqliteStore {
    fn record_usage(&self, r: &UsageRecord) -> StoreResult<()> {
        self.with(|conn| insert(conn, r))
    }

    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>> {
        self.read(|conn| Self::usage_rows(conn, limit))
    }

    fn mark_usage_sent(&self, ids: &[String], now_ms: i64) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached("UPDATE usage SET sent_ms = ?2 WHERE id = ?1 AND sent_ms IS NULL")?;
                for id in ids {
                    stmt.execute(params![id, now_ms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn usage_backlog(&self) -> StoreResult<u64> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM usage WHERE sent_ms IS NULL", [], |r| r.get(0))?))
    }
}

/// Appends one record (on its own, or inside a billed write's transaction).
pub(super) fn insert(conn: &Connection, r: &UsageRecord) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO usage (id, time_ms, meter, quantity, operation) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.id, r.time_ms, r.meter, r.quantity, r.operation],
    )?;
    Ok(())
}

impl SqliteStore {
    fn usage_rows(conn: &Connection, limit: usize) -> StoreResult<Vec<UsageRecord>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, time_ms, meter, quantity, operation FROM usage WHERE sent_ms IS NULL ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(UsageRecord {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    meter: r.get(2)?,
                    quantity: r.get(3)?,
                    operation: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
