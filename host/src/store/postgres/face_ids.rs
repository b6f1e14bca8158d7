//! faceIds in PostgreSQL, so that a faceId detected on one host is found on every other for its
//! whole time to live.

use super::*;

impl SharedFaceIds for PostgresStore {
    fn put(&self, faces: &[SharedFace]) -> StoreResult<()> {
        // Outside any billed request's transaction: a faceId is no stored face.
        crate::store::for_usage(None, || {
            self.write(|tx| {
                for f in faces {
                    tx.execute(
                        "INSERT INTO face_ids (id, recognition, model, embedding, expires_ms) VALUES ($1, $2, $3, $4, $5)",
                        &[&f.id, &f.recognition, &f.model, &blob(&f.embedding), &f.expires_ms],
                    )?;
                }
                Ok(())
            })
        })
    }

    fn get(&self, ids: &[String], now_ms: i64) -> StoreResult<Vec<SharedFace>> {
        // On the path of every request with another host's faceId: one statement, one round trip.
        let rows = self.read_one(
            "SELECT id, recognition, model, embedding, expires_ms FROM face_ids WHERE id = ANY($1) AND expires_ms > $2",
            &[&ids, &now_ms],
        )?;
        Ok(rows
            .iter()
            .map(|r| SharedFace {
                id: r.get(0),
                recognition: r.get(1),
                model: r.get(2),
                embedding: floats(r.get::<_, &[u8]>(3)),
                expires_ms: r.get(4),
            })
            .collect())
    }

    fn sweep(&self, now_ms: i64) -> StoreResult<u64> {
        crate::store::for_usage(None, || {
            self.write(|tx| tx.execute("DELETE FROM face_ids WHERE expires_ms <= $1", &[&now_ms]))
        })
    }

    fn count(&self, now_ms: i64) -> StoreResult<u64> {
        self.read(|tx| {
            let n: i64 = tx.query_one("SELECT COUNT(*) FROM face_ids WHERE expires_ms > $1", &[&now_ms])?.get(0);
            Ok(n.max(0) as u64)
        })
    }
}
