//! The trained indexes in memory, by collection.

use super::*;

/// The trained indexes in memory, by collection; loaded from the store on first use.
#[derive(Debug, Default)]
pub struct IndexCache {
    cached: std::sync::Mutex<std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>>,
    /// Counts forgets and clears: a load that began before one does not cache what it read
    /// ([`IndexCache::put_since`]), since the collection may be gone or made anew.
    epoch: AtomicU64,
    /// The newest training another host told of, per collection, while it may not be cached.
    heard: std::sync::Mutex<std::collections::HashMap<(Kind, String), i64>>,
    /// One lock per collection being loaded, so concurrent searches share one load.
    loading: std::sync::Mutex<LoadLocks>,
}

/// [`IndexCache`]'s load lock of each collection.
type LoadLocks = std::collections::HashMap<(Kind, String), std::sync::Arc<tokio::sync::Mutex<()>>>;

impl IndexCache {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock a load of the collection's index holds.
    pub fn load_lock(&self, kind: Kind, id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        // Locks nobody holds or waits for are dropped as others are made.
        loading.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
        loading.entry((kind, id.to_owned())).or_default().clone()
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<std::sync::Arc<Index>> {
        self.map().get(&(kind, id.to_owned())).cloned()
    }

    /// Caches `index` unless a newer training is cached already; returns the one cached.
    pub fn put(&self, kind: Kind, id: &str, index: std::sync::Arc<Index>) -> std::sync::Arc<Index> {
        Self::newest(&mut self.map(), kind, id, index)
    }

    fn newest(
        map: &mut std::collections::HashMap<(Kind, String), std::sync::Arc<Index>>,
        kind: Kind,
        id: &str,
        index: std::sync::Arc<Index>,
    ) -> std::sync::Arc<Index> {
        let slot = map.entry((kind, id.to_owned())).or_insert_with(|| index.clone());
        if slot.trained_ms < index.trained_ms {
            *slot = index;
        }
        slot.clone()
    }

    /// Drops the collection's index (the collection is gone or replaced).
    pub fn forget(&self, kind: Kind, id: &str) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(&(kind, id.to_owned()));
    }

    /// Drops every cached index (each is read again on its next use); returns how many.
    pub fn clear(&self) -> usize {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let n = map.len();
        map.clear();
        n
    }

    /// Read before a load; [`IndexCache::put_since`] caches its result only if nothing was
    /// forgotten meanwhile.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// [`IndexCache::put`], unless an index was forgotten since `epoch`: then `index` is
    /// returned for the call that loaded it, and not cached.
    pub fn put_since(&self, epoch: u64, kind: Kind, id: &str, index: std::sync::Arc<Index>) -> std::sync::Arc<Index> {
        let mut map = self.map();
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return index;
        }
        Self::newest(&mut map, kind, id, index)
    }

    /// Records that a training of the collection at `trained_ms` succeeded (another host's).
    pub fn heard(&self, kind: Kind, id: &str, trained_ms: i64) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let newest = heard.entry((kind, id.to_owned())).or_insert(trained_ms);
        *newest = (*newest).max(trained_ms);
    }

    /// Whether a training newer than `trained_ms` was heard of for the collection.
    pub fn newer_heard(&self, kind: Kind, id: &str, trained_ms: i64) -> bool {
        let heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.get(&(kind, id.to_owned())).is_some_and(|&t| t > trained_ms)
    }

    /// Marks a deleted face dead in the cached index, if one is cached.
    pub fn kill_face(&self, kind: Kind, id: &str, person_id: Option<&str>, face_id: &str) {
        if let Some(index) = self.get(kind, id) {
            index.kill_face(person_id, face_id);
        }
    }

    /// Marks a deleted person's faces dead in the cached index, if one is cached.
    pub fn kill_person(&self, kind: Kind, id: &str, person_id: &str) {
        if let Some(index) = self.get(kind, id) {
            index.kill_person(person_id);
        }
    }

    /// Bytes the cached indexes hold.
    pub fn memory_bytes(&self) -> usize {
        self.map().values().map(|i| i.memory_bytes()).sum()
    }
}
