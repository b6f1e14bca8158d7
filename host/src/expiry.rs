//! What expires, beside the API: faceIds past their time to live, snapshots past their 48 hours,
//! and the trainings and snapshot operations of a host that stopped (with several hosts, once
//! their leases expire). `spawn` starts the sweepers `server::run` keeps while it serves.

use std::time::Duration;

use crate::api::state::Shared;
use crate::store::Snapshot;
use crate::time::now_ms;

/// Snapshots expire this long after they are taken, as on Azure.
pub const SNAPSHOT_LIFETIME_MS: i64 = 48 * 3600 * 1000;

/// Whether a snapshot is still within its lifetime (the sweeper deletes the others every minute).
pub fn live(s: &Snapshot) -> bool {
    s.created_ms >= now_ms() - SNAPSHOT_LIFETIME_MS
}

/// Deletes expired snapshots.
pub async fn expire_snapshots(state: &Shared) {
    let before = now_ms() - SNAPSHOT_LIFETIME_MS;
    match state.db(move |s| s.delete_snapshots_before(before)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "expired snapshots deleted"),
        Err(e) => tracing::warn!(error = %e, "expired snapshots could not be deleted"),
    }
}

/// Fails the trainings and snapshot operations whose host's lease expired.
async fn fail_expired_leases(state: &Shared) {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.fail_expired(now_ms())).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::warn!(count = n, "trainings or snapshot operations of a stopped host marked failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "looking for the work of stopped hosts failed"),
        Err(e) => tracing::warn!(error = %e, "looking for the work of stopped hosts failed"),
    }
}

/// Starts the sweepers: every minute, faceIds and snapshots; every 20 s, the work of stopped
/// hosts (at most 20 s after their lease expired).
pub fn spawn(state: &Shared) {
    let sweeper = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            sweeper.face_ids.sweep_all().await;
            expire_snapshots(&sweeper).await;
        }
    });
    let leases = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(20));
        loop {
            tick.tick().await;
            fail_expired_leases(&leases).await;
        }
    });
}
