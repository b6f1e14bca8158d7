//! The store tests every implementation passes: each takes a new, empty store. `run` is the one
//! list of them, which each backend's tests call with what only it can give ([`Backend`]), so
//! both stores always run the same tests.

use super::*;

/// What the suite needs of a backend.
pub(crate) struct Backend<'a, S> {
    /// A new store on an empty database.
    pub new: &'a dyn Fn() -> S,
    /// A store on one database that outlives it: each call opens that database again.
    pub reopen: &'a dyn Fn() -> Box<dyn Store>,
    /// The rows left in a store's snapshot tables.
    pub snapshot_rows: &'a dyn Fn(&S) -> i64,
}

/// Every test of the suite on `backend`, in turn.
pub(crate) fn run<S: Store + BulkSink>(backend: &Backend<S>) {
    let new = backend.new;
    quotas_answer_quota_exceeded_and_write_nothing(&new());
    missing_parents_and_taken_ids_are_refused(&new());
    deleting_a_person_or_collection_takes_its_faces_and_training(&new());
    paging_is_sorted_by_id_with_an_exclusive_start(&new());
    a_billed_write_journals_its_usage_in_its_own_transaction(&new());
    a_bulk_file_loads_persons_and_faces(&new());
    a_store_keeps_everything_across_reopening_and_embeddings_exactly(backend.reopen);
    let store = new();
    a_snapshot_is_its_collection_at_one_instant_and_applies_whole(&store, &|| (backend.snapshot_rows)(&store));
}

pub(crate) fn collection(kind: Kind, id: &str) -> Collection {
    Collection {
        kind,
        id: id.into(),
        name: "n".into(),
        user_data: None,
        recognition_model: "recognition_01".into(),
        created_ms: 1,
    }
}

pub(crate) fn person(id: &str) -> Person {
    Person { person_id: id.into(), name: "p".into(), user_data: Some("u".into()), face_ids: vec![] }
}

pub(crate) fn face(id: usize, person: Option<&str>) -> StoredFace {
    StoredFace {
        face_id: format!("f{id:07}"),
        person_id: person.map(String::from),
        user_data: None,
        model: "sface_2021dec".into(),
        embedding: vec![id as f32, -1.5, f32::MIN_POSITIVE],
    }
}

pub(crate) fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("face-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub(crate) fn snapshot(id: &str, kind: Kind, object_id: &str, created_ms: i64) -> Snapshot {
    Snapshot {
        id: id.into(),
        kind,
        object_id: object_id.into(),
        apply_scope: vec!["x".into()],
        user_data: None,
        created_ms,
        updated_ms: created_ms,
    }
}

/// What one store wrote, another store opened on the same database reads.
pub(crate) fn a_store_keeps_everything_across_reopening_and_embeddings_exactly(open: &dyn Fn() -> Box<dyn Store>) {
    {
        let store = open();
        store.create_collection(&collection(Kind::LargeFaceList, "l")).unwrap();
        store.add_face(Kind::LargeFaceList, "l", &face(7, None)).unwrap();
        store.take_snapshot(&snapshot("s", Kind::LargeFaceList, "l", 1)).unwrap();
    }
    let store = open();
    let faces = store.all_faces(Kind::LargeFaceList, "l").unwrap();
    assert_eq!(faces, vec![face(7, None)]);
    let snap = store.snapshot("s").unwrap().unwrap();
    assert_eq!(snap.apply_scope, ["x"]);
    store.apply_snapshot("s", "copy").unwrap();
    assert_eq!(store.all_faces(Kind::LargeFaceList, "copy").unwrap(), faces);
    assert_eq!(store.apply_snapshot("s", "copy"), Err(StoreError::Exists));
    assert_eq!(store.delete_snapshots_before(1), Ok(0));
    assert_eq!(store.delete_snapshots_before(2), Ok(1));
    assert!(store.snapshot("s").unwrap().is_none());
}

