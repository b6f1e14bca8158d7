//! The SQLite implementation of [`Store`]: one writing connection in WAL mode, every write one
//! transaction; reads on connections of their own (a file database's WAL lets them read the last
//! commit while a write is under way, so a long training write never stalls a lookup);
//! migrations from `migrations/*.sql` counted in `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

mod collections;
mod snapshots;
#[cfg(test)]
mod tests;
mod usage;

use super::*;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Internal(e.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> StoreError {
        StoreError::Internal(e.to_string())
    }
}

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_collections.sql"),
    include_str!("migrations/002_usage.sql"),
    include_str!("migrations/003_scale.sql"),
    include_str!("migrations/004_snapshot_rows.sql"),
];

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    /// The one writing connection.
    conn: Mutex<Connection>,
    /// The database file, when there is one (an in-memory database is read on `conn`).
    path: Option<PathBuf>,
    /// Idle read-only connections to `path`.
    readers: Mutex<Vec<Connection>>,
}

/// Idle readers kept; more are opened when reads overlap, and closed after.
const IDLE_READERS: usize = 8;

impl SqliteStore {
    /// Opens (creating if needed) `dir/face.db` in WAL mode and applies pending migrations.
    pub fn open_dir(dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Internal(format!("cannot create the data directory {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("face.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut store = Self::init(conn)?;
        store.path = Some(dir.join("face.db"));
        Ok(store)
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
        Ok(SqliteStore { conn: Mutex::new(conn), path: None, readers: Mutex::new(Vec::new()) })
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Internal("the database lock is poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs a write in one transaction on the writing connection. When it changes rows and is
    /// made for a billable request whose usage no write has journalled yet, the usage record is
    /// written in the same transaction: the effect and its bill commit together.
    pub(super) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.with(|conn| {
            let before = conn.total_changes();
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            let pending = if tx.total_changes() > before { pending_usage() } else { None };
            let Some(pending) = pending else {
                tx.commit()?;
                return Ok(out);
            };
            let mut record = pending.lock();
            if let Some(r) = record.as_ref() {
                usage::insert(&tx, r)?;
            }
            tx.commit()?;
            record.take();
            Ok(out)
        })
    }

    /// Runs a read in one read transaction (one consistent snapshot) on a read-only connection
    /// of its own, which never waits for the writing connection.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let Some(path) = &self.path else { return self.with(|conn| f(conn)) };
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(path, flags)?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        conn.execute_batch("BEGIN")?;
        let out = f(&conn);
        let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        if end.is_ok() {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        let out = out?;
        end?;
        Ok(out)
    }
}

pub(super) fn collection_exists(conn: &Connection, kind: Kind, cid: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM collections WHERE kind = ?1 AND id = ?2", params![kind.name(), cid], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn person_exists(conn: &Connection, kind: Kind, cid: &str, pid: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
            params![kind.name(), cid, pid],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(super) fn read_collection(row: &rusqlite::Row<'_>, kind: Kind) -> rusqlite::Result<Collection> {
    Ok(Collection {
        kind,
        id: row.get(0)?,
        name: row.get(1)?,
        user_data: row.get(2)?,
        recognition_model: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

pub(super) fn person_face_ids(conn: &Connection, kind: Kind, cid: &str, pid: &str) -> StoreResult<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT face_id FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 ORDER BY seq")?;
    let ids = stmt.query_map(params![kind.name(), cid, pid], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

pub(super) fn read_face(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFace> {
    let person: Option<String> = row.get(1)?;
    Ok(StoredFace {
        face_id: row.get(0)?,
        person_id: person.filter(|p| !p.is_empty()),
        user_data: row.get(2)?,
        model: row.get(3)?,
        embedding: floats(&row.get::<_, Vec<u8>>(4)?),
    })
}

pub(super) fn insert_face(conn: &Connection, kind: Kind, cid: &str, f: &StoredFace) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![kind.name(), cid, person_key(f.person_id.as_deref()), f.face_id, f.user_data, f.model, blob(&f.embedding)],
    )?;
    Ok(())
}

pub(super) fn insert_person(conn: &Connection, kind: Kind, cid: &str, p: &Person) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO persons (kind, cid, person_id, name, user_data) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind.name(), cid, p.person_id, p.name, p.user_data],
    )?;
    Ok(())
}

pub(super) fn all_faces(conn: &Connection, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
    let mut stmt = conn.prepare_cached(
        "SELECT face_id, person_id, user_data, model, embedding FROM faces WHERE kind = ?1 AND cid = ?2 ORDER BY seq",
    )?;
    let faces = stmt.query_map(params![kind.name(), cid], read_face)?.collect::<Result<Vec<_>, _>>()?;
    Ok(faces)
}

impl crate::store::BulkSink for SqliteStore {
    fn write_bulk(&self, kind: Kind, cid: &str, batch: &[(Option<String>, StoredFace)]) -> StoreResult<()> {
        self.write(|tx| {
            for (new_person, face) in batch {
                if let Some(p) = new_person {
                    let person =
                        Person { person_id: p.clone(), name: "bulk".into(), user_data: None, face_ids: vec![] };
                    insert_person(tx, kind, cid, &person)?;
                }
                insert_face(tx, kind, cid, face)?;
            }
            let (persons, faces): (i64, i64) = tx.query_row(
                "SELECT persons, faces FROM counts WHERE kind = ?1 AND cid = ?2",
                rusqlite::params![kind.name(), cid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            crate::store::bulk::check_limits(kind, persons.max(0) as u64, faces.max(0) as u64)
        })
    }
}
