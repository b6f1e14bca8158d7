//! The face database: groups and lists, persons, persisted faces with their embeddings, training
//! results, snapshots and snapshot operations.
//!
//! One [`Store`] trait with the domain types; [`SqliteStore`] (sqlite.rs, migrations in
//! `migrations/*.sql`) implements it on a file in WAL mode (the default, so data
//! survives restarts) or in memory (`Storage:Scenario=Memory`, for tests and for parity with the
//! Azure container's default). Every write is one transaction: a failure leaves nothing
//! half-written. Embeddings are little-endian f32 blobs beside their concrete model id.

mod bulk;
mod lease;
mod postgres;
mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use serde::{Deserialize, Serialize};

pub use bulk::{BulkSink, Loaded, bulk_load};
pub(crate) use lease::LeaseState;
use lease::fence;
pub use lease::{Hold, fenced, operation_key, training_key};
pub use postgres::{PostgresStore, check_connection_string};
pub use sqlite::SqliteStore;

/// An embedding as both stores keep it: little-endian f32s.
fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The stored person id of a face: `""` for a list's faces.
fn person_key(p: Option<&str>) -> &str {
    p.unwrap_or("")
}

/// The four kinds of face collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    PersonGroup,
    LargePersonGroup,
    FaceList,
    LargeFaceList,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::PersonGroup, Kind::LargePersonGroup, Kind::FaceList, Kind::LargeFaceList];

    /// The name used in the API (snapshot `type`, error codes).
    pub fn name(self) -> &'static str {
        match self {
            Kind::PersonGroup => "PersonGroup",
            Kind::LargePersonGroup => "LargePersonGroup",
            Kind::FaceList => "FaceList",
            Kind::LargeFaceList => "LargeFaceList",
        }
    }

    /// The name in a sentence, e.g. `Person group`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::PersonGroup => "Person group",
            Kind::LargePersonGroup => "Large person group",
            Kind::FaceList => "Face list",
            Kind::LargeFaceList => "Large face list",
        }
    }

    /// The JSON key of a collection's id, e.g. `personGroupId`.
    pub fn id_key(self) -> &'static str {
        match self {
            Kind::PersonGroup => "personGroupId",
            Kind::LargePersonGroup => "largePersonGroupId",
            Kind::FaceList => "faceListId",
            Kind::LargeFaceList => "largeFaceListId",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// The route segment, e.g. `persongroups`.
    pub fn route(self) -> &'static str {
        match self {
            Kind::PersonGroup => "persongroups",
            Kind::LargePersonGroup => "largepersongroups",
            Kind::FaceList => "facelists",
            Kind::LargeFaceList => "largefacelists",
        }
    }

    /// Whether faces belong to persons (groups) or directly to the collection (lists).
    pub fn has_persons(self) -> bool {
        matches!(self, Kind::PersonGroup | Kind::LargePersonGroup)
    }

    /// Whether identification or find-similar needs a trained index.
    pub fn needs_training(self) -> bool {
        self != Kind::FaceList
    }

    /// Most persons in one group.
    pub fn max_persons(self) -> u64 {
        match self {
            Kind::PersonGroup => 10_000,
            _ => 1_000_000,
        }
    }

    /// Most faces: per person for groups, per list for lists.
    pub fn max_faces(self) -> u64 {
        match self {
            Kind::PersonGroup | Kind::LargePersonGroup => 248,
            Kind::FaceList => 1_000,
            Kind::LargeFaceList => 1_000_000,
        }
    }
}

