//! Snapshots (a collection copied, row by row, inside the database) and their operations in
//! SQLite.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Deserialize;

use super::*;

/// What a snapshot taken before migration 004 holds, as JSON in `snapshots.data`.
#[derive(Deserialize)]
struct LegacyExport {
    collection: Collection,
    persons: Vec<Person>,
    faces: Vec<StoredFace>,
}

/// The snapshot tables' rows of the snapshots `which` selects (`?1` bound to `arg`), deleted.
fn delete_rows(tx: &Transaction<'_>, which: &str, arg: &dyn rusqlite::ToSql) -> StoreResult<usize> {
    for table in ["snapshot_faces", "snapshot_persons", "snapshot_collections"] {
        tx.execute(&format!("DELETE FROM {table} WHERE sid IN (SELECT id FROM snapshots WHERE {which})"), [arg])?;
    }
    Ok(tx.execute(&format!("DELETE FROM snapshots WHERE {which}"), [arg])?)
}

impl SnapshotStore for SqliteStore {
    fn take_snapshot(&self, s: &Snapshot) -> StoreResult<()> {
        let scope = serde_json::to_string(&s.apply_scope).map_err(|e| StoreError::Internal(e.to_string()))?;
        // One write transaction: the copy is of one instant, and appears whole or not at all.
        // Each table is one INSERT ... SELECT, which SQLite streams from page to page.
        self.write(|tx| {
            let (kind, cid) = (s.kind.name(), &s.object_id);
            let found = tx.execute(
                "INSERT INTO snapshot_collections (sid, name, user_data, recognition_model, created_ms) \
                 SELECT ?1, name, user_data, recognition_model, created_ms FROM collections WHERE kind = ?2 AND id = ?3",
                params![s.id, kind, cid],
            )?;
            if found == 0 {
                return Err(StoreError::NoCollection);
            }
            tx.execute(
                "INSERT INTO snapshot_persons (sid, person_id, name, user_data) \
                 SELECT ?1, person_id, name, user_data FROM persons WHERE kind = ?2 AND cid = ?3 ORDER BY seq",
                params![s.id, kind, cid],
            )?;
            tx.execute(
                "INSERT INTO snapshot_faces (sid, person_id, face_id, user_data, model, embedding) \
                 SELECT ?1, person_id, face_id, user_data, model, embedding FROM faces \
                 WHERE kind = ?2 AND cid = ?3 ORDER BY seq",
                params![s.id, kind, cid],
            )?;
            tx.execute(
                "INSERT INTO snapshots (id, kind, object_id, apply_scope, user_data, created_ms, updated_ms, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, x'')",
                params![s.id, kind, cid, scope, s.user_data, s.created_ms, s.updated_ms],
            )?;
            Ok(())
        })
    }

    fn apply_snapshot(&self, sid: &str, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let row: Option<(String, Vec<u8>)> = tx
                .query_row("SELECT kind, data FROM snapshots WHERE id = ?1", params![sid], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((kind, data)) = row else {
                return Err(StoreError::Internal(format!("snapshot {sid} was deleted before it was applied")));
            };
            if !data.is_empty() {
                let export: LegacyExport = serde_json::from_slice(&data)
                    .map_err(|e| StoreError::Internal(format!("snapshot {sid} is unreadable: {e}")))?;
                return import_legacy(tx, id, &export);
            }
            let created = tx.execute(
                "INSERT OR IGNORE INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 SELECT ?1, ?2, name, user_data, recognition_model, created_ms FROM snapshot_collections WHERE sid = ?3",
                params![kind, id, sid],
            )?;
            if created == 0 {
                return Err(StoreError::Exists);
            }
            tx.execute(
                "INSERT INTO persons (kind, cid, person_id, name, user_data) \
                 SELECT ?1, ?2, person_id, name, user_data FROM snapshot_persons WHERE sid = ?3 ORDER BY seq",
                params![kind, id, sid],
            )?;
            tx.execute(
                "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) \
                 SELECT ?1, ?2, person_id, face_id, user_data, model, embedding FROM snapshot_faces \
                 WHERE sid = ?3 ORDER BY seq",
                params![kind, id, sid],
            )?;
            Ok(())
        })
    }

    fn snapshot(&self, id: &str) -> StoreResult<Option<Snapshot>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id, kind, object_id, apply_scope, user_data, created_ms, updated_ms FROM snapshots \
                     WHERE id = ?1",
                    params![id],
                    read_snapshot,
                )
                .optional()?)
        })
    }

    fn list_snapshots(&self) -> StoreResult<Vec<Snapshot>> {
        self.read(|conn| {
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
        self.write(|tx| {
            let n = tx.execute("UPDATE snapshots SET updated_ms = ?2 WHERE id = ?1", params![id, now_ms])?;
            if let Some(scope) = apply_scope {
                let scope = serde_json::to_string(scope).map_err(|e| StoreError::Internal(e.to_string()))?;
                tx.execute("UPDATE snapshots SET apply_scope = ?2 WHERE id = ?1", params![id, scope])?;
            }
            if let Some(ud) = user_data {
                tx.execute("UPDATE snapshots SET user_data = ?2 WHERE id = ?1", params![id, ud])?;
            }
            Ok(n > 0)
        })
    }

    fn delete_snapshot(&self, id: &str) -> StoreResult<bool> {
        self.write(|tx| Ok(delete_rows(tx, "id = ?1", &id)? > 0))
    }

    fn delete_snapshots_before(&self, ms: i64) -> StoreResult<usize> {
        self.write(|tx| delete_rows(tx, "created_ms < ?1", &ms))
    }

    fn put_operation(&self, op: &Operation) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO operations (id, status, created_ms, last_action_ms, resource_location, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![op.id, op.status, op.created_ms, op.last_action_ms, op.resource_location, op.message],
            )?;
            Ok(())
        })
    }

    fn operation(&self, id: &str) -> StoreResult<Option<Operation>> {
        self.read(|conn| {
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

/// Applies a snapshot taken before migration 004 (its JSON, read whole).
fn import_legacy(tx: &Transaction<'_>, id: &str, export: &LegacyExport) -> StoreResult<()> {
    let c = &export.collection;
    let kind = c.kind;
    let n = tx.execute(
        "INSERT OR IGNORE INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kind.name(), id, c.name, c.user_data, c.recognition_model, c.created_ms],
    )?;
    if n == 0 {
        return Err(StoreError::Exists);
    }
    for p in &export.persons {
        insert_person(tx, kind, id, p)?;
    }
    for f in &export.faces {
        insert_face(tx, kind, id, f)?;
    }
    Ok(())
}
