//! The face database: groups and lists, persons, persisted faces with their embeddings, training
//! results, snapshots and snapshot operations.
//!
//! One [`Store`] trait; [`SqliteStore`] implements it on a file in WAL mode (the default, so data
//! survives restarts) or in memory (`Storage:Scenario=Memory`, for tests and for parity with the
//! Azure container's default). Every write is one transaction: a failure leaves nothing
//! half-written. Embeddings are little-endian f32 blobs beside their concrete model id.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

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

/// A collection with everything in it: what a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub collection: Collection,
    pub persons: Vec<Person>,
    pub faces: Vec<StoredFace>,
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
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoCollection => f.write_str("the group or list does not exist"),
            StoreError::NoPerson => f.write_str("the person does not exist"),
            StoreError::Exists => f.write_str("the id is taken"),
            StoreError::Quota(m) => f.write_str(m),
            StoreError::Internal(m) => write!(f, "the face database failed: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Internal(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The face database. Calls block briefly; the server makes them off the async runtime.
pub trait Store: Send + Sync + std::fmt::Debug {
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
    /// Records a successful training and replaces the trained index with `faces`, atomically,
    /// if the collection is still the one created at `created_ms` (not deleted and made anew).
    fn save_trained(
        &self,
        kind: Kind,
        cid: &str,
        created_ms: i64,
        training: &Training,
        faces: &[StoredFace],
    ) -> StoreResult<()>;
    /// After a restart: trainings left `running` become `failed`, and snapshot operations left
    /// unfinished become `failed`, each with a message to start again. Returns how many.
    fn fail_interrupted(&self, now_ms: i64) -> StoreResult<usize>;
    /// The faces of the last successful training.
    fn trained_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>>;

    fn export(&self, kind: Kind, cid: &str) -> StoreResult<Option<Export>>;
    /// Creates the collection `export.collection` describes (its kind, under `id`) with all its
    /// persons and faces; `Exists` when the id is taken.
    fn import(&self, id: &str, export: &Export) -> StoreResult<()>;

    fn put_snapshot(&self, snapshot: &Snapshot, data: &Export) -> StoreResult<()>;
    fn snapshot(&self, id: &str) -> StoreResult<Option<(Snapshot, Export)>>;
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

    /// Appends to the usage journal (durably, before the billed response is sent).
    fn record_usage(&self, record: &UsageRecord) -> StoreResult<()>;
    /// The oldest records not yet acknowledged by the meter, at most `limit`.
    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>>;
    /// Marks records the meter acknowledged.
    fn mark_usage_sent(&self, ids: &[String], now_ms: i64) -> StoreResult<()>;
    /// How many records wait for the meter.
    fn usage_backlog(&self) -> StoreResult<u64>;
}

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE collections (
    kind TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT,
    recognition_model TEXT NOT NULL, created_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE persons (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT NOT NULL, name TEXT NOT NULL, user_data TEXT,
    UNIQUE (kind, cid, person_id));
CREATE TABLE faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT, face_id TEXT NOT NULL, user_data TEXT,
    model TEXT NOT NULL, embedding BLOB NOT NULL,
    UNIQUE (kind, cid, face_id));
CREATE INDEX faces_by_person ON faces (kind, cid, person_id);
CREATE TABLE training (
    kind TEXT NOT NULL, cid TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL,
    last_action_ms INTEGER NOT NULL, last_success_ms INTEGER, message TEXT,
    PRIMARY KEY (kind, cid));
CREATE TABLE trained_faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, cid TEXT NOT NULL, person_id TEXT, face_id TEXT NOT NULL,
    model TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX trained_by_collection ON trained_faces (kind, cid);
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, object_id TEXT NOT NULL, apply_scope TEXT NOT NULL,
    user_data TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE operations (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_ms INTEGER NOT NULL, last_action_ms INTEGER NOT NULL,
    resource_location TEXT, message TEXT);
",
    "
CREATE TABLE usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL, meter TEXT NOT NULL, quantity INTEGER NOT NULL,
    operation TEXT NOT NULL, sent_ms INTEGER);
CREATE INDEX usage_unsent ON usage (sent_ms, seq);
",
];

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn person_key(p: Option<&str>) -> &str {
    p.unwrap_or("")
}

