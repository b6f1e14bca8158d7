//! Groups and lists, persons, persisted faces and training in PostgreSQL.

use super::*;

/// How long before a training's scan began the deaths logged for its index are kept (as in the
/// SQLite store: a delete stamped just before the scan may have committed after it began).
const DEATHS_KEPT_MS: i64 = 60_000;

impl CollectionStore for PostgresStore {
    fn create_collection(&self, c: &Collection) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO collections (kind, id, name, user_data, recognition_model, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&c.kind.name(), &c.id, &c.name, &c.user_data, &c.recognition_model, &c.created_ms],
            )?;
            if n == 0 { Err(StoreError::Exists) } else { Ok(()) }
        })
    }

    fn collection(&self, kind: Kind, id: &str) -> StoreResult<Option<Collection>> {
        // On every request's path: one statement, one round trip.
        let rows = self.read_one(
            "SELECT id, name, user_data, recognition_model, created_ms FROM collections WHERE kind = $1 AND id = $2",
            &[&kind.name(), &id],
        )?;
        Ok(rows.first().map(|r| read_collection(r, kind)))
    }

    fn list_collections(&self, kind: Kind, start: Option<&str>, top: usize) -> StoreResult<Vec<Collection>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, name, user_data, recognition_model, created_ms FROM collections \
                 WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&kind.name(), &start.unwrap_or(""), &(top as i64)],
            )?;
            Ok(rows.iter().map(|r| read_collection(r, kind)).collect())
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
            if !lock_collection(tx, kind, id)? {
                return Ok(false);
            }
            if let Some(name) = name {
                tx.execute(
                    "UPDATE collections SET name = $3 WHERE kind = $1 AND id = $2",
                    &[&kind.name(), &id, &name],
                )?;
            }
            if let Some(ud) = user_data {
                tx.execute(
                    "UPDATE collections SET user_data = $3 WHERE kind = $1 AND id = $2",
                    &[&kind.name(), &id, &ud],
                )?;
            }
            Ok(true)
        })
    }

    fn delete_collection(&self, kind: Kind, id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM collections WHERE kind = $1 AND id = $2", &[&kind.name(), &id])?;
            for table in ["persons", "faces", "training", "trained_index", "trained_dead", "counts"] {
                tx.execute(&format!("DELETE FROM {table} WHERE kind = $1 AND cid = $2"), &[&kind.name(), &id])?;
            }
            if n > 0 {
                tx.notify(&Event::Gone { kind, cid: id.to_owned() })?;
            }
            Ok(n > 0)
        })
    }

    fn create_person(&self, kind: Kind, cid: &str, person: &Person) -> StoreResult<()> {
        self.write(|tx| {
            if !lock_collection(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            if counted(tx, kind, cid, "persons")? >= kind.max_persons() {
                return Err(StoreError::Quota(format!(
                    "Person number reached person group level limit ({}).",
                    kind.max_persons()
                )));
            }
            insert_person(tx, kind, cid, person)
        })
    }

    fn person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<Option<Person>> {
        self.read(|tx| {
            let Some(row) = tx.query_opt(
                "SELECT name, user_data FROM persons WHERE kind = $1 AND cid = $2 AND person_id = $3",
                &[&kind.name(), &cid, &person_id],
            )?
            else {
                return Ok(None);
            };
            let faces = tx.query(
                "SELECT face_id FROM faces WHERE kind = $1 AND cid = $2 AND person_id = $3 ORDER BY seq",
                &[&kind.name(), &cid, &person_id],
            )?;
            Ok(Some(Person {
                person_id: person_id.to_owned(),
                name: row.get(0),
                user_data: row.get(1),
                face_ids: faces.iter().map(|r| r.get(0)).collect(),
            }))
        })
    }

    fn list_persons(&self, kind: Kind, cid: &str, start: Option<&str>, top: usize) -> StoreResult<Vec<Person>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT person_id, name, user_data FROM persons WHERE kind = $1 AND cid = $2 \
                 AND person_id > $3 ORDER BY person_id LIMIT $4",
                &[&kind.name(), &cid, &start.unwrap_or(""), &(top as i64)],
            )?;
            let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            // The page's faces in one query over the index on (kind, cid, person_id, seq).
            let faces = tx.query(
                "SELECT person_id, face_id FROM faces WHERE kind = $1 AND cid = $2 AND person_id = ANY($3) \
                 ORDER BY seq",
                &[&kind.name(), &cid, &ids],
            )?;
            let mut by_person = std::collections::HashMap::<String, Vec<String>>::new();
            for f in &faces {
                by_person.entry(f.get(0)).or_default().push(f.get(1));
            }
            Ok(rows
                .iter()
                .map(|r| {
                    let person_id: String = r.get(0);
                    let face_ids = by_person.remove(&person_id).unwrap_or_default();
                    Person { person_id, name: r.get(1), user_data: r.get(2), face_ids }
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
                    "UPDATE persons SET name = $4 WHERE kind = $1 AND cid = $2 AND person_id = $3",
                    &[&kind.name(), &cid, &person_id, &name],
                )?;
            }
            if let Some(ud) = user_data {
                tx.execute(
                    "UPDATE persons SET user_data = $4 WHERE kind = $1 AND cid = $2 AND person_id = $3",
                    &[&kind.name(), &cid, &person_id, &ud],
                )?;
            }
            Ok(true)
        })
    }

    fn delete_person(&self, kind: Kind, cid: &str, person_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            // After any AddFace to the collection under way (it holds this lock), so no face
            // is added to a person being deleted.
            if !lock_collection(tx, kind, cid)? {
                return Ok(false);
            }
            let n = tx.execute(
                "DELETE FROM persons WHERE kind = $1 AND cid = $2 AND person_id = $3",
                &[&kind.name(), &cid, &person_id],
            )?;
            // A deleted person's faces leave the trained index too: every host's index marks
            // them dead, also one loaded later.
            tx.execute(
                "INSERT INTO trained_dead (kind, cid, person_id, face_id, at_ms) \
                 SELECT kind, cid, person_id, face_id, $4 FROM faces WHERE kind = $1 AND cid = $2 AND person_id = $3",
                &[&kind.name(), &cid, &person_id, &crate::time::now_ms()],
            )?;
            tx.execute(
                "DELETE FROM faces WHERE kind = $1 AND cid = $2 AND person_id = $3",
                &[&kind.name(), &cid, &person_id],
            )?;
            if n > 0 {
                tx.notify(&Event::DeadPerson { kind, cid: cid.to_owned(), person_id: person_id.to_owned() })?;
            }
            Ok(n > 0)
        })
    }

    fn add_face(&self, kind: Kind, cid: &str, face: &StoredFace) -> StoreResult<()> {
        self.write(|tx| {
            if !lock_collection(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            if let Some(pid) = &face.person_id
                && !person_exists(tx, kind, cid, pid)?
            {
                return Err(StoreError::NoPerson);
            }
            let count: u64 = match &face.person_id {
                None => counted(tx, kind, cid, "faces")?,
                Some(pid) => tx
                    .query_opt(
                        "SELECT COUNT(*) FROM faces WHERE kind = $1 AND cid = $2 AND person_id = $3",
                        &[&kind.name(), &cid, &pid.as_str()],
                    )?
                    .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64),
            };
            if count >= kind.max_faces() {
                return Err(StoreError::Quota(format!(
                    "Persisted face number reached limit ({} per {}).",
                    kind.max_faces(),
                    if kind.has_persons() { "person" } else { "list" }
                )));
            }
            insert_face(tx, kind, cid, face)
        })
    }

    fn face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<Option<StoredFace>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT face_id, person_id, user_data, model, embedding FROM faces \
                     WHERE kind = $1 AND cid = $2 AND person_id = $3 AND face_id = $4",
                    &[&kind.name(), &cid, &person_key(person_id), &face_id],
                )?
                .map(|r| read_face(&r)))
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
        self.read(|tx| {
            let rows = tx.query(
                "SELECT face_id, person_id, user_data, model, embedding FROM faces \
                 WHERE kind = $1 AND cid = $2 AND person_id = $3 AND face_id > $4 \
                 ORDER BY face_id LIMIT $5",
                &[&kind.name(), &cid, &person_key(person_id), &start.unwrap_or(""), &(top as i64)],
            )?;
            Ok(rows.iter().map(read_face).collect())
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
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE faces SET user_data = $5 WHERE kind = $1 AND cid = $2 AND person_id = $3 AND face_id = $4",
                &[&kind.name(), &cid, &person_key(person_id), &face_id, &user_data],
            )?;
            Ok(n > 0)
        })
    }

    fn delete_face(&self, kind: Kind, cid: &str, person_id: Option<&str>, face_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM faces WHERE kind = $1 AND cid = $2 AND person_id = $3 AND face_id = $4",
                &[&kind.name(), &cid, &person_key(person_id), &face_id],
            )?;
            if n > 0 && kind.needs_training() {
                tx.execute(
                    "INSERT INTO trained_dead (kind, cid, person_id, face_id, at_ms) VALUES ($1, $2, $3, $4, $5)",
                    &[&kind.name(), &cid, &person_key(person_id), &face_id, &crate::time::now_ms()],
                )?;
                let person_id = person_id.map(str::to_owned);
                tx.notify(&Event::DeadFace { kind, cid: cid.to_owned(), person_id, face_id: face_id.to_owned() })?;
            }
            Ok(n > 0)
        })
    }

    fn all_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<StoredFace>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT face_id, person_id, user_data, model, embedding FROM faces WHERE kind = $1 AND cid = $2 \
                 ORDER BY seq",
                &[&kind.name(), &cid],
            )?;
            Ok(rows.iter().map(read_face).collect())
        })
    }

    fn training(&self, kind: Kind, cid: &str) -> StoreResult<Option<Training>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT state, created_ms, last_action_ms, last_success_ms, message FROM training \
                     WHERE kind = $1 AND cid = $2",
                    &[&kind.name(), &cid],
                )?
                .map(|r| Training {
                    state: TrainingState::from_name(r.get(0)),
                    created_ms: r.get(1),
                    last_action_ms: r.get(2),
                    last_success_ms: r.get(3),
                    message: r.get(4),
                }))
        })
    }

    fn set_training(&self, kind: Kind, cid: &str, t: &Training) -> StoreResult<()> {
        self.write(|tx| {
            if !lock_collection(tx, kind, cid)? {
                return Err(StoreError::NoCollection);
            }
            write_training(tx, kind, cid, t)
        })
    }

    fn save_trained(&self, kind: Kind, cid: &str, created_ms: i64, t: &Training, scanned_ms: i64) -> StoreResult<()> {
        self.write(|tx| {
            let same: Option<i64> = tx
                .query_opt(
                    "SELECT created_ms FROM collections WHERE kind = $1 AND id = $2 FOR UPDATE",
                    &[&kind.name(), &cid],
                )?
                .map(|r| r.get(0));
            if same != Some(created_ms) {
                return Err(StoreError::NoCollection);
            }
            let trained =
                t.last_success_ms.ok_or_else(|| StoreError::Internal("a saved training has no time".into()))?;
            let parts: i64 = tx
                .query_opt(
                    "SELECT COUNT(*) FROM trained_index WHERE kind = $1 AND cid = $2 AND trained_ms = $3",
                    &[&kind.name(), &cid, &trained],
                )?
                .map_or(0, |r| r.get(0));
            if parts == 0 {
                return Err(StoreError::Internal("the trained index was not written".into()));
            }
            write_training(tx, kind, cid, t)?;
            tx.execute(
                "DELETE FROM trained_index WHERE kind = $1 AND cid = $2 AND trained_ms <> $3",
                &[&kind.name(), &cid, &trained],
            )?;
            tx.execute(
                "DELETE FROM trained_dead WHERE kind = $1 AND cid = $2 AND at_ms < $3",
                &[&kind.name(), &cid, &(scanned_ms - DEATHS_KEPT_MS)],
            )?;
            tx.notify(&Event::Trained { kind, cid: cid.to_owned(), trained_ms: trained })?;
            Ok(())
        })
    }

    fn put_index_part(&self, kind: Kind, cid: &str, trained_ms: i64, part: u32, data: &[u8]) -> StoreResult<()> {
        // Outside any billed request's transaction: a part changes no face.
        crate::store::for_usage(None, || {
            self.write(|tx| {
                if tx
                    .query_opt("SELECT 1 FROM collections WHERE kind = $1 AND id = $2", &[&kind.name(), &cid])?
                    .is_none()
                {
                    return Err(StoreError::NoCollection);
                }
                tx.execute(
                    "INSERT INTO trained_index (kind, cid, trained_ms, part, data) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (kind, cid, trained_ms, part) DO UPDATE SET data = EXCLUDED.data",
                    &[&kind.name(), &cid, &trained_ms, &(part as i32), &data],
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
        self.read(|tx| {
            let row = tx.query_one(
                "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0)::bigint FROM trained_index \
                 WHERE kind = $1 AND cid = $2 AND trained_ms = $3",
                &[&kind.name(), &cid, &trained_ms],
            )?;
            let (parts, len): (i64, i64) = (row.get(0), row.get(1));
            if parts == 0 {
                return Ok(false);
            }
            // One part at a time, so no result holds the whole index twice.
            let mut reader = crate::store::PartsReader::new(parts as usize, |part| {
                let row = tx.query_one(
                    "SELECT data FROM trained_index WHERE kind = $1 AND cid = $2 AND trained_ms = $3 AND part = $4",
                    &[&kind.name(), &cid, &trained_ms, &(part as i32)],
                )?;
                Ok(row.get::<_, Vec<u8>>(0))
            });
            let out = read(len.max(0) as u64, &mut reader);
            if let Some(e) = reader.error.take() {
                return Err(e);
            }
            out.map(|()| true)
        })
    }

    fn dead_faces(&self, kind: Kind, cid: &str) -> StoreResult<Vec<(Option<String>, String)>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT person_id, face_id FROM trained_dead WHERE kind = $1 AND cid = $2",
                &[&kind.name(), &cid],
            )?;
            Ok(rows
                .iter()
                .map(|r| (Some(r.get::<_, String>(0)).filter(|p| !p.is_empty()), r.get::<_, String>(1)))
                .collect())
        })
    }

    fn scan_faces(
        &self,
        kind: Kind,
        cid: &str,
        trained: bool,
        f: &mut dyn FnMut(ScannedFace<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        if trained {
            // The copy of faces older SQLite versions kept for an index; never in PostgreSQL.
            return Ok(());
        }
        self.read(|tx| {
            let mut embedding = Vec::new();
            tx.for_each(
                "SELECT face_id, person_id, model, embedding FROM faces WHERE kind = $1 AND cid = $2",
                &[&kind.name(), &cid],
                |r| {
                    let person: &str = r.get(1);
                    embedding.clear();
                    embedding.extend(
                        r.get::<_, &[u8]>(3).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    );
                    f(ScannedFace {
                        face_id: r.get(0),
                        person_id: Some(person).filter(|p| !p.is_empty()),
                        model: r.get(2),
                        embedding: &embedding,
                    })
                },
            )
        })
    }

    fn embeddings(&self, kind: Kind, cid: &str, face_ids: &[String]) -> StoreResult<Vec<Option<Vec<f32>>>> {
        // Identify's and find-similar's exact scores: one statement, one round trip.
        let rows = self.read_one(
            "SELECT face_id, embedding FROM faces WHERE kind = $1 AND cid = $2 AND face_id = ANY($3)",
            &[&kind.name(), &cid, &face_ids],
        )?;
        let mut found: std::collections::HashMap<String, Vec<f32>> =
            rows.iter().map(|r| (r.get::<_, String>(0), floats(r.get::<_, &[u8]>(1)))).collect();
        Ok(face_ids.iter().map(|id| found.remove(id)).collect())
    }

    fn fail_interrupted(&self, now_ms: i64) -> StoreResult<usize> {
        self.fail_expired(now_ms)
    }

    fn fail_expired(&self, now_ms: i64) -> StoreResult<usize> {
        // Several hosts share this database: a training or operation whose lease is alive is
        // running on some host. One whose lease is gone or expired was left by a host that
        // stopped, unless it began less than a lease's life ago (between being marked running
        // and taking its lease).
        let ttl_ms = self.leases.ttl.as_millis() as i64;
        self.write(|tx| {
            let trainings = tx.execute(
                "UPDATE training SET state = 'failed', last_action_ms = $1, \
                 message = 'Training was interrupted: the host running it stopped. Train again.' \
                 WHERE state = 'running' AND last_action_ms < $1 - $2 AND NOT EXISTS (SELECT 1 FROM leases \
                 WHERE key = 'face-training/' || training.kind || '/' || training.cid AND expires_at > now())",
                &[&now_ms, &ttl_ms],
            )?;
            let operations = tx.execute(
                "UPDATE operations SET status = 'failed', last_action_ms = $1, \
                 message = 'The operation was interrupted: the host running it stopped. Start it again.' \
                 WHERE status IN ('notstarted', 'running') AND last_action_ms < $1 - $2 AND NOT EXISTS \
                 (SELECT 1 FROM leases WHERE key = 'face-operation/' || operations.id AND expires_at > now())",
                &[&now_ms, &ttl_ms],
            )?;
            Ok((trainings + operations) as usize)
        })
    }

    fn hold(&self, key: &str) -> StoreResult<Hold> {
        self.take_lease(key)
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(self.db.stats())
    }
}

/// A collection's persons or faces, as the triggers count them.
fn counted(tx: &mut Tx<'_>, kind: Kind, cid: &str, column: &str) -> StoreResult<u64> {
    let sql = format!("SELECT {column} FROM counts WHERE kind = $1 AND cid = $2");
    Ok(tx.query_opt(&sql, &[&kind.name(), &cid])?.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
}

fn write_training(tx: &mut Tx<'_>, kind: Kind, cid: &str, t: &Training) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO training (kind, cid, state, created_ms, last_action_ms, last_success_ms, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, cid) DO UPDATE SET state = EXCLUDED.state, \
         created_ms = EXCLUDED.created_ms, last_action_ms = EXCLUDED.last_action_ms, \
         last_success_ms = EXCLUDED.last_success_ms, message = EXCLUDED.message",
        &[&kind.name(), &cid, &t.state.name(), &t.created_ms, &t.last_action_ms, &t.last_success_ms, &t.message],
    )?;
    Ok(())
}

pub(super) fn insert_face(tx: &mut Tx<'_>, kind: Kind, cid: &str, f: &StoredFace) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &kind.name(),
            &cid,
            &person_key(f.person_id.as_deref()),
            &f.face_id,
            &f.user_data,
            &f.model,
            &blob(&f.embedding),
        ],
    )?;
    Ok(())
}

