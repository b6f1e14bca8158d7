//! Snapshots (a collection copied, row by row, inside the database) and their operations in
//! PostgreSQL.

use super::*;

/// The snapshot tables' rows of the snapshots `which` selects (`$1` bound to `arg`), deleted.
fn delete_rows(tx: &mut Tx<'_>, which: &str, arg: &(dyn ::postgres::types::ToSql + Sync)) -> StoreResult<usize> {
    for table in ["snapshot_faces", "snapshot_persons", "snapshot_collections"] {
        tx.execute(&format!("DELETE FROM {table} WHERE sid IN (SELECT id FROM snapshots WHERE {which})"), &[arg])?;
    }
    Ok(tx.execute(&format!("DELETE FROM snapshots WHERE {which}"), &[arg])? as usize)
}

fn read_snapshot(r: &::postgres::Row) -> Snapshot {
    let kind: &str = r.get(1);
    let scope: &str = r.get(3);
    Snapshot {
        id: r.get(0),
        kind: Kind::from_name(kind).unwrap_or(Kind::PersonGroup),
        object_id: r.get(2),
        apply_scope: serde_json::from_str(scope).unwrap_or_default(),
        user_data: r.get(4),
        created_ms: r.get(5),
        updated_ms: r.get(6),
    }
}

impl SnapshotStore for PostgresStore {
    fn take_snapshot(&self, s: &Snapshot) -> StoreResult<()> {
        let scope = serde_json::to_string(&s.apply_scope).map_err(|e| StoreError::Internal(e.to_string()))?;
        // One transaction: the copy is of one instant (its statements read the collection as
        // its row lock left it), and appears whole or not at all.
        self.write(|tx| {
            let (kind, cid) = (s.kind.name(), s.object_id.as_str());
            if !lock_collection(tx, s.kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            tx.execute(
                "INSERT INTO snapshot_collections (sid, name, user_data, recognition_model, created_ms) \
                 SELECT $1, name, user_data, recognition_model, created_ms FROM collections WHERE kind = $2 AND id = $3",
                &[&s.id, &kind, &cid],
            )?;
            tx.execute(
                "INSERT INTO snapshot_persons (sid, person_id, name, user_data) \
                 SELECT $1, person_id, name, user_data FROM persons WHERE kind = $2 AND cid = $3 ORDER BY seq",
                &[&s.id, &kind, &cid],
            )?;
            tx.execute(
                "INSERT INTO snapshot_faces (sid, person_id, face_id, user_data, model, embedding) \
                 SELECT $1, person_id, face_id, user_data, model, embedding FROM faces \
                 WHERE kind = $2 AND cid = $3 ORDER BY seq",
                &[&s.id, &kind, &cid],
            )?;
            tx.execute(
                "INSERT INTO snapshots (id, kind, object_id, apply_scope, user_data, created_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&s.id, &kind, &cid, &scope, &s.user_data, &s.created_ms, &s.updated_ms],
            )?;
            Ok(())
        })
    }

    fn apply_snapshot(&self, sid: &str, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let Some(row) = tx.query_opt("SELECT kind FROM snapshots WHERE id = $1", &[&sid])? else {
                return Err(StoreError::Internal(format!("snapshot {sid} was deleted before it was applied")));
            };
            let kind: String = row.get(0);
            let created = tx.execute(
                "INSERT INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 SELECT $1, $2, name, user_data, recognition_model, created_ms FROM snapshot_collections \
                 WHERE sid = $3 ON CONFLICT DO NOTHING",
                &[&kind, &id, &sid],
            )?;
            if created == 0 {
                return Err(StoreError::Exists);
            }
            tx.execute(
                "INSERT INTO persons (kind, cid, person_id, name, user_data) \
                 SELECT $1, $2, person_id, name, user_data FROM snapshot_persons WHERE sid = $3 ORDER BY seq",
                &[&kind, &id, &sid],
            )?;
            tx.execute(
                "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) \
                 SELECT $1, $2, person_id, face_id, user_data, model, embedding FROM snapshot_faces \
                 WHERE sid = $3 ORDER BY seq",
                &[&kind, &id, &sid],
            )?;
            Ok(())
        })
    }

    fn snapshot(&self, id: &str) -> StoreResult<Option<Snapshot>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT id, kind, object_id, apply_scope, user_data, created_ms, updated_ms FROM snapshots \
                     WHERE id = $1",
                    &[&id],
                )?
                .map(|r| read_snapshot(&r)))
        })
    }

    fn list_snapshots(&self) -> StoreResult<Vec<Snapshot>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, kind, object_id, apply_scope, user_data, created_ms, updated_ms FROM snapshots \
                 ORDER BY id",
                &[],
            )?;
            Ok(rows.iter().map(read_snapshot).collect())
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
            let n = tx.execute("UPDATE snapshots SET updated_ms = $2 WHERE id = $1", &[&id, &now_ms])?;
            if let Some(scope) = apply_scope {
                let scope = serde_json::to_string(scope).map_err(|e| StoreError::Internal(e.to_string()))?;
                tx.execute("UPDATE snapshots SET apply_scope = $2 WHERE id = $1", &[&id, &scope])?;
            }
            if let Some(ud) = user_data {
                tx.execute("UPDATE snapshots SET user_data = $2 WHERE id = $1", &[&id, &ud])?;
            }
            Ok(n > 0)
        })
    }

    fn delete_snapshot(&self, id: &str) -> StoreResult<bool> {
        self.write(|tx| Ok(delete_rows(tx, "id = $1", &id)? > 0))
    }

    fn delete_snapshots_before(&self, ms: i64) -> StoreResult<usize> {
        self.write(|tx| delete_rows(tx, "created_ms < $1", &ms))
    }

    fn put_operation(&self, op: &Operation) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO operations (id, status, created_ms, last_action_ms, resource_location, message) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
                 created_ms = EXCLUDED.created_ms, last_action_ms = EXCLUDED.last_action_ms, \
                 resource_location = EXCLUDED.resource_location, message = EXCLUDED.message",
                &[&op.id, &op.status, &op.created_ms, &op.last_action_ms, &op.resource_location, &op.message],
            )?;
            Ok(())
        })
    }

    fn operation(&self, id: &str) -> StoreResult<Option<Operation>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT id, status, created_ms, last_action_ms, resource_location, message FROM operations \
                     WHERE id = $1",
                    &[&id],
                )?
                .map(|r| Operation {
                    id: r.get(0),
                    status: r.get(1),
                    created_ms: r.get(2),
                    last_action_ms: r.get(3),
                    resource_location: r.get(4),
                    message: r.get(5),
                }))
        })
    }
}