fn state_from(s: &str) -> TrainingState {
    match s {
        "running" => TrainingState::Running,
        "succeeded" => TrainingState::Succeeded,
        _ => TrainingState::Failed,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/face.db` in WAL mode and applies pending migrations.
    pub fn open_dir(dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Internal(format!("cannot create the data directory {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("face.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn)
    }

    /// A store that lives in memory and is gone when the process ends.
    pub fn in_memory() -> StoreResult<SqliteStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> StoreResult<SqliteStore> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Internal(format!(
                "the database was written by a newer version of this service (schema {version}, this one knows {}); \
                 run the newer version or restore a backup",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Internal("the database lock is poisoned".into()))?;
        f(&mut conn)
    }
}

fn collection_exists(conn: &Connection, kind: Kind, cid: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM collections WHERE kind = ?1 AND id = ?2", params![kind.name(), cid], |_| Ok(()))
        .optional()?
        .is_some())
}

fn person_exists(conn: &Connection, kind: Kind, cid: &str, pid: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
            params![kind.name(), cid, pid],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn read_collection(row: &rusqlite::Row<'_>, kind: Kind) -> rusqlite::Result<Collection> {
    Ok(Collection {
        kind,
        id: row.get(0)?,
        name: row.get(1)?,
        user_data: row.get(2)?,
        recognition_model: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

fn person_face_ids(conn: &Connection, kind: Kind, cid: &str, pid: &str) -> StoreResult<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT face_id FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 ORDER BY seq")?;
    let ids = stmt.query_map(params![kind.name(), cid, pid], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

fn read_face(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFace> {
    let person: Option<String> = row.get(1)?;
    Ok(StoredFace {
        face_id: row.get(0)?,
        person_id: person.filter(|p| !p.is_empty()),
        user_data: row.get(2)?,
        model: row.get(3)?,
        embedding: floats(&row.get::<_, Vec<u8>>(4)?),
    })
}

fn insert_face(conn: &Connection, kind: Kind, cid: &str, f: &StoredFace) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![kind.name(), cid, person_key(f.person_id.as_deref()), f.face_id, f.user_data, f.model, blob(&f.embedding)],
    )?;
    Ok(())
}

fn insert_person(conn: &Connection, kind: Kind, cid: &str, p: &Person) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO persons (kind, cid, person_id, name, user_data) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind.name(), cid, p.person_id, p.name, p.user_data],
    )?;
    Ok(())
}

fn all_faces(conn: &Connection, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
    let mut stmt = conn.prepare_cached(
        "SELECT face_id, person_id, user_data, model, embedding FROM faces WHERE kind = ?1 AND cid = ?2 ORDER BY seq",
    )?;
    let faces = stmt.query_map(params![kind.name(), cid], read_face)?.collect::<Result<Vec<_>, _>>()?;
    Ok(faces)
}

impl Store for SqliteStore {
    fn create_collection(&self, c: &Collection) -> StoreResult<()> {
        self.with(|conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.kind.name(), c.id, c.name, c.user_data, c.recognition_model, c.created_ms],
            )?;
            if n == 0 { Err(StoreError::Exists) } else { Ok(()) }
        })
    }

    fn collection(&self, kind: Kind, id: &str) -> StoreResult<Option<Collection>> {
        self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id, name, user_data, recognition_model, created_ms FROM collections WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), id],
                    |r| read_collection(r, kind),
                )
                .optional()?)
        })
    }

    fn list_collections(&self, kind: Kind, start: Option<&str>, top: usize) -> StoreResult<Vec<Collection>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, user_data, recognition_model, created_ms FROM collections \
                 WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![kind.name(), start.unwrap_or(""), top as i64], |r| read_collection(r, kind))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn update_collection(
        &self,
        kind: Kind,
        id: &str,
        name: Option<&str>,
        user_data: Option<Option<&str>>,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if !collection_exists(&tx, kind, id)? {
                return Ok(false);
            }
            if let Some(name) = name {
                tx.execute(
                    "UPDATE collections SET name = ?3 WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), id, name],
                )?;
            }
            if let Some(ud) = user_data {
                tx.execute(
                    "UPDATE collections SET user_data = ?3 WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), id, ud],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn delete_collection(&self, kind: Kind, id: &str) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM collections WHERE kind = ?1 AND id = ?2", params![kind.name(), id])?;
            for table in ["persons", "faces", "training", "trained_faces"] {
                tx.execute(&format!("DELETE FROM {table} WHERE kind = ?1 AND cid = ?2"), params![kind.name(), id])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn create_person(&self, kind: Kind, cid: &str, person: &Person) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if !collection_exists(&tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            let count: u64 = tx.query_row(
                "SELECT COUNT(*) FROM persons WHERE kind = ?1 AND cid = ?2",
                params![kind.name(), cid],
                |r| r.get(0),
            )?;
            if count >= kind.max_persons() {
                return Err(StoreError::Quota(format!(
                    "Person number reached person group level limit ({}).",
                    kind.max_persons()
                )));
            }
            insert_person(&tx, kind, cid, person)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<Option<Person>> {
        self.with(|conn| {
            let row = conn
                .query_row(
                    "SELECT name, user_data FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                    params![kind.name(), cid, person_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()?;
            match row {
                None => Ok(None),
                Some((name, user_data)) => Ok(Some(Person {
                    person_id: person_id.to_owned(),
                    name,
                    user_data,
                    face_ids: person_face_ids(conn, kind, cid, person_id)?,
                })),
            }
        })
    }

    fn list_persons(&self, kind: Kind, cid: &str, start: Option<&str>, top: usize) -> StoreResult<Vec<Person>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT person_id, name, user_data FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id > ?3 \
                 ORDER BY person_id LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![kind.name(), cid, start.unwrap_or(""), top as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(person_id, name, user_data)| {
                    let face_ids = person_face_ids(conn, kind, cid, &person_id)?;
                    Ok(Person { person_id, name, user_data, face_ids })
                })
                .collect()
        })
    }

    fn update_person(
        &self,
        kind: Kind,
        cid: &str,
        person_id: &str,
        name: Option<&str>,
        user_data: Option<Option<&str>>,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if !person_exists(&tx, kind, cid, person_id)? {
                return Ok(false);
            }
            if let Some(name) = name {
                tx.execute(
                    "UPDATE persons SET name = ?4 WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                    params![kind.name(), cid, person_id, name],
                )?;
            }
            if let Some(ud) = user_data {
                tx.execute(
                    "UPDATE persons SET user_data = ?4 WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                    params![kind.name(), cid, person_id, ud],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn delete_person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "DELETE FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                params![kind.name(), cid, person_id],
            )?;
            // A deleted person's faces leave the trained index too: nothing of them is kept or found.
            for table in ["faces", "trained_faces"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE kind = ?1 AND cid = ?2 AND person_id = ?3"),
                    params![kind.name(), cid, person_id],
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn add_face(&self, kind: Kind, cid: &str, face: &StoredFace) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if !collection_exists(&tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            if let Some(pid) = &face.person_id
                && !person_exists(&tx, kind, cid, pid)?
            {
                return Err(StoreError::NoPerson);
            }
            let count: u64 = tx.query_row(
                "SELECT COUNT(*) FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                params![kind.name(), cid, person_key(face.person_id.as_deref())],
                |r| r.get(0),
            )?;
            if count >= kind.max_faces() {
                return Err(StoreError::Quota(format!(
                    "Persisted face number reached limit ({} per {}).",
                    kind.max_faces(),
                    if kind.has_persons() { "person" } else { "list" }
                )));
            }
            insert_face(&tx, kind, cid, face)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<Option<StoredFace>> {
        self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT face_id, person_id, user_data, model, embedding FROM faces \
                     WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                    params![kind.name(), cid, person_key(person_id), face_id],
                    read_face,
                )
                .optional()?)
        })
    }

    fn list_faces(
        &self,
        kind: Kind,
        cid: &str,
        person_id: Option<&str>,
        start: Option<&str>,
        top: usize,
    ) -> StoreResult<Vec<StoredFace>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT face_id, person_id, user_data, model, embedding FROM faces \
                 WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id > ?4 ORDER BY face_id LIMIT ?5",
            )?;
            let rows = stmt
                .query_map(
                    params![kind.name(), cid, person_key(person_id), start.unwrap_or(""), top as i64],
                    read_face,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn update_face(
        &self,
        kind: Kind,
        cid: &str,
        person_id: Option<&str>,
        face_id: &str,
        user_data: Option<&str>,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            let n = conn.execute(
                "UPDATE faces SET user_data = ?5 WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id, user_data],
            )?;
            Ok(n > 0)
        })
    }

    fn delete_face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "DELETE FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id],
            )?;
            tx.execute(
                "DELETE FROM trained_faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn all_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
        self.with(|conn| all_faces(conn, kind, cid))
    }

    fn training(&self, kind: Kind, cid: &str) -> StoreResult<Option<Training>> {
        self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT state, created_ms, last_action_ms, last_success_ms, message FROM training \
                     WHERE kind = ?1 AND cid = ?2",
                    params![kind.name(), cid],
                    |r| {
                        Ok(Training {
                            state: state_from(&r.get::<_, String>(0)?),
                            created_ms: r.get(1)?,
                            last_action_ms: r.get(2)?,
                            last_success_ms: r.get(3)?,
                            message: r.get(4)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn set_training(&self, kind: Kind, cid: &str, t: &Training) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if !collection_exists(&tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            write_training(&tx, kind, cid, t)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn save_trained(
        &self,
        kind: Kind,
        cid: &str,
        created_ms: i64,
        t: &Training,
        faces: &[StoredFace],
    ) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let same: Option<i64> = tx
                .query_row(
                    "SELECT created_ms FROM collections WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), cid],
                    |r| r.get(0),
                )
                .optional()?;
            if same != Some(created_ms) {
                return Err(StoreError::NoCollection);
            }
            write_training(&tx, kind, cid, t)?;
            tx.execute("DELETE FROM trained_faces WHERE kind = ?1 AND cid = ?2", params![kind.name(), cid])?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO trained_faces (kind, cid, person_id, face_id, model, embedding) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for f in faces {
                    stmt.execute(params![
                        kind.name(),
                        cid,
                        person_key(f.person_id.as_deref()),
                        f.face_id,
                        f.model,
                        blob(&f.embedding)
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn fail_interrupted(&self, now_ms: i64) -> StoreResult<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let trainings = tx.execute(
                "UPDATE training SET state = 'failed', last_action_ms = ?1, \
                 message = 'Training was interrupted by a restart of the service; train again.' WHERE state = 'running'",
                params![now_ms],
            )?;
            let operations = tx.execute(
                "UPDATE operations SET status = 'failed', last_action_ms = ?1, \
                 message = 'The operation was interrupted by a restart of the service; start it again.' \
                 WHERE status IN ('notstarted', 'running')",
                params![now_ms],
            )?;
            tx.commit()?;
            Ok(trainings + operations)
        })
    }

    fn trained_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT face_id, person_id, NULL, model, embedding FROM trained_faces \
                 WHERE kind = ?1 AND cid = ?2 ORDER BY seq",
            )?;
            let faces = stmt.query_map(params![kind.name(), cid], read_face)?.collect::<Result<Vec<_>, _>>()?;
            Ok(faces)
        })
    }

    fn export(&self, kind: Kind, cid: &str) -> StoreResult<Option<Export>> {
        // One transaction: persons and faces as of one instant.
        self.with(|conn| {
            let tx = conn.transaction()?;
            let collection = tx
                .query_row(
                    "SELECT id, name, user_data, recognition_model, created_ms FROM collections WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), cid],
                    |r| read_collection(r, kind),
                )
                .optional()?;
            let Some(collection) = collection else { return Ok(None) };
            let mut persons = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT person_id, name, user_data FROM persons WHERE kind = ?1 AND cid = ?2 ORDER BY person_id",
                )?;
                let rows = stmt
                    .query_map(params![kind.name(), cid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for (person_id, name, user_data) in rows {
                    let face_ids = person_face_ids(&tx, kind, cid, &person_id)?;
                    persons.push(Person { person_id, name, user_data, face_ids });
                }
            }
            let faces = all_faces(&tx, kind, cid)?;
            tx.commit()?;
            Ok(Some(Export { collection, persons, faces }))
        })
    }

    fn import(&self, id: &str, export: &Export) -> StoreResult<()> {
        let kind = export.collection.kind;
        self.with(|conn| {
            let tx = conn.transaction()?;
            let c = &export.collection;
            let n = tx.execute(
                "INSERT OR IGNORE INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind.name(), id, c.name, c.user_data, c.recognition_model, c.created_ms],
            )?;
            if n == 0 {
                return Err(StoreError::Exists);
            }
            for p in &export.persons {
                insert_person(&tx, kind, id, p)?;
            }
            for f in &export.faces {
                insert_face(&tx, kind, id, f)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn put_snapshot(&self, s: &Snapshot, data: &Export) -> StoreResult<()> {
        let data = serde_json::to_vec(data).map_err(|e| StoreError::Internal(e.to_string()))?;
        let scope = serde_json::to_string(&s.apply_scope).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.with(|conn| {
            conn.execute(
                "INSERT INTO snapshots (id, kind, object_id, apply_scope, user_data, created_ms, updated_ms, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![s.id, s.kind.name(), s.object_id, scope, s.user_data, s.created_ms, s.updated_ms, data],
            )?;
            Ok(())
        })
    }

    fn snapshot(&self, id: &str) -> StoreResult<Option<(Snapshot, Export)>> {
        let row = self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id, kind, object_id, apply_scope, user_data, created_ms, updated_ms, data FROM snapshots \
                     WHERE id = ?1",
                    params![id],
                    |r| Ok((read_snapshot(r)?, r.get::<_, Vec<u8>>(7)?)),
                )
                .optional()?)
        })?;
        match row {
            None => Ok(None),
            Some((s, data)) => {
                let export = serde_json::from_slice(&data)
                    .map_err(|e| StoreError::Internal(format!("snapshot {id} is unreadable: {e}")))?;
                Ok(Some((s, export)))
            }
        }
    }

    fn list_snapshots(&self) -> StoreResult<Vec<Snapshot>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, object_id, apply_scope, user_data, created_ms, updated_ms FROM snapshots ORDER BY id",
            )?;
            let rows = stmt.query_map([], read_snapshot)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn update_snapshot(
        &self,
        id: &str,
        apply_scope: Option<&[String]>,
        user_data: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("UPDATE snapshots SET updated_ms = ?2 WHERE id = ?1", params![id, now_ms])?;
            if let Some(scope) = apply_scope {
                let scope = serde_json::to_string(scope).map_err(|e| StoreError::Internal(e.to_string()))?;
                tx.execute("UPDATE snapshots SET apply_scope = ?2 WHERE id = ?1", params![id, scope])?;
            }
            if let Some(ud) = user_data {
                tx.execute("UPDATE snapshots SET user_data = ?2 WHERE id = ?1", params![id, ud])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn delete_snapshot(&self, id: &str) -> StoreResult<bool> {
        self.with(|conn| Ok(conn.execute("DELETE FROM snapshots WHERE id = ?1", params![id])? > 0))
    }

    fn delete_snapshots_before(&self, ms: i64) -> StoreResult<usize> {
        self.with(|conn| Ok(conn.execute("DELETE FROM snapshots WHERE created_ms < ?1", params![ms])?))
    }

    fn put_operation(&self, op: &Operation) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO operations (id, status, created_ms, last_action_ms, resource_location, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![op.id, op.status, op.created_ms, op.last_action_ms, op.resource_location, op.message],
            )?;
            Ok(())
        })
    }

    fn record_usage(&self, r: &UsageRecord) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO usage (id, time_ms, meter, quantity, operation) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id, r.time_ms, r.meter, r.quantity, r.operation],
            )?;
            Ok(())
        })
    }

    fn unsent_usage(&self, limit: usize) -> StoreResult<Vec<UsageRecord>> {
        self.with(|conn| Self::usage_rows(conn, limit))
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
        self.with(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM usage WHERE sent_ms IS NULL", [], |r| r.get(0))?))
    }

    fn operation(&self, id: &str) -> StoreResult<Option<Operation>> {
        self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id, status, created_ms, last_action_ms, resource_location, message FROM operations WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok(Operation {
                            id: r.get(0)?,
                            status: r.get(1)?,
                            created_ms: r.get(2)?,
                            last_action_ms: r.get(3)?,
                            resource_location: r.get(4)?,
                            message: r.get(5)?,
                        })
                    },
                )
                .optional()?)
        })
    }
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

fn write_training(conn: &Connection, kind: Kind, cid: &str, t: &Training) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO training (kind, cid, state, created_ms, last_action_ms, last_success_ms, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![kind.name(), cid, t.state.name(), t.created_ms, t.last_action_ms, t.last_success_ms, t.message],
    )?;
    Ok(())
}

fn read_snapshot(r: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    let kind: String = r.get(1)?;
    let scope: String = r.get(3)?;
    Ok(Snapshot {
        id: r.get(0)?,
        kind: Kind::from_name(&kind).unwrap_or(Kind::PersonGroup),
        object_id: r.get(2)?,
        apply_scope: serde_json::from_str(&scope).unwrap_or_default(),
        user_data: r.get(4)?,
        created_ms: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(kind: Kind, id: &str) -> Collection {
        Collection {
            kind,
            id: id.into(),
            name: "n".into(),
            user_data: None,
            recognition_model: "recognition_01".into(),
            created_ms: 1,
        }
    }

    fn person(id: &str) -> Person {
        Person { person_id: id.into(), name: "p".into(), user_data: Some("u".into()), face_ids: vec![] }
    }

    fn face(id: usize, person: Option<&str>) -> StoredFace {
        StoredFace {
            face_id: format!("f{id:07}"),
            person_id: person.map(String::from),
            user_data: None,
            model: "sface_2021dec".into(),
            embedding: vec![id as f32, -1.5, f32::MIN_POSITIVE],
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("face-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn quotas_answer_quota_exceeded_and_write_nothing() {
        let store = SqliteStore::in_memory().unwrap();
        store.create_collection(&collection(Kind::PersonGroup, "g")).unwrap();
        store.create_person(Kind::PersonGroup, "g", &person("p")).unwrap();
        for i in 0..248 {
            store.add_face(Kind::PersonGroup, "g", &face(i, Some("p"))).unwrap();
        }
        let err = store.add_face(Kind::PersonGroup, "g", &face(248, Some("p"))).unwrap_err();
        assert!(matches!(err, StoreError::Quota(_)), "{err:?}");
        assert_eq!(store.person(Kind::PersonGroup, "g", "p").unwrap().unwrap().face_ids.len(), 248);

        store.create_collection(&collection(Kind::FaceList, "l")).unwrap();
        for i in 0..1000 {
            store.add_face(Kind::FaceList, "l", &face(i, None)).unwrap();
        }
        assert!(matches!(store.add_face(Kind::FaceList, "l", &face(1000, None)), Err(StoreError::Quota(_))));
        assert_eq!(store.all_faces(Kind::FaceList, "l").unwrap().len(), 1000);
    }

    #[test]
    fn missing_parents_and_taken_ids_are_refused() {
        let store = SqliteStore::in_memory().unwrap();
        assert_eq!(store.create_person(Kind::PersonGroup, "none", &person("p")), Err(StoreError::NoCollection));
        store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
        assert_eq!(store.create_collection(&collection(Kind::LargePersonGroup, "g")), Err(StoreError::Exists));
        // The same id in another kind is another collection.
        store.create_collection(&collection(Kind::PersonGroup, "g")).unwrap();
        assert_eq!(store.add_face(Kind::LargePersonGroup, "g", &face(1, Some("ghost"))), Err(StoreError::NoPerson));
        assert!(store.all_faces(Kind::LargePersonGroup, "g").unwrap().is_empty());
    }

    #[test]
    fn deleting_a_person_or_collection_takes_its_faces_and_training() {
        let store = SqliteStore::in_memory().unwrap();
        store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
        for p in ["a", "b"] {
            store.create_person(Kind::LargePersonGroup, "g", &person(p)).unwrap();
            store.add_face(Kind::LargePersonGroup, "g", &face(p.len() + p.as_bytes()[0] as usize, Some(p))).unwrap();
        }
        let t = Training {
            state: TrainingState::Succeeded,
            created_ms: 1,
            last_action_ms: 2,
            last_success_ms: Some(2),
            message: None,
        };
        let faces = store.all_faces(Kind::LargePersonGroup, "g").unwrap();
        store.save_trained(Kind::LargePersonGroup, "g", 1, &t, &faces).unwrap();
        // A collection deleted and made anew is not the one trained.
        assert_eq!(store.save_trained(Kind::LargePersonGroup, "g", 2, &t, &faces), Err(StoreError::NoCollection));
        assert!(store.delete_person(Kind::LargePersonGroup, "g", "a").unwrap());
        assert_eq!(store.all_faces(Kind::LargePersonGroup, "g").unwrap().len(), 1);
        // The trained index keeps the rest of the last training, and nothing of a deleted person.
        let trained = store.trained_faces(Kind::LargePersonGroup, "g").unwrap();
        assert_eq!(trained.iter().map(|f| f.person_id.as_deref()).collect::<Vec<_>>(), [Some("b")]);
        // A training interrupted by a restart is failed, not left running.
        let running = Training { state: TrainingState::Running, ..t.clone() };
        store.set_training(Kind::LargePersonGroup, "g", &running).unwrap();
        assert_eq!(store.fail_interrupted(9).unwrap(), 1);
        let after = store.training(Kind::LargePersonGroup, "g").unwrap().unwrap();
        assert_eq!((after.state, after.last_success_ms), (TrainingState::Failed, Some(2)));
        assert!(store.delete_collection(Kind::LargePersonGroup, "g").unwrap());
        assert!(store.training(Kind::LargePersonGroup, "g").unwrap().is_none());
        assert!(store.trained_faces(Kind::LargePersonGroup, "g").unwrap().is_empty());
        store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
        assert!(store.list_persons(Kind::LargePersonGroup, "g", None, 10).unwrap().is_empty());
    }

    #[test]
    fn paging_is_sorted_by_id_with_an_exclusive_start() {
        let store = SqliteStore::in_memory().unwrap();
        for id in ["c", "a", "b", "d"] {
            store.create_collection(&collection(Kind::PersonGroup, id)).unwrap();
        }
        let ids = |start, top| -> Vec<String> {
            store.list_collections(Kind::PersonGroup, start, top).unwrap().into_iter().map(|c| c.id).collect()
        };
        assert_eq!(ids(None, 10), ["a", "b", "c", "d"]);
        assert_eq!(ids(Some("a"), 2), ["b", "c"]);
        assert_eq!(ids(Some("d"), 2), Vec::<String>::new());
    }

    #[test]
    fn a_file_store_keeps_everything_across_reopening_and_embeddings_exactly() {
        let dir = temp("reopen");
        {
            let store = SqliteStore::open_dir(&dir).unwrap();
            store.create_collection(&collection(Kind::LargeFaceList, "l")).unwrap();
            store.add_face(Kind::LargeFaceList, "l", &face(7, None)).unwrap();
            let export = store.export(Kind::LargeFaceList, "l").unwrap().unwrap();
            let snap = Snapshot {
                id: "s".into(),
                kind: Kind::LargeFaceList,
                object_id: "l".into(),
                apply_scope: vec!["x".into()],
                user_data: None,
                created_ms: 1,
                updated_ms: 1,
            };
            store.put_snapshot(&snap, &export).unwrap();
        }
        let store = SqliteStore::open_dir(&dir).unwrap();
        let faces = store.all_faces(Kind::LargeFaceList, "l").unwrap();
        assert_eq!(faces, vec![face(7, None)]);
        let (snap, export) = store.snapshot("s").unwrap().unwrap();
        assert_eq!(snap.apply_scope, ["x"]);
        store.import("copy", &export).unwrap();
        assert_eq!(store.all_faces(Kind::LargeFaceList, "copy").unwrap(), faces);
        assert_eq!(store.import("copy", &export), Err(StoreError::Exists));
        assert_eq!(store.delete_snapshots_before(1), Ok(0));
        assert_eq!(store.delete_snapshots_before(2), Ok(1));
        assert!(store.snapshot("s").unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused() {
        let dir = temp("newer");
        drop(SqliteStore::open_dir(&dir).unwrap());
        let conn = Connection::open(dir.join("face.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("newer version"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
