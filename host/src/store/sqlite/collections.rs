//! Groups and lists, persons, persisted faces and training in SQLite.

use rusqlite::{Connection, OptionalExtension, params};

use super::*;

impl CollectionStore for SqliteStore {
    fn create_collection(&self, c: &Collection) -> StoreResult<()> {
        self.write(|conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.kind.name(), c.id, c.name, c.user_data, c.recognition_model, c.created_ms],
            )?;
            if n == 0 { Err(StoreError::Exists) } else { Ok(()) }
        })
    }

    fn collection(&self, kind: Kind, id: &str) -> StoreResult<Option<Collection>> {
        self.read(|conn| {
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
        self.read(|conn| {
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
        self.write(|tx| {
            if !collection_exists(tx, kind, id)? {
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
            Ok(true)
        })
    }

    fn delete_collection(&self, kind: Kind, id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM collections WHERE kind = ?1 AND id = ?2", params![kind.name(), id])?;
            for table in ["persons", "faces", "training", "trained_faces", "trained_index", "trained_dead", "counts"] {
                tx.execute(&format!("DELETE FROM {table} WHERE kind = ?1 AND cid = ?2"), params![kind.name(), id])?;
            }
            Ok(n > 0)
        })
    }

    fn create_person(&self, kind: Kind, cid: &str, person: &Person) -> StoreResult<()> {
        self.write(|tx| {
            if !collection_exists(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            let count = counted(tx, kind, cid, "persons")?;
            if count >= kind.max_persons() {
                return Err(StoreError::Quota(format!(
                    "Person number reached person group level limit ({}).",
                    kind.max_persons()
                )));
            }
            insert_person(tx, kind, cid, person)?;
            Ok(())
        })
    }

    fn person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<Option<Person>> {
        self.read(|conn| {
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
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT person_id, name, user_data FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id > ?3 \
                 ORDER BY person_id LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![kind.name(), cid, start.unwrap_or(""), top as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(Vec::new()) };
            // The page's faces in one query over the index on (kind, cid, person_id).
            let mut faces = conn.prepare_cached(
                "SELECT person_id, face_id FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id >= ?3 \
                 AND person_id <= ?4 ORDER BY person_id, seq",
            )?;
            let mut by_person = std::collections::HashMap::<String, Vec<String>>::new();
            for row in faces.query_map(params![kind.name(), cid, first.0, last.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })? {
                let (p, f) = row?;
                by_person.entry(p).or_default().push(f);
            }
            Ok(rows
                .into_iter()
                .map(|(person_id, name, user_data)| {
                    let face_ids = by_person.remove(&person_id).unwrap_or_default();
                    Person { person_id, name, user_data, face_ids }
                })
                .collect())
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
        self.write(|tx| {
            if !person_exists(tx, kind, cid, person_id)? {
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
            Ok(true)
        })
    }

    fn delete_person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM persons WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                params![kind.name(), cid, person_id],
            )?;
            // A deleted person's faces leave the trained index too: nothing of them is kept or
            // found. The index marks them dead, also when it is loaded after a restart.
            tx.execute(
                "INSERT INTO trained_dead (kind, cid, person_id, face_id, at_ms) \
                 SELECT kind, cid, person_id, face_id, ?4 FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                params![kind.name(), cid, person_id, crate::time::now_ms()],
            )?;
            for table in ["faces", "trained_faces"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE kind = ?1 AND cid = ?2 AND person_id = ?3"),
                    params![kind.name(), cid, person_id],
                )?;
            }
            Ok(n > 0)
        })
    }

    fn add_face(&self, kind: Kind, cid: &str, face: &StoredFace) -> StoreResult<()> {
        self.write(|tx| {
            if !collection_exists(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            if let Some(pid) = &face.person_id
                && !person_exists(tx, kind, cid, pid)?
            {
                return Err(StoreError::NoPerson);
            }
            // A list's faces are counted by the triggers of migration 003; a person's (at most 248)
            // through the index on (kind, cid, person_id).
            let count: u64 = match &face.person_id {
                None => counted(tx, kind, cid, "faces")?,
                Some(pid) => tx.query_row(
                    "SELECT COUNT(*) FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3",
                    params![kind.name(), cid, pid],
                    |r| r.get(0),
                )?,
            };
            if count >= kind.max_faces() {
                return Err(StoreError::Quota(format!(
                    "Persisted face number reached limit ({} per {}).",
                    kind.max_faces(),
                    if kind.has_persons() { "person" } else { "list" }
                )));
            }
            insert_face(tx, kind, cid, face)?;
            Ok(())
        })
    }

    fn face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<Option<StoredFace>> {
        self.read(|conn| {
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
        self.read(|conn| {
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
        self.write(|conn| {
            let n = conn.execute(
                "UPDATE faces SET user_data = ?5 WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id, user_data],
            )?;
            Ok(n > 0)
        })
    }

    fn delete_face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id],
            )?;
            if n > 0 && kind.needs_training() {
                tx.execute(
                    "INSERT INTO trained_dead (kind, cid, person_id, face_id, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![kind.name(), cid, person_key(person_id), face_id, crate::time::now_ms()],
                )?;
            }
            tx.execute(
                "DELETE FROM trained_faces WHERE kind = ?1 AND cid = ?2 AND person_id = ?3 AND face_id = ?4",
                params![kind.name(), cid, person_key(person_id), face_id],
            )?;
            Ok(n > 0)
        })
    }

    fn all_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
        self.read(|conn| all_faces(conn, kind, cid))
    }

    fn training(&self, kind: Kind, cid: &str) -> StoreResult<Option<Training>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT state, created_ms, last_action_ms, last_success_ms, message FROM training \
                     WHERE kind = ?1 AND cid = ?2",
                    params![kind.name(), cid],
                    |r| {
                        Ok(Training {
                            state: TrainingState::from_name(&r.get::<_, String>(0)?),
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
        self.write(|tx| {
            if !collection_exists(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            write_training(tx, kind, cid, t)?;
            Ok(())
        })
    }

    fn save_trained(&self, kind: Kind, cid: &str, created_ms: i64, t: &Training, scanned_ms: i64) -> StoreResult<()> {
        self.write(|tx| {
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
            let trained =
                t.last_success_ms.ok_or_else(|| StoreError::Internal("a saved training has no time".into()))?;
            let parts: i64 = tx.query_row(
                "SELECT COUNT(*) FROM trained_index WHERE kind = ?1 AND cid = ?2 AND trained_ms = ?3",
                params![kind.name(), cid, trained],
                |r| r.get(0),
            )?;
            if parts == 0 {
                return Err(StoreError::Internal("the trained index was not written".into()));
            }
            write_training(tx, kind, cid, t)?;
            // The previous index, the legacy copy of faces, and the deaths the new index's scan
            // surely saw go. A delete stamped just before the scan began may have committed after
            // its read transaction started, so a minute of deaths before the scan stays too:
            // marking a face that is not in the index dead changes nothing.
            tx.execute(
                "DELETE FROM trained_index WHERE kind = ?1 AND cid = ?2 AND trained_ms <> ?3",
                params![kind.name(), cid, trained],
            )?;
            tx.execute("DELETE FROM trained_faces WHERE kind = ?1 AND cid = ?2", params![kind.name(), cid])?;
            tx.execute(
                "DELETE FROM trained_dead WHERE kind = ?1 AND cid = ?2 AND at_ms < ?3",
                params![kind.name(), cid, scanned_ms - DEATHS_KEPT_MS],
            )?;
            Ok(())
        })
    }

    fn put_index_part(&self, kind: Kind, cid: &str, trained_ms: i64, part: u32, data: &[u8]) -> StoreResult<()> {
        // Outside any billed request's transaction: a part changes no face.
        crate::store::for_usage(None, || {
            self.write(|tx| {
                if !collection_exists(tx, kind, cid)? {
                    return Err(StoreError::NoCollection);
                }
                tx.execute(
                    "INSERT OR REPLACE INTO trained_index (kind, cid, trained_ms, part, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![kind.name(), cid, trained_ms, part, data],
                )?;
                Ok(())
            })
        })
    }

    fn read_index(
        &self,
        kind: Kind,
        cid: &str,
        trained_ms: i64,
        read: &mut dyn FnMut(u64, &mut dyn std::io::Read) -> StoreResult<()>,
    ) -> StoreResult<bool> {
        self.read(|conn| {
            let (parts, len): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM trained_index \
                 WHERE kind = ?1 AND cid = ?2 AND trained_ms = ?3",
                params![kind.name(), cid, trained_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if parts == 0 {
                return Ok(false);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT data FROM trained_index WHERE kind = ?1 AND cid = ?2 AND trained_ms = ?3 AND part = ?4",
            )?;
            let mut reader = crate::store::PartsReader::new(parts as usize, |part| {
                Ok(stmt.query_row(params![kind.name(), cid, trained_ms, part as i64], |r| r.get::<_, Vec<u8>>(0))?)
            });
            let out = read(len.max(0) as u64, &mut reader);
            if let Some(e) = reader.error.take() {
                return Err(e);
            }
            out.map(|()| true)
        })
    }

    fn dead_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<(Option<String>, String)>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT person_id, face_id FROM trained_dead WHERE kind = ?1 AND cid = ?2")?;
            let rows = stmt
                .query_map(params![kind.name(), cid], |r| {
                    Ok((Some(r.get::<_, String>(0)?).filter(|p| !p.is_empty()), r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn scan_faces(
        &self,
        kind: Kind,
        cid: &str,
        trained: bool,
        f: &mut dyn FnMut(ScannedFace<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.read(|conn| {
            let sql = if trained {
                "SELECT face_id, person_id, model, embedding FROM trained_faces WHERE kind = ?1 AND cid = ?2"
            } else {
                "SELECT face_id, person_id, model, embedding FROM faces WHERE kind = ?1 AND cid = ?2"
            };
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query(params![kind.name(), cid])?;
            let mut embedding = Vec::new();
            while let Some(r) = rows.next()? {
                let person = r.get_ref(1)?.as_str_or_null()?.filter(|p| !p.is_empty());
                embedding.clear();
                embedding.extend(
                    r.get_ref(3)?.as_blob()?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                f(ScannedFace {
                    face_id: r.get_ref(0)?.as_str()?,
                    person_id: person,
                    model: r.get_ref(2)?.as_str()?,
                    embedding: &embedding,
                })?;
            }
            Ok(())
        })
    }

    fn embeddings(&self, kind: Kind, cid: &str, face_ids: &[String]) -> StoreResult<Vec<Option<Vec<f32>>>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT embedding FROM faces WHERE kind = ?1 AND cid = ?2 AND face_id = ?3")?;
            face_ids
                .iter()
                .map(|id| {
                    Ok(stmt
                        .query_row(params![kind.name(), cid, id], |r| Ok(floats(r.get_ref(0)?.as_blob()?)))
                        .optional()?)
                })
                .collect()
        })
    }

    fn fail_interrupted(&self, now_ms: i64) -> StoreResult<usize> {
        self.write(|tx| {
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
            Ok(trainings + operations)
        })
    }
}

/// How long before a training's scan began the deaths logged for its index are kept.
const DEATHS_KEPT_MS: i64 = 60_000;

/// A collection's persons or faces, as the triggers of migration 003 count them.
fn counted(conn: &Connection, kind: Kind, cid: &str, column: &str) -> StoreResult<u64> {
    let sql = format!("SELECT {column} FROM counts WHERE kind = ?1 AND cid = ?2");
    Ok(conn.query_row(&sql, params![kind.name(), cid], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0).max(0) as u64)
}

fn write_training(conn: &Connection, kind: Kind, cid: &str, t: &Training) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO training (kind, cid, state, created_ms, last_action_ms, last_success_ms, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![kind.name(), cid, t.state.name(), t.created_ms, t.last_action_ms, t.last_success_ms, t.message],
    )?;
    Ok(())
}