/// A group or list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub kind: Kind,
    pub id: String,
    pub name: String,
    pub user_data: Option<String>,
    /// The API name, e.g. `recognition_01`.
    pub recognition_model: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub person_id: String,
    pub name: String,
    pub user_data: Option<String>,
    /// Persisted face ids, in the order they were added.
    pub face_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFace {
    pub face_id: String,
    /// The owning person, for groups; `None` for lists.
    pub person_id: Option<String>,
    pub user_data: Option<String>,
    /// The concrete model id (e.g. `sface_2021dec`).
    pub model: String,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainingState {
    Running,
    Succeeded,
    Failed,
}

impl TrainingState {
    /// The state a stored name stands for; an unknown one is `Failed`.
    pub fn from_name(s: &str) -> TrainingState {
        match s {
            "running" => TrainingState::Running,
            "succeeded" => TrainingState::Succeeded,
            _ => TrainingState::Failed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TrainingState::Running => "running",
            TrainingState::Succeeded => "succeeded",
            TrainingState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub state: TrainingState,
    pub created_ms: i64,
    pub last_action_ms: i64,
    pub last_success_ms: Option<i64>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub kind: Kind,
    pub object_id: String,
    pub apply_scope: Vec<String>,
    pub user_data: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    /// notstarted, running, succeeded or failed.
    pub status: String,
    pub created_ms: i64,
    pub last_action_ms: i64,
    pub resource_location: Option<String>,
    pub message: Option<String>,
}

/// One billable transaction in the usage journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// A UUID: the meter counts each id once, so a resent record is never counted twice.
    pub id: String,
    pub time_ms: i64,
    pub meter: String,
    pub quantity: u32,
    /// What was billed, e.g. `POST /face/v1.0/detect`.
    pub operation: String,
}

/// The usage record of the billable request that store calls are made for. The billing layer
/// opens one per request; the first write of that request that changes rows journals it in the
/// same transaction, so the effect and its bill commit together or not at all. When no write
/// takes it (a detect, a read), the billing layer journals it itself once the answer is ready.
#[derive(Debug)]
pub struct PendingUsage(std::sync::Mutex<Option<UsageRecord>>);

impl PendingUsage {
    pub fn new(record: UsageRecord) -> std::sync::Arc<PendingUsage> {
        std::sync::Arc::new(PendingUsage(std::sync::Mutex::new(Some(record))))
    }

    /// The record, while no write has journalled it.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Option<UsageRecord>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the record if no write has journalled it yet.
    pub fn take(&self) -> Option<UsageRecord> {
        self.lock().take()
    }
}

thread_local! {
    static PENDING_USAGE: std::cell::RefCell<Option<std::sync::Arc<PendingUsage>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f`, whose store calls on this thread are made for the request whose usage is `usage`.
pub fn for_usage<T>(usage: Option<std::sync::Arc<PendingUsage>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<std::sync::Arc<PendingUsage>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            PENDING_USAGE.set(self.0.take());
        }
    }
    let _restore = Restore(PENDING_USAGE.replace(usage));
    f()
}

/// The usage the store calls on this thread are made for (see [`for_usage`]); implementations
/// journal it in the transaction of the first write that changes rows.
fn pending_usage() -> Option<std::sync::Arc<PendingUsage>> {
    PENDING_USAGE.with_borrow(Clone::clone)
}

/// Why a store call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The collection does not exist.
    NoCollection,
    /// The person does not exist in the collection.
    NoPerson,
    /// A collection with this id exists already.
    Exists,
    /// A quota would be passed; the message says which.
    Quota(String),
    /// The database failed; the message says how.
    Internal(String),
    /// The database cannot be reached now (refused, restarting, the connection lost): the same
    /// call may succeed in a moment. A write whose connection was lost at its commit may have
    /// been done.
    Unavailable(String),
    /// This host does not hold the lease the call needs (another host's work holds it past the
    /// wait, or it expired and was taken over): the work is that host's, and this host writes
    /// nothing over it.
    NotHeld(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoCollection => f.write_str("the group or list does not exist"),
            StoreError::NoPerson => f.write_str("the person does not exist"),
            StoreError::Exists => f.write_str("the id is taken"),
            StoreError::Quota(m) => f.write_str(m),
            StoreError::Internal(m) => write!(f, "the face database failed: {m}"),
            StoreError::Unavailable(m) => write!(f, "the face database cannot be reached: {m}"),
            StoreError::NotHeld(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// Groups and lists, their persons and persisted faces, and training results.
pub trait CollectionStore {
    fn create_collection(&self, c: &Collection) -> StoreResult<()>;
    fn collection(&self, kind: Kind, id: &str) -> StoreResult<Option<Collection>>;
    /// Ids greater than `start`, sorted, at most `top`.
    fn list_collections(&self, kind: Kind, start: Option<&str>, top: usize) -> StoreResult<Vec<Collection>>;
    /// Sets the fields given; `Ok(false)` when the collection does not exist.
    fn update_collection(
        &self,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        user_data: Option<Option<&str>>,
    ) -> StoreResult<bool>;
    /// Deletes the collection with its persons, faces, training and trained index.
    fn delete_collection(&self, kind: Kind, id: &str) -> StoreResult<bool>;

    fn create_person(&self, kind: Kind, cid: &str, person: &Person) -> StoreResult<()>;
    fn person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<Option<Person>>;
    fn list_persons(&self, kind: Kind, cid: &str, start: Option<&str>, top: usize) -> StoreResult<Vec<Person>>;
    fn update_person(
        &self,
        kind: Kind,
        cid: &str,
        person_id: &str,
        name: Option<&str>,
        user_data: Option<Option<&str>>,
    ) -> StoreResult<bool>;
    fn delete_person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<bool>;

    /// Adds a face to a list (`face.person_id` None) or to a person, within the kind's quota.
    fn add_face(&self, kind: Kind, cid: &str, face: &StoredFace) -> StoreResult<()>;
    fn face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<Option<StoredFace>>;
    /// Faces of a list (or of one person) with ids greater than `start`, sorted, at most `top`.
    fn list_faces(
        &self,
        kind: Kind,
        cid: &str,
        person_id: Option<&str>,
        start: Option<&str>,
        top: usize,
    ) -> StoreResult<Vec<StoredFace>>;
    fn update_face(
        &self,
        kind: Kind,
        cid: &str,
        person_id: Option<&str>,
        face_id: &str,
        user_data: Option<&str>,
    ) -> StoreResult<bool>;
    fn delete_face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<bool>;
    /// Every face of the collection, in insertion order.
    fn all_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>>;

    fn training(&self, kind: Kind, cid: &str) -> StoreResult<Option<Training>>;
    fn set_training(&self, kind: Kind, cid: &str, training: &Training) -> StoreResult<()>;
    /// Records a successful training whose index parts were written ([`put_index_part`]),
    /// atomically, if the collection is still the one created at `created_ms` (not deleted and
    /// made anew): older indexes go, and so do the deaths logged over a minute before the
    /// training's scan began (at `scanned_ms`), which it surely saw.
    ///
    /// [`put_index_part`]: CollectionStore::put_index_part
    fn save_trained(
        &self,
        kind: Kind,
        cid: &str,
        created_ms: i64,
        training: &Training,
        scanned_ms: i64,
    ) -> StoreResult<()>;
    /// One part of a trained index's bytes (its persisted form, from the `index` module), each its own short
    /// write, so that writing a large index never holds the database long.
    fn put_index_part(&self, kind: Kind, cid: &str, trained_ms: i64, part: u32, data: &[u8]) -> StoreResult<()>;
    /// Hands the index trained at `trained_ms` to `read` as one stream of its parts in order
    /// (fetched one part at a time, inside one read transaction), with its length in bytes, so
    /// no copy of the whole stored form is made; `false` if there is none.
    fn read_index(
        &self,
        kind: Kind,
        cid: &str,
        trained_ms: i64,
        read: &mut dyn FnMut(u64, &mut dyn std::io::Read) -> StoreResult<()>,
    ) -> StoreResult<bool>;
    /// The bytes of the index trained at `trained_ms`, its parts in order; `None` if none.
    fn index_bytes(&self, kind: Kind, cid: &str, trained_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let found = self.read_index(kind, cid, trained_ms, &mut |_, r| {
            r.read_to_end(&mut out).map(drop).map_err(|e| StoreError::Internal(e.to_string()))
        })?;
        Ok(found.then_some(out))
    }
    /// The faces deleted since the last training, as (person id, face id), which a trained
    /// index marks dead.
    fn dead_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<(Option<String>, String)>>;
    /// Every face of the collection now (or, with `trained`, of the copy of faces older
    /// versions kept for the trained index), one at a time, in no particular order.
    fn scan_faces(
        &self,
        kind: Kind,
        cid: &str,
        trained: bool,
        f: &mut dyn FnMut(ScannedFace<'_>) -> StoreResult<()>,
    ) -> StoreResult<()>;
    /// The embeddings of these faces of the collection, `None` for a face that is gone.
    fn embeddings(&self, kind: Kind, cid: &str, face_ids: &[String]) -> StoreResult<Vec<Option<Vec<f32>>>>;
    /// After a restart: trainings left `running` become `failed`, and snapshot operations left
    /// unfinished become `failed`, each with a message to start again (with several hosts, only
    /// those no host holds: [`CollectionStore::hold`]). Returns how many.
    fn fail_interrupted(&self, now_ms: i64) -> StoreResult<usize>;
    /// While the service runs: with several hosts, the trainings and operations of a host that
    /// stopped (their lease expired) become `failed`. Returns how many. One host owns a SQLite
    /// database, whose interrupted work [`CollectionStore::fail_interrupted`] found at start-up.
    fn fail_expired(&self, _now_ms: i64) -> StoreResult<usize> {
        Ok(0)
    }
    /// The connection pool's figures, for `/metrics` (PostgreSQL; SQLite has no pool).
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
    /// Waits until no other host holds `key` ([`training_key`], [`operation_key`]) and holds it
    /// until the [`Hold`] drops. One host owns a SQLite database: nothing to wait for.
    fn hold(&self, _key: &str) -> StoreResult<Hold> {
        Ok(Hold::none())
    }
}

/// A stored index's parts as one stream: `fetch(i)` reads part `i` of `parts` when the stream
/// reaches it. A failed fetch ends the stream with an I/O error and is kept in `error`, for the
/// store call to return as itself.
pub(crate) struct PartsReader<F: FnMut(usize) -> StoreResult<Vec<u8>>> {
    parts: usize,
    next: usize,
    part: Vec<u8>,
    at: usize,
    fetch: F,
    pub(crate) error: Option<StoreError>,
}

impl<F: FnMut(usize) -> StoreResult<Vec<u8>>> PartsReader<F> {
    pub(crate) fn new(parts: usize, fetch: F) -> Self {
        PartsReader { parts, next: 0, part: Vec::new(), at: 0, fetch, error: None }
    }
}

impl<F: FnMut(usize) -> StoreResult<Vec<u8>>> std::io::Read for PartsReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.part.len() {
            if self.next == self.parts || self.error.is_some() {
                return match &self.error {
                    Some(e) => Err(std::io::Error::other(e.to_string())),
                    None => Ok(0),
                };
            }
            // The previous part is freed before the next is fetched.
            self.part = Vec::new();
            match (self.fetch)(self.next) {
                Ok(part) => self.part = part,
                Err(e) => self.error = Some(e),
            }
            self.at = 0;
            self.next += 1;
        }
        let n = buf.len().min(self.part.len() - self.at);
        buf[..n].copy_from_slice(&self.part[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What `/metrics` shows of a database connection pool: gauges now, and counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolStats {
    /// Connections open for calls.
    pub open: u64,
    /// Of those, running a call.
    pub in_use: u64,
    /// Calls waiting for a connection now.
    pub waiting: u64,
    /// Calls that had to wait for a connection, and the seconds they waited.
    pub waits: u64,
    pub wait_seconds: f64,
    /// Connections opened, and those found broken (the database restarted or cut them).
    pub opened: u64,
    pub lost: u64,
    /// Waits for another host's lease, and their seconds.
    pub lease_waits: u64,
    pub lease_wait_seconds: f64,
}

/// A change that the other hosts of one database apply to what they keep in memory (their
/// cached trained indexes), sent by the database when the change commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// A training succeeded: hosts holding an older index load this one.
    Trained { kind: Kind, cid: String, trained_ms: i64 },
    /// A face was deleted: its row is dead in every index.
    DeadFace { kind: Kind, cid: String, person_id: Option<String>, face_id: String },
    /// A person was deleted with their faces.
    DeadPerson { kind: Kind, cid: String, person_id: String },
    /// The collection was deleted.
    Gone { kind: Kind, cid: String },
}

/// One face as a scan reads it.
#[derive(Debug, Clone, Copy)]
pub struct ScannedFace<'a> {
    pub face_id: &'a str,
    pub person_id: Option<&'a str>,
    /// The concrete model id.
    pub model: &'a str,
    pub embedding: &'a [f32],
}

/// Snapshots of a collection, and the operations that take and apply them.
pub trait SnapshotStore {
    /// Stores `snapshot` with a copy of its collection (`kind`, `object_id`), its persons and
    /// faces as of one instant, made inside the database (nothing passes through memory);
    /// `NoCollection` when the collection is gone.
    fn take_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()>;
    /// Creates the collection snapshot `sid` holds (its kind, under `id`) with all its persons and
    /// faces, in one transaction; `Exists` when the id is taken.
    fn apply_snapshot(&self, sid: &str, id: &str) -> StoreResult<()>;
    /// A snapshot's description (what it holds is not read).
    fn snapshot(&self, id: &str) -> StoreResult<Option<Snapshot>>;
    fn list_snapshots(&self) -> StoreResult<Vec<Snapshot>>;
    fn update_snapshot(
        &self,
        id: &str,
        apply_scope: Option<&[String]>,
        user_data: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool>;
    fn delete_snapshot(&self, id: &str) -> StoreResult<bool>;
    /// Deletes snapshots taken before `ms`; returns how many.
    fn delete_snapshots_before(&self, ms: i64) -> StoreResult<usize>;
    fn put_operation(&self, op: &Operation) -> StoreResult<()>;
    fn operation(&self, id: &str) -> StoreResult<Option<Operation>>;
}

/// The usage journal (decision 6): billable transactions until the meter acknowledges them.
pub trait UsageJournal {
    /// Appends to the usage journal (durably, before the billed response is sent).
    fn record_usage(&self, record: &UsageRecord) -> StoreResult<()>;
    /// The oldest records not yet acknowledged by the meter, at most `limit`.
    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>>;
    /// Marks records the meter acknowledged.
    fn mark_usage_sent(&self, ids: &[String], now_ms: i64) -> StoreResult<()>;
    /// How many records wait for the meter.
    fn usage_backlog(&self) -> StoreResult<u64>;
}

/// A faceId as the hosts of one database share it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFace {
    /// The faceId (a UUID).
    pub id: String,
    /// The API name it was detected with, e.g. `recognition_01`.
    pub recognition: String,
    /// The concrete model id.
    pub model: String,
    pub embedding: Vec<f32>,
    /// When it expires (ms since the epoch).
    pub expires_ms: i64,
}

/// faceIds kept where every host of one database finds them (`Storage:Scenario=Postgres`).
pub trait SharedFaceIds: Send + Sync + std::fmt::Debug {
    fn put(&self, faces: &[SharedFace]) -> StoreResult<()>;
    /// Those of `ids` that exist and expire after `now_ms`.
    fn get(&self, ids: &[String], now_ms: i64) -> StoreResult<Vec<SharedFace>>;
    /// Deletes the expired; returns how many.
    fn sweep(&self, now_ms: i64) -> StoreResult<u64>;
    /// How many have not expired at `now_ms`, on every host.
    fn count(&self, now_ms: i64) -> StoreResult<u64>;
}

/// The face database: all three parts. Calls block briefly; the server makes them off the async
/// runtime.
pub trait Store: CollectionStore + SnapshotStore + UsageJournal + Send + Sync + std::fmt::Debug {}

impl<T: CollectionStore + SnapshotStore + UsageJournal + Send + Sync + std::fmt::Debug> Store for T {}
