//! The usage journal in PostgreSQL: every host journals its own requests here and any host's
//! heartbeat may send them; a record is marked once, by its id.

use super::*;

impl UsageJournal for PostgresStore {
    fn record_usage(&self, r: &UsageRecord) -> StoreResult<()> {
        crate::store::for_usage(None, || self.write(|tx| insert(tx, r)))
    }

    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, time_ms, meter, quantity, operation FROM usage WHERE sent_ms IS NULL ORDER BY seq LIMIT $1",
                &[&(limit as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| UsageRecord {
                    id: r.get(0),
                    time_ms: r.get(1),
                    meter: r.get(2),
                    quantity: r.get::<_, i32>(3).max(0) as u32,
                    operation: r.get(4),
                })
                .collect())
        })
    }

    fn mark_usage_sent(&self, ids: &[String], now_ms: i64) -> StoreResult<()> {
        crate::store::for_usage(None, || {
            self.write(|tx| {
                tx.execute("UPDATE usage SET sent_ms = $2 WHERE id = ANY($1) AND sent_ms IS NULL", &[&ids, &now_ms])?;
                Ok(())
            })
        })
    }

    fn usage_backlog(&self) -> StoreResult<u64> {
        self.read(|tx| {
            Ok(tx.query_one("SELECT COUNT(*) FROM usage WHERE sent_ms IS NULL", &[])?.get::<_, i64>(0).max(0) as u64)
        })
    }
}

/// Appends one record (on its own, or inside a billed write's transaction).
pub(super) fn insert(tx: &mut Tx<'_>, r: &UsageRecord) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO usage (id, time_ms, meter, quantity, operation) VALUES ($1, $2, $3, $4, $5)",
        &[&r.id, &r.time_ms, &r.meter, &(r.quantity.min(i32::MAX as u32) as i32), &r.operation],
    )?;
    Ok(())
}