pub(crate) fn quotas_answer_quota_exceeded_and_write_nothing(store: &dyn Store) {
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
    // The count the quota reads follows deletes, and a list made anew starts from zero.
    let gone = store.all_faces(Kind::FaceList, "l").unwrap()[0].face_id.clone();
    assert!(store.delete_face(Kind::FaceList, "l", None, &gone).unwrap());
    store.add_face(Kind::FaceList, "l", &face(1000, None)).unwrap();
    assert!(matches!(store.add_face(Kind::FaceList, "l", &face(1001, None)), Err(StoreError::Quota(_))));
    assert!(store.delete_collection(Kind::FaceList, "l").unwrap());
    store.create_collection(&collection(Kind::FaceList, "l")).unwrap();
    store.add_face(Kind::FaceList, "l", &face(1, None)).unwrap();
    assert_eq!(store.all_faces(Kind::FaceList, "l").unwrap().len(), 1);
}

pub(crate) fn missing_parents_and_taken_ids_are_refused(store: &dyn Store) {
    assert_eq!(store.create_person(Kind::PersonGroup, "none", &person("p")), Err(StoreError::NoCollection));
    store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
    assert_eq!(store.create_collection(&collection(Kind::LargePersonGroup, "g")), Err(StoreError::Exists));
    // The same id in another kind is another collection.
    store.create_collection(&collection(Kind::PersonGroup, "g")).unwrap();
    assert_eq!(store.add_face(Kind::LargePersonGroup, "g", &face(1, Some("ghost"))), Err(StoreError::NoPerson));
    assert!(store.all_faces(Kind::LargePersonGroup, "g").unwrap().is_empty());
}

pub(crate) fn deleting_a_person_or_collection_takes_its_faces_and_training(store: &dyn Store) {
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
    // A training is saved only once its index is written.
    assert!(store.save_trained(Kind::LargePersonGroup, "g", 1, &t, 2).is_err());
    store.put_index_part(Kind::LargePersonGroup, "g", 2, 0, b"part 0").unwrap();
    store.put_index_part(Kind::LargePersonGroup, "g", 2, 1, b", part 1").unwrap();
    store.save_trained(Kind::LargePersonGroup, "g", 1, &t, 2).unwrap();
    assert_eq!(store.index_bytes(Kind::LargePersonGroup, "g", 2).unwrap().as_deref(), Some(&b"part 0, part 1"[..]));
    assert_eq!(store.index_bytes(Kind::LargePersonGroup, "g", 3).unwrap(), None);
    // A collection deleted and made anew is not the one trained.
    assert_eq!(store.save_trained(Kind::LargePersonGroup, "g", 2, &t, 2), Err(StoreError::NoCollection));
    assert!(store.delete_person(Kind::LargePersonGroup, "g", "a").unwrap());
    assert_eq!(store.all_faces(Kind::LargePersonGroup, "g").unwrap().len(), 1);
    // The trained index keeps the rest of the last training; a deleted person's faces are
    // logged for it to mark dead.
    let dead = store.dead_faces(Kind::LargePersonGroup, "g").unwrap();
    assert_eq!(dead.iter().map(|d| d.0.as_deref()).collect::<Vec<_>>(), [Some("a")]);
    // A training whose scan began over a minute after that death saw it: saving it clears the
    // log and the older index.
    store.put_index_part(Kind::LargePersonGroup, "g", 5, 0, b"new").unwrap();
    let newer = Training { last_success_ms: Some(5), ..t.clone() };
    store.save_trained(Kind::LargePersonGroup, "g", 1, &newer, crate::time::now_ms() + 60_001).unwrap();
    assert!(store.dead_faces(Kind::LargePersonGroup, "g").unwrap().is_empty());
    assert_eq!(store.index_bytes(Kind::LargePersonGroup, "g", 2).unwrap(), None);
    // A training interrupted by a restart is failed, not left running (an hour after it began:
    // with several hosts, once no lease holds it).
    let running = Training { state: TrainingState::Running, ..t.clone() };
    store.set_training(Kind::LargePersonGroup, "g", &running).unwrap();
    assert_eq!(store.fail_interrupted(3_600_000).unwrap(), 1);
    let after = store.training(Kind::LargePersonGroup, "g").unwrap().unwrap();
    assert_eq!((after.state, after.last_success_ms), (TrainingState::Failed, Some(2)));
    assert!(store.delete_collection(Kind::LargePersonGroup, "g").unwrap());
    assert!(store.training(Kind::LargePersonGroup, "g").unwrap().is_none());
    assert_eq!(store.index_bytes(Kind::LargePersonGroup, "g", 5).unwrap(), None);
    store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
    assert!(store.list_persons(Kind::LargePersonGroup, "g", None, 10).unwrap().is_empty());
}

