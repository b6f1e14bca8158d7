//! Leases: how the hosts of one database take turns at a training or a snapshot operation. A
//! lease is a row (`leases`: key, owner, token, expiry by the database's clock), taken and renewed
//! in short transactions on the pool's connections, so a pooler in transaction mode keeps it, a
//! dropped connection does not release it, and no connection is held while the work runs. The
//! holder renews it every third of its time to live; a host that dies stops renewing, and the
//! lease is free once it expires. Its work is then marked failed by whichever host sweeps next
//! ([`PostgresStore::fail_expired`]), not before.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::LeaseState;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::*;

/// How long a lease lives without renewal, and how long a host waits for another's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseTimes {
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
}

impl Default for LeaseTimes {
    /// 30 s to live (renewed every 10 s); a wait of up to 10 minutes, longer than a training of a
    /// million faces.
    fn default() -> LeaseTimes {
        LeaseTimes { ttl: Duration::from_secs(30), wait: Duration::from_secs(600) }
    }
}

/// This store as a lease's (and a usage claim's) owner: the host's name (a container's id in a
/// container), the process id, and a few random characters (two stores of one process, as in
/// tests, are two owners), which the wait's message and the `leases` table show.
pub(super) fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    let mut nonce = uuid::Uuid::new_v4().simple().to_string();
    nonce.truncate(6);
    format!("{host}/{}/{nonce}", std::process::id())
}

impl PostgresStore {
    /// Sets how long leases live and how long a wait for one lasts (tests).
    #[cfg(test)]
    pub(crate) fn set_lease_times(&mut self, times: LeaseTimes) {
        self.leases = times;
    }

    /// Takes the lease `key`, waiting while another owner's is alive, for at most the wait time;
    /// then a thread renews it until the returned [`Hold`] drops, which releases it.
    pub(super) fn take_lease(&self, key: &str) -> StoreResult<Hold> {
        let token = uuid::Uuid::new_v4().to_string();
        let times = self.leases;
        let started = Instant::now();
        let mut told = false;
        loop {
            if self.db.try_lease(key, &self.owner, &token, times.ttl)? {
                break;
            }
            let holder = self.db.lease_holder(key)?;
            let waited = started.elapsed();
            let Some((owner, left)) = holder else {
                // Released between the two statements: take it at once.
                continue;
            };
            if waited >= times.wait {
                return Err(StoreError::NotHeld(format!(
                    "{key} is held by {owner} (its lease runs {left:.0} s more), and this host waited {} s for it; \
                     try again when that host's work ends",
                    waited.as_secs()
                )));
            }
            if !told {
                tracing::info!(key, holder = %owner, seconds_left = left, "waiting for another host's lease");
                told = true;
            }
            std::thread::sleep((times.ttl / 8).min(Duration::from_millis(500)));
        }
        if told {
            let stats = &self.db.stats;
            stats.lease_waits.fetch_add(1, Ordering::Relaxed);
            stats.lease_wait_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        let state = Arc::new(LeaseState {
            key: key.to_owned(),
            token,
            ttl: times.ttl,
            lost: AtomicBool::new(false),
            since: Instant::now(),
            renewed_ms: Default::default(),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = Renewer { db: self.db.clone(), state: state.clone() };
        let thread = std::thread::Builder::new()
            .name("face-lease".into())
            .spawn(move || renewer.run(&stopped))
            .map_err(|e| StoreError::Internal(format!("cannot start the thread that renews a lease: {e}")))?;
        Ok(Hold::held(Box::new(Lease { stop: Some(stop), thread: Some(thread) }), state))
    }
}

impl Connections {
    /// Takes `key` for `token` if no live lease has it; whether it did.
    fn try_lease(&self, key: &str, owner: &str, token: &str, ttl: Duration) -> StoreResult<bool> {
        self.short(|tx| {
            Ok(tx
                .query_opt(
                    "INSERT INTO leases (key, owner, token, taken_at, expires_at) \
                     VALUES ($1, $2, $3, now(), now() + make_interval(secs => $4)) \
                     ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token, \
                     taken_at = EXCLUDED.taken_at, expires_at = EXCLUDED.expires_at \
                     WHERE leases.expires_at <= now() RETURNING token",
                    &[&key, &owner, &token, &ttl.as_secs_f64()],
                )?
                .is_some())
        })
    }

    /// Who holds `key` and for how many seconds more, if anyone.
    pub(super) fn lease_holder(&self, key: &str) -> StoreResult<Option<(String, f64)>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT owner, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM leases WHERE key = $1",
                    &[&key],
                )?
                .map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Extends `key`'s lease by `ttl` from now if `token` still holds it, alive; whether it
    /// does. An expired lease is not revived, even if no one took it: a sweep may have failed
    /// its work meanwhile.
    pub(super) fn renew_lease(&self, key: &str, token: &str, ttl: Duration) -> StoreResult<bool> {
        self.short(|tx| {
            Ok(tx.execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3) \
                 WHERE key = $1 AND token = $2 AND expires_at > now()",
                &[&key, &token, &ttl.as_secs_f64()],
            )? == 1)
        })
    }

