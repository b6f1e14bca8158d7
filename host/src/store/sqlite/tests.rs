//! The SQLite store's tests: the shared suite (`store::suite`), and what only SQLite has.

use super::*;
use crate::store::suite::{self, collection, face, temp};

#[test]
fn the_shared_suite() {
    let dir = temp("reopen");
    suite::run(&suite::Backend {
        new: &|| SqliteStore::in_memory().unwrap(),
        reopen: &|| Box::new(SqliteStore::open_dir(&dir).unwrap()),
        snapshot_rows: &|store: &SqliteStore| -> i64 {
            store
                .with(|c| {
                    let sql = "SELECT (SELECT COUNT(*) FROM snapshot_faces) + (SELECT COUNT(*) FROM snapshot_persons) \
                               + (SELECT COUNT(*) FROM snapshot_collections)";
                    Ok(c.query_row(sql, [], |r| r.get(0))?)
                })
                .unwrap()
        },
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_taken_before_the_rows_migration_still_applies() {
    let store = SqliteStore::in_memory().unwrap();
    // The JSON form snapshots had before migration 004.
    let export = serde_json::json!({
        "collection": collection(Kind::FaceList, "old"),
        "persons": [],
        "faces": [face(1, None), face(2, None)],
    });
    store
        .with(|c| {
            c.execute(
                "INSERT INTO snapshots (id, kind, object_id, apply_scope, user_data, created_ms, updated_ms, data) \
                 VALUES ('s', 'FaceList', 'old', '[]', NULL, 1, 1, ?1)",
                [serde_json::to_vec(&export).unwrap()],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.snapshot("s").unwrap().unwrap().kind, Kind::FaceList);
    store.apply_snapshot("s", "new").unwrap();
    assert_eq!(store.all_faces(Kind::FaceList, "new").unwrap(), [face(1, None), face(2, None)]);
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

/// A lookup answers while a long write holds the writing connection (a training's copy of a
/// large collection, say), from the last commit.
#[test]
fn reads_do_not_wait_behind_a_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = temp("readers");
    let store = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    store.create_collection(&collection(Kind::PersonGroup, "g")).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let (started, wait) = std::sync::mpsc::channel();
    let writer = {
        let (store, released) = (store.clone(), released.clone());
        std::thread::spawn(move || {
            store
                .with(|conn| {
                    let tx = conn.transaction()?;
                    tx.execute("UPDATE collections SET name = 'renamed' WHERE id = 'g'", [])?;
                    started.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                    released.store(true, Ordering::SeqCst);
                    tx.commit()?;
                    Ok(())
                })
                .unwrap();
        })
    };
    wait.recv().unwrap();
    let seen = store.collection(Kind::PersonGroup, "g").unwrap().unwrap();
    assert!(!released.load(Ordering::SeqCst), "the read waited for the write");
    assert_eq!(seen.name, "n", "the read sees the last commit, not the write under way");
    writer.join().unwrap();
    assert_eq!(store.collection(Kind::PersonGroup, "g").unwrap().unwrap().name, "renamed");
    let _ = std::fs::remove_dir_all(&dir);
}