pub(crate) fn paging_is_sorted_by_id_with_an_exclusive_start(store: &dyn Store) {
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

pub(crate) fn a_snapshot_is_its_collection_at_one_instant_and_applies_whole(
    store: &dyn Store,
    rows_left: &dyn Fn() -> i64,
) {
    store.create_collection(&collection(Kind::LargePersonGroup, "g")).unwrap();
    for p in ["p2", "p1"] {
        store.create_person(Kind::LargePersonGroup, "g", &person(p)).unwrap();
    }
    for (i, p) in [(3, "p1"), (1, "p2"), (2, "p1")] {
        store.add_face(Kind::LargePersonGroup, "g", &face(i, Some(p))).unwrap();
    }
    store.take_snapshot(&snapshot("s", Kind::LargePersonGroup, "g", 1)).unwrap();
    // Changes after the snapshot are not in it.
    store.add_face(Kind::LargePersonGroup, "g", &face(4, Some("p2"))).unwrap();
    store.apply_snapshot("s", "copy").unwrap();
    let copied = store.collection(Kind::LargePersonGroup, "copy").unwrap().unwrap();
    assert_eq!((copied.name.as_str(), copied.id.as_str()), ("n", "copy"));
    let p1 = store.person(Kind::LargePersonGroup, "copy", "p1").unwrap().unwrap();
    assert_eq!(p1.face_ids, [face(3, None).face_id, face(2, None).face_id], "faces in the order they were added");
    assert_eq!(store.person(Kind::LargePersonGroup, "copy", "p2").unwrap().unwrap().face_ids.len(), 1);
    assert_eq!(store.all_faces(Kind::LargePersonGroup, "copy").unwrap().len(), 3);
    // The quota counts of the new group follow its rows.
    for i in 5..(5 + 246) {
        store.add_face(Kind::LargePersonGroup, "copy", &face(i, Some("p1"))).unwrap();
    }
    assert!(matches!(
        store.add_face(Kind::LargePersonGroup, "copy", &face(999, Some("p1"))),
        Err(StoreError::Quota(_))
    ));
    // A snapshot of a collection that is gone is refused, and leaves nothing behind.
    assert_eq!(store.take_snapshot(&snapshot("t", Kind::LargeFaceList, "none", 1)), Err(StoreError::NoCollection));
    assert!(store.snapshot("t").unwrap().is_none());
    // Deleting a snapshot deletes its rows.
    assert!(store.delete_snapshot("s").unwrap());
    assert_eq!(rows_left(), 0);
}

pub(crate) fn a_billed_write_journals_its_usage_in_its_own_transaction(store: &dyn Store) {
    let record = |id: &str| UsageRecord {
        id: id.into(),
        time_ms: 1,
        meter: "face.transactions".into(),
        quantity: 1,
        operation: "POST /face/v1.0/facelists/{faceListId}/persistedfaces".into(),
    };
    store.create_collection(&collection(Kind::FaceList, "l")).unwrap();

    // The face and its usage commit together, once: a second write of the same request does
    // not journal it again.
    let usage = PendingUsage::new(record("u1"));
    for_usage(Some(usage.clone()), || {
        store.add_face(Kind::FaceList, "l", &face(1, None)).unwrap();
        store.update_face(Kind::FaceList, "l", None, "f0000001", Some("d")).unwrap();
    });
    assert!(usage.take().is_none(), "the write took the record");
    let ids: Vec<String> = store.unsent_usage(10).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["u1"]);

    // A write that changes nothing (an unknown face) leaves the record to the billing layer.
    let usage = PendingUsage::new(record("u2"));
    let deleted = for_usage(Some(usage.clone()), || store.delete_face(Kind::FaceList, "l", None, "nope").unwrap());
    assert!(!deleted);
    assert_eq!(usage.take().map(|r| r.id).as_deref(), Some("u2"));

    // When the usage cannot be written, neither is the effect: a record whose id is already in
    // the journal makes the insert fail, and the face is not added.
    let usage = PendingUsage::new(record("u1"));
    let err = for_usage(Some(usage.clone()), || store.add_face(Kind::FaceList, "l", &face(2, None)));
    assert!(err.is_err());
    assert_eq!(store.all_faces(Kind::FaceList, "l").unwrap().len(), 1, "the face went with its usage");
    assert!(usage.take().is_some(), "the record is still the billing layer's");
    assert_eq!(store.usage_backlog().unwrap(), 1);
}