    /// Checks, in the write's transaction, that `token` holds `key` alive, and keeps the row
    /// locked until the transaction ends, so no other host takes it over meanwhile.
    pub(super) fn check_fence(tx: &mut Tx<'_>, key: &str, token: &str) -> StoreResult<()> {
        let held = tx.query_opt(
            "SELECT 1 FROM leases WHERE key = $1 AND token = $2 AND expires_at > now() FOR UPDATE",
            &[&key, &token],
        )?;
        match held {
            Some(_) => Ok(()),
            None => Err(StoreError::NotHeld(format!(
                "{key}: this host's lease expired (the database did not answer its renewals in time); another \
                 host's work stands, and this host's result is not written"
            ))),
        }
    }

    fn release_lease(&self, key: &str, token: &str) -> StoreResult<()> {
        self.short(|tx| tx.execute("DELETE FROM leases WHERE key = $1 AND token = $2", &[&key, &token]).map(drop))
    }

    /// One short transaction of its own, with nothing of a request's usage in it.
    fn short<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.transaction(Client::transaction, |tx| {
            let mut tx = Tx { tx, changed: 0 };
            let out = f(&mut tx)?;
            tx.tx.commit()?;
            Ok(out)
        })
    }
}

/// A lease held: dropping it stops the renewals and releases the lease.
struct Lease {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(super) struct Renewer {
    pub(super) db: Arc<Connections>,
    pub(super) state: Arc<LeaseState>,
}

/// What one renewal found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Renewal {
    Renewed,
    /// The lease expired or was taken: the work is told ([`Hold::lost`]).
    Lost,
    /// The database did not answer.
    Failed,
}

impl Renewer {
    /// Renews every third of the time to live until told to stop, then releases the lease. A
    /// renewal that fails (the database is away) is tried again sooner; one that finds the lease
    /// expired or taken ends the renewals.
    fn run(self, stop: &mpsc::Receiver<()>) {
        let s = &self.state;
        s.renewed();
        let mut every = s.ttl / 3;
        // Until the hold drops (the sender goes: disconnected).
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            match self.renew_once() {
                Renewal::Renewed => every = s.ttl / 3,
                Renewal::Lost => return,
                Renewal::Failed => every = s.ttl / 10,
            }
        }
        if let Err(e) = self.db.release_lease(&s.key, &s.token) {
            tracing::warn!(key = %s.key, error = %e, "releasing a lease failed; it expires by itself");
        }
    }

    /// One renewal, its outcome recorded in the lease's state.
    pub(super) fn renew_once(&self) -> Renewal {
        let s = &self.state;
        match self.db.renew_lease(&s.key, &s.token, s.ttl) {
            Ok(true) => {
                s.renewed();
                Renewal::Renewed
            }
            Ok(false) => {
                tracing::error!(key = %s.key, "a lease expired before it was renewed; this host's work on it stops");
                s.lost.store(true, Ordering::SeqCst);
                Renewal::Lost
            }
            Err(e) => {
                tracing::warn!(key = %s.key, error = %e, "renewing a lease failed; trying again");
                Renewal::Failed
            }
        }
    }
}
