//! The usage journal in PostgreSQL: every host journals its own requests here, and a host's
//! heartbeat sends the records it claims ([`USAGE_CLAIM`]), so no record is sent by two hosts in
//! normal operation; a record is marked once, by its id, and the meter counts an id once.

/// How long a host's claim on unsent records lasts: renewed by each heartbeat while the meter is
/// away, and taken over by another host once the claimant stops.
const USAGE_CLAIM: std::time::Duration = std::time::Duration::from_secs(30);

use super::*;

impl UsageJournal for PostgresStore {
    fn record_usage(&self, r: &UsageRecord) -> StoreResult<()> {
        crate::store::for_usage(None, || self.write(|tx| insert(tx, r)))
    }

    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>> {
        // The oldest unsent records no other host has claimed (or whose claim expired), claimed
        // for this one: each is sent by one host at a time. Rows another host's claim is being
        // written on are skipped, not waited for.
        let claim = USAGE_CLAIM.as_secs_f64();
        crate::store::for_usage(None, || {
            self.write(|tx| {
                let mut rows = tx.query(
                    "UPDATE usage u SET claimed_by = $2, claimed_until = now() + make_interval(secs => $3) \
                     FROM (SELECT seq FROM usage WHERE sent_ms IS NULL \
                     AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $2) \
                     ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) c WHERE u.seq = c.seq \
                     RETURNING u.seq, u.id, u.time_ms, u.meter, u.quantity, u.operation",
                    &[&(limit as i64), &self.owner, &claim],
                )?;
                rows.sort_by_key(|r| r.get::<_, i64>(0));
                Ok(rows
                    .iter()
                    .map(|r| UsageRecord {
                        id: r.get(1),
                        time_ms: r.get(2),
                        meter: r.get(3),
                        quantity: r.get::<_, i32>(4).max(0) as u32,
                        operation: r.get(5),
                    })
                    .collect())
            })
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