/// A bulk file loads its persons and faces, in batches (a person may first appear in a later
/// one), with their embeddings exactly; one that would pass the kind's limits is refused.
pub(crate) fn a_bulk_file_loads_persons_and_faces(store: &dyn BulkSink) {
    let header = |kind: u8, cid: &str| {
        let mut b = b"FACEBULK".to_vec();
        b.push(kind);
        for text in [cid, "recognition_04", "sface_2021dec"] {
            b.extend((text.len() as u16).to_le_bytes());
            b.extend(text.as_bytes());
        }
        b.extend(3u32.to_le_bytes());
        b
    };
    let record = |b: &mut Vec<u8>, person: u128, face: u128, v: [f32; 3]| {
        b.extend(person.to_le_bytes());
        b.extend(face.to_le_bytes());
        v.iter().for_each(|x| b.extend(x.to_le_bytes()));
    };
    // A LargePersonGroup (Kind::ALL[1]): two persons, three faces.
    let mut file = header(1, "bulk");
    record(&mut file, 7, 70, [1.0, 2.0, f32::MIN_POSITIVE]);
    record(&mut file, 7, 71, [3.0, 4.0, 5.0]);
    record(&mut file, 8, 80, [-1.0, 0.5, 0.25]);
    // Two faces to a transaction: person 8 first appears in the second batch.
    let mut seen = Vec::new();
    let done = bulk::bulk_load_in(store, &mut file.as_slice(), 2, &mut |d| seen.push(d.faces)).unwrap();
    assert_eq!((done.persons, done.faces), (2, 3));
    assert_eq!(seen, [2, 3]);
    let kind = Kind::ALL[1];
    let collection = store.collection(kind, "bulk").unwrap().expect("created");
    assert_eq!(collection.recognition_model, "recognition_04");
    let persons = store.list_persons(kind, "bulk", None, 10).unwrap();
    assert_eq!(persons.len(), 2);
    let seven = uuid::Uuid::from_u128(7).to_string();
    let p = persons.iter().find(|p| p.person_id == seven).expect("person 7");
    assert_eq!(p.face_ids.len(), 2);
    let got = store.embeddings(kind, "bulk", &[uuid::Uuid::from_u128(71).to_string()]).unwrap();
    assert_eq!(got, [Some(vec![3.0, 4.0, 5.0])]);
    // A FaceList (at most 1,000 faces): a file of 1,001 is refused, and none is kept.
    let list = Kind::ALL.iter().position(|k| !k.has_persons() && k.max_faces() == 1000).unwrap() as u8;
    let mut file = header(list, "full");
    for i in 0..1001u128 {
        record(&mut file, 0, 1000 + i, [i as f32, 1.0, 1.0]);
    }
    let e = bulk_load(store, &mut file.as_slice(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, StoreError::Quota(_)), "{e:?}");
    let kind = Kind::ALL[list as usize];
    let faces = store.embeddings(kind, "full", &[uuid::Uuid::from_u128(1000).to_string()]).unwrap();
    assert_eq!(faces, [None], "the refused batch wrote nothing");
}
