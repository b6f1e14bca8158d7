//! Leases: what a training or snapshot operation holds across the hosts of one database, and
//! the fence its writes check.

use super::*;

/// A lease held across the hosts of one database while a training or snapshot operation runs
/// (PostgreSQL: a row in `leases`, renewed by a thread of its own), released when dropped; with
/// SQLite, which one host owns, there is nothing to hold.
pub struct Hold {
    inner: Option<Box<dyn Send>>,
    pub(super) lease: Option<std::sync::Arc<LeaseState>>,
}

/// What a held lease's renewals tell its holder.
#[derive(Debug)]
pub(crate) struct LeaseState {
    pub(crate) key: String,
    pub(crate) token: String,
    pub(crate) ttl: std::time::Duration,
    /// Set when a renewal found the lease gone or taken.
    pub(crate) lost: std::sync::atomic::AtomicBool,
    /// When it was taken; `renewed_ms` counts from here.
    pub(crate) since: std::time::Instant,
    /// Milliseconds after `since` of the last renewal that succeeded.
    pub(crate) renewed_ms: std::sync::atomic::AtomicU64,
}

impl LeaseState {
    pub(crate) fn renewed(&self) {
        self.renewed_ms.store(self.since.elapsed().as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Hold {
    pub fn none() -> Hold {
        Hold { inner: None, lease: None }
    }

    pub(crate) fn held(inner: Box<dyn Send>, lease: std::sync::Arc<LeaseState>) -> Hold {
        Hold { inner: Some(inner), lease: Some(lease) }
    }

    /// Whether the lease may be lost: a renewal found it taken, or none has succeeded for three
    /// quarters of its time to live (the database or the pool did not answer), after which
    /// another host may take it. The work it guards must not write its result.
    pub fn lost(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| {
            let now = l.since.elapsed().as_millis() as u64;
            let quiet = now.saturating_sub(l.renewed_ms.load(std::sync::atomic::Ordering::SeqCst));
            l.lost.load(std::sync::atomic::Ordering::SeqCst) || quiet >= (l.ttl * 3 / 4).as_millis() as u64
        })
    }

    /// The lease's key and token, for [`fenced`] writes; `None` where nothing is held.
    pub fn fence(&self) -> Option<(String, String)> {
        self.lease.as_ref().map(|l| (l.key.clone(), l.token.clone()))
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_some() { "Hold(held)" } else { "Hold(none)" })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // What it holds (a thread that releases the lease through a blocking client) may not be
        // waited for on an async worker.
        if let Some(inner) = self.inner.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(inner))),
                Err(_) => drop(inner),
            }
        }
    }
}

/// What a training of the collection holds ([`CollectionStore::hold`]).
pub fn training_key(kind: Kind, cid: &str) -> String {
    format!("face-training/{}/{cid}", kind.name())
}

/// What a snapshot operation holds while it runs.
pub fn operation_key(id: &str) -> String {
    format!("face-operation/{id}")
}

thread_local! {
    static FENCE: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the store's writes on this thread fenced by `fence` (a [`Hold::fence`]): each
/// write checks, in its own transaction, that the lease is still this holder's and alive, and
/// fails with [`StoreError::NotHeld`] otherwise, so a host whose lease expired cannot write over
/// the work of the host that took it.
pub fn fenced<T>(fence: Option<(String, String)>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<(String, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FENCE.set(self.0.take());
        }
    }
    let _restore = Restore(FENCE.replace(fence));
    f()
}

/// The lease the writes on this thread must hold (see [`fenced`]).
pub(super) fn fence() -> Option<(String, String)> {
    FENCE.with_borrow(Clone::clone)
}