pub(super) fn insert_person(tx: &mut Tx<'_>, kind: Kind, cid: &str, p: &Person) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO persons (kind, cid, person_id, name, user_data) VALUES ($1, $2, $3, $4, $5)",
        &[&kind.name(), &cid, &p.person_id, &p.name, &p.user_data],
    )?;
    Ok(())
}

impl crate::store::BulkSink for PostgresStore {
    fn write_bulk(&self, kind: Kind, cid: &str, batch: &[(Option<String>, StoredFace)]) -> StoreResult<()> {
        // One statement per table for the whole batch (arrays unnested), not a round trip a face.
        let persons: Vec<String> = batch.iter().filter_map(|(p, _)| p.clone()).collect();
        let (mut people, mut ids, mut embeddings) = (Vec::new(), Vec::new(), Vec::new());
        for (_, f) in batch {
            people.push(person_key(f.person_id.as_deref()).to_owned());
            ids.push(f.face_id.clone());
            embeddings.push(blob(&f.embedding));
        }
        let model = batch.first().map(|(_, f)| f.model.clone()).unwrap_or_default();
        crate::store::for_usage(None, || {
            self.write(|tx| {
                tx.execute(
                    "INSERT INTO persons (kind, cid, person_id, name, user_data) \
                     SELECT $1, $2, p, 'bulk', NULL FROM unnest($3::text[]) AS p",
                    &[&kind.name(), &cid, &persons],
                )?;
                tx.execute(
                    "INSERT INTO faces (kind, cid, person_id, face_id, user_data, model, embedding) \
                     SELECT $1, $2, p, f, NULL, $3, e FROM unnest($4::text[], $5::text[], $6::bytea[]) AS t(p, f, e)",
                    &[&kind.name(), &cid, &model, &people, &ids, &embeddings],
                )?;
                let persons = counted(tx, kind, cid, "persons")?;
                let faces = counted(tx, kind, cid, "faces")?;
                crate::store::bulk::check_limits(kind, persons, faces)
            })
        })
    }
}
