//! Snapshots (a collection exported as JSON) and their operations in SQLite.

use rusqlite::{OptionalExtension, params};

use super::*;

impl SnapshotStore for SqliteStore {
    fn export(&self, kind: Kind, cid: &str) -> StoreResult<Option<Export>> {
        // One read transaction: persons and faces as of one instant.
        self.read(|conn| {
            let collection = conn
                .query_row(
                    "SELECT id, name, user_data, recognition_model, created_ms FROM collections WHERE kind = ?1 AND id = ?2",
                    params![kind.name(), cid],
                    |r| read_collection(r, kind),
                )
                .optional()?;
            let Some(collection) = collection else { return Ok(None) };
            let mut persons = Vec::new();
            {
                let mut stmt = conn.prepare_cached(
                    "SELECT person_id, name, user_data FROM persons WHERE kind = ?1 AND cid = ?2 ORDER BY person_id",
                )?;
                let rows = stmt
                    .query_map(params![kind.name(), cid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for (person_id, name, user_data) in rows {
                    let face_ids = person_face_ids(conn, kind, cid, &person_id)?;
                    persons.push(Person { person_id, name, user_data, face_ids });
                }
            }
            let faces = all_faces(conn, kind, cid)?;
            Ok(Some(Export { collection, persons, faces }))
        })
    }

    fn import(&self, id: &str, export: &Export) -> StoreResult<()> {
        let kind = export.collection.kind;
        self.write(|tx| {
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
            Ok(())
        })
    }

    fn put_snapshot(&self, s: &Snapshot, data: &Export) -> StoreResult<()> {
        let data = serde_json::to_vec(data).map_err(|e| StoreError::Internal(e.to_string()))?;
        let scope = serde_json::to_string(&s.apply_scope).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.write(|conn| {
            conn.execute(
                "INSERT INTO snapshots (id, kind, object_id, apply_scope, user_data, created_ms, updated_ms, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![s.id, s.kind.name(), s.object_id, scope, s.user_data, s.created_ms, s.updated_ms, data],
            )?;
            Ok(())
        })
    }

    fn snapshot(&self, id: &str) -> StoreResult<Option<(Snapshot, Export)>> {
        let row = self.read(|conn| {
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
        self.write(|conn| Ok(conn.execute("DELETE FROM snapshots WHERE id = ?1", params![id])? > 0))
    }

    fn delete_snapshots_before(&self, ms: i64) -> StoreResult<usize> {
        self.write(|conn| Ok(conn.execute("DELETE FROM snapshots WHERE created_ms < ?1", params![ms])?))
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
