//! What every request may use: the engine pool, the store, faceIds, trained indexes, billing,
//! and the admission to the face engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::budget::{Held, Image, MemoryBudget, decoded_bytes};
use super::error::{ApiError, ApiResult};
use crate::billing::{Billing, REQUEST_USAGE};
use crate::engine::Analyser;
use crate::faces::FaceIds;
use crate::fetch::Fetcher;
use crate::index::IndexCache;
use crate::metrics::Metrics;
use crate::settings::Secret;
use crate::store::{Kind, Store, StoreError, for_usage};

/// Everything a request may use.
#[derive(Debug)]
pub struct AppState {
    /// The guest pool when serving; a test engine in tests of the resources.
    pub engine: Arc<dyn Analyser>,
    pub store: Arc<dyn Store>,
    pub face_ids: FaceIds,
    /// Collections training now; `true` when another round was asked for meanwhile.
    pub training: Mutex<HashMap<(Kind, String), bool>>,
    /// Trained indexes, loaded from the store on first use.
    pub indexes: IndexCache,
    pub fetcher: Fetcher,
    /// The key requests must carry in `Ocp-Apim-Subscription-Key`; `None` turns the check off.
    pub api_key: Option<Secret>,
    pub billing: Arc<Billing>,
    /// Whether `store` is also the usage journal (not with `Storage:Scenario=Memory`, whose
    /// journal is a file of its own), so billed writes journal their usage with their effect.
    pub store_is_journal: bool,
    /// The bytes requests may hold: bodies, fetched images, decoded pixels (`Server:MemoryBudgetMiB`).
    pub budget: MemoryBudget,
    pub metrics: Metrics,
    /// Requests holding or waiting for an engine instance, and the most allowed before 429.
    pub engine_queue: AtomicUsize,
    pub max_engine_queue: usize,
    /// The in-browser demo's folder (web/dist), if built.
    pub demo: Option<std::path::PathBuf>,
    /// Swagger UI's files (npm swagger-ui-dist), if installed.
    pub swagger_ui: Option<std::path::PathBuf>,
    pub started: Instant,
}

pub type Shared = Arc<AppState>;

/// An image's admission to the engine: its place in the queue and the budget its bytes and
/// decoded pixels hold, given back on drop (after the engine call).
#[derive(Debug)]
pub struct Admission<'a> {
    _slot: QueueSlot<'a>,
    _held: Held,
}

/// A place in the engine queue, given back on drop.
#[derive(Debug)]
pub struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    /// A place in the engine queue, or 429 RateLimitExceeded when `max_engine_queue` requests
    /// already hold or wait for an engine instance.
    pub fn admit(&self) -> ApiResult<QueueSlot<'_>> {
        let before = self.engine_queue.fetch_add(1, Ordering::SeqCst);
        let slot = QueueSlot(&self.engine_queue);
        if before >= self.max_engine_queue {
            drop(slot);
            return Err(ApiError::RateLimitExceeded { waiting: before });
        }
        Ok(slot)
    }

    /// Admits an image to the engine: its decoded pixels join what it holds of the memory
    /// budget, and it takes a place in the engine queue; 429 when either is full.
    pub fn admit_image(&self, image: Image) -> ApiResult<(Vec<u8>, Admission<'_>)> {
        let Image { bytes, mut held } = image;
        self.budget.grow(&mut held, decoded_bytes(&bytes))?;
        let slot = self.admit()?;
        Ok((bytes, Admission { _slot: slot, _held: held }))
    }

    /// Runs CPU work of a request (searching an index, grouping) on the blocking pool, within
    /// the same admission as engine calls: 429 when the queue is full.
    pub async fn compute<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let slot = self.admit()?;
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(format!("a search task failed: {e}")));
        drop(slot);
        out
    }

    /// Runs a store call off the async runtime. Within a billable request, and when the store is
    /// also the usage journal, its first write that changes rows journals the request's usage.
    pub async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let usage = if self.store_is_journal { REQUEST_USAGE.try_with(Arc::clone).ok() } else { None };
        tokio::task::spawn_blocking(move || for_usage(usage, || f(store.as_ref())))
            .await
            .map_err(|e| StoreError::Internal(format!("the database task failed: {e}")))?
    }
}
