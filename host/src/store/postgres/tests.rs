//! The PostgreSQL store's tests, each on a throwaway cluster of its own: the shared suite
//! (`store::suite`), and what several hosts on one database need.

use std::sync::Arc;

use super::testing::Cluster;
use super::*;
use crate::store::suite::{self, collection, face, person};

fn store(cluster: &Cluster) -> PostgresStore {
    PostgresStore::connect(&cluster.database()).unwrap()
}

#[test]
fn the_shared_suite() {
    let cluster = Cluster::start();
    let url = cluster.database();
    suite::run(&suite::Backend {
        new: &|| store(&cluster),
        reopen: &|| Box::new(PostgresStore::connect(&url).unwrap()),
        snapshot_rows: &|s: &PostgresStore| -> i64 {
            s.with(|c| {
                let sql = "SELECT (SELECT COUNT(*) FROM snapshot_faces) + (SELECT COUNT(*) FROM snapshot_persons) \
                           + (SELECT COUNT(*) FROM snapshot_collections)";
                Ok(c.query_one(sql, &[])?.get(0))
            })
            .unwrap()
        },
    });
}

/// Hosts starting together on a new database migrate it once; a database from a newer version
/// is refused with what to do.
#[test]
fn hosts_migrate_once_and_a_newer_schema_is_refused() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let hosts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::connect(&url).map(|_| ()))
        })
        .collect();
    for h in hosts {
        h.join().unwrap().unwrap();
    }
    let s = PostgresStore::connect(&url).unwrap();
    s.with(|c| Ok(c.execute("UPDATE face_schema SET version = 99", &[])?)).unwrap();
    let err = PostgresStore::connect(&url).unwrap_err();
    assert!(err.to_string().contains("newer version"), "{err}");
    let err = PostgresStore::connect("postgresql://face@127.0.0.1:1/none").unwrap_err();
    assert!(err.to_string().contains("Storage:ConnectionString"), "{err}");
}

/// Two hosts adding faces to one list at once: the quota holds exactly, and every face either
/// stored or refused with QuotaExceeded.
#[test]
fn two_hosts_adding_at_once_keep_the_quota() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let hosts = [Arc::new(PostgresStore::connect(&url).unwrap()), Arc::new(PostgresStore::connect(&url).unwrap())];
    hosts[0].create_collection(&collection(Kind::FaceList, "l")).unwrap();
    hosts[0].create_collection(&collection(Kind::PersonGroup, "g")).unwrap();
    hosts[1].create_person(Kind::PersonGroup, "g", &person("p")).unwrap();
    let adders: Vec<_> = (0..4)
        .map(|t| {
            let host = hosts[t % 2].clone();
            std::thread::spawn(move || {
                let (mut stored, mut refused) = (0, 0);
                for i in 0..300 {
                    let (kind, cid, who) =
                        if i % 2 == 0 { (Kind::FaceList, "l", None) } else { (Kind::PersonGroup, "g", Some("p")) };
                    match host.add_face(kind, cid, &face(t * 1000 + i, who)) {
                        Ok(()) => stored += 1,
                        Err(StoreError::Quota(_)) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (stored, refused)
            })
        })
        .collect();
    let (stored, refused) = adders.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    // 600 list faces fit under 1,000; 600 faces of one person meet its 248.
    assert_eq!((stored, refused), (600 + 248, 600 - 248));
    assert_eq!(hosts[1].all_faces(Kind::FaceList, "l").unwrap().len(), 600);
    assert_eq!(hosts[0].person(Kind::PersonGroup, "g", "p").unwrap().unwrap().face_ids.len(), 248);
}

/// What several hosts share beyond the rows: a restart fails only the trainings no host holds;
/// deletes and trainings reach every listening host as events, after they commit; faceIds are
/// found by every host until they expire.
#[test]
fn holds_events_and_face_ids_are_shared() {
    use crate::store::{Event, SharedFace, SharedFaceIds, Training, TrainingState, training_key};
    let cluster = Cluster::start();
    let url = cluster.database();
    let (a, b) = (PostgresStore::connect(&url).unwrap(), PostgresStore::connect(&url).unwrap());
    let kind = Kind::LargePersonGroup;
    let running = |at| Training {
        state: TrainingState::Running,
        created_ms: at,
        last_action_ms: at,
        last_success_ms: None,
        message: None,
    };
    for g in ["held", "left"] {
        a.create_collection(&collection(kind, g)).unwrap();
        a.set_training(kind, g, &running(1)).unwrap();
    }
    // A lease's life (30 s) after the trainings were marked running at 1 ms.
    let later = 1 + 30_001;
    a.create_collection(&collection(kind, "new")).unwrap();
    a.set_training(kind, "new", &running(later - 1)).unwrap();
    let hold = a.hold(&training_key(kind, "held")).unwrap();
    assert_eq!(b.fail_interrupted(later).unwrap(), 1, "only the training no host holds is failed");
    assert_eq!(b.training(kind, "held").unwrap().unwrap().state, TrainingState::Running);
    assert_eq!(b.training(kind, "left").unwrap().unwrap().state, TrainingState::Failed);
    assert_eq!(
        b.training(kind, "new").unwrap().unwrap().state,
        TrainingState::Running,
        "a training marked running less than a lease's life ago may not have taken its lease yet"
    );
    drop(hold);
    assert_eq!(b.fail_expired(later + 1).unwrap(), 1, "once its host let go, it is");
    assert!(a.delete_collection(kind, "new").unwrap());

    let (sent, received) = std::sync::mpsc::channel();
    b.listen(move |e| {
        let _ = sent.send(e);
    })
    .unwrap();
    let next = || received.recv_timeout(std::time::Duration::from_secs(60)).expect("an event within 60 s");
    assert_eq!(next(), None, "connected");
    a.create_person(kind, "held", &person("p")).unwrap();
    a.add_face(kind, "held", &face(1, Some("p"))).unwrap();
    a.add_face(kind, "held", &face(2, Some("p"))).unwrap();
    assert!(a.delete_face(kind, "held", Some("p"), &face(1, None).face_id).unwrap());
    assert_eq!(
        next(),
        Some(Event::DeadFace { kind, cid: "held".into(), person_id: Some("p".into()), face_id: face(1, None).face_id })
    );
    a.put_index_part(kind, "held", 5, 0, b"index").unwrap();
    let done = Training { state: TrainingState::Succeeded, last_success_ms: Some(5), ..running(1) };
    a.save_trained(kind, "held", 1, &done, 5).unwrap();
    assert_eq!(next(), Some(Event::Trained { kind, cid: "held".into(), trained_ms: 5 }));
    assert!(a.delete_person(kind, "held", "p").unwrap());
    assert_eq!(next(), Some(Event::DeadPerson { kind, cid: "held".into(), person_id: "p".into() }));
    assert!(a.delete_collection(kind, "held").unwrap());
    assert_eq!(next(), Some(Event::Gone { kind, cid: "held".into() }));
    // A delete that finds nothing tells no one: the next event is the next change's.
    assert!(!a.delete_face(kind, "left", None, "none").unwrap());
    assert!(a.delete_collection(kind, "left").unwrap());
    assert_eq!(next(), Some(Event::Gone { kind, cid: "left".into() }));

    let f = SharedFace {
        id: uuid::Uuid::new_v4().to_string(),
        recognition: "recognition_01".into(),
        model: "sface_2021dec".into(),
        embedding: vec![0.25, -1.0, f32::MIN_POSITIVE],
        expires_ms: 1_000,
    };
    SharedFaceIds::put(&a, std::slice::from_ref(&f)).unwrap();
    let ids = [f.id.clone(), uuid::Uuid::new_v4().to_string()];
    assert_eq!(SharedFaceIds::get(&b, &ids, 999).unwrap(), std::slice::from_ref(&f), "found by the other host");
    assert!(SharedFaceIds::get(&b, &ids, 1_000).unwrap().is_empty(), "not once expired");
    assert_eq!(SharedFaceIds::sweep(&b, 1_000).unwrap(), 1);
}

/// More calls at once than the pool's connections wait for one instead of opening more.
#[test]
fn calls_beyond_the_pool_wait_for_a_connection() {
    let cluster = Cluster::start();
    let store = Arc::new(store(&cluster));
    let calls: Vec<_> = (0..MAX_CONNECTIONS + 8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .with(|c| {
                        let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                                   AND backend_type = 'client backend'";
                        let open: i64 = c.query_one(sql, &[])?.get(0);
                        c.execute("SELECT pg_sleep(0.2)", &[])?;
                        Ok(open)
                    })
                    .unwrap()
            })
        })
        .collect();
    let most = calls.into_iter().map(|c| c.join().unwrap()).max().unwrap();
    assert!(most <= MAX_CONNECTIONS as i64, "{most} connections open at once");
    assert!(store.pool.lock().unwrap().open <= MAX_CONNECTIONS);
}

/// TLS with libpq's sslmodes, on a cluster with `ssl=on` whose certificate names `localhost`:
/// verify-full connects by that name (and the connection is encrypted), is refused by an address
/// the certificate does not name, with a message saying so; verify-ca takes that address; a
/// client certificate admits the role that needs one; require is refused by a server without TLS.
#[test]
fn tls_connects_with_libpq_sslmodes_and_refuses_what_they_refuse() {
    let (cluster, certs) = Cluster::start_tls();
    let db = cluster.database();
    let dbname = db.rsplit('/').next().unwrap().to_owned();
    let port = cluster.port();
    let ca = certs.ca.display().to_string();
    let by_name = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=face dbname={dbname} sslmode=verify-full sslrootcert={ca}"
    );
    let store = PostgresStore::connect(&by_name).expect("verify-full by the certificate's name");
    let encrypted: bool = store
        .with(|c| Ok(c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])?.get(0)))
        .unwrap();
    assert!(encrypted, "the connection is not encrypted");

    let by_address = format!("postgresql://face@127.0.0.1:{port}/{dbname}?sslmode=verify-full&sslrootcert={ca}");
    let e = PostgresStore::connect(&by_address).unwrap_err().to_string();
    assert!(e.contains("does not name this host"), "{e}");
    PostgresStore::connect(&by_address.replace("verify-full", "verify-ca")).expect("verify-ca by address");

    let e = PostgresStore::connect(&format!("postgresql://face@127.0.0.1:{port}/{dbname}?sslmode=verify-full"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs sslrootcert"), "{e}");

    // certuser gets in with its certificate only.
    cluster_admin(&db, "CREATE ROLE certuser LOGIN SUPERUSER");
    let as_certuser = format!("postgresql://certuser@localhost:{port}/{dbname}?sslmode=verify-full&sslrootcert={ca}");
    assert!(PostgresStore::connect(&as_certuser).is_err(), "certuser without a certificate");
    let with_cert =
        format!("{as_certuser}&sslcert={}&sslkey={}", certs.client_cert.display(), certs.client_key.display());
    PostgresStore::connect(&with_cert).expect("certuser with its client certificate");

    // A server without TLS: require is refused, prefer connects in the clear.
    let plain = Cluster::start();
    let plain_db = plain.database();
    let e = PostgresStore::connect(&format!("{plain_db}?sslmode=require")).unwrap_err().to_string();
    assert!(e.to_lowercase().contains("tls"), "{e}");
    PostgresStore::connect(&format!("{plain_db}?sslmode=prefer")).expect("prefer without TLS");
}

fn cluster_admin(url: &str, sql: &str) {
    let mut admin = ::postgres::Client::connect(url, ::postgres::NoTls).expect("the cluster answers");
    admin.batch_execute(sql).expect("an admin statement");
}

/// Leases are rows: they outlive a cut connection (a failover, a pooler restarting), they are
/// renewed while held and released when dropped, a wait for one ends at its deadline naming the
/// holder, one taken over is noticed by its old holder, and a dead host's expire with its work.
#[test]
fn leases_outlive_cut_connections_and_end_with_their_host() {
    use std::time::Duration;

    use crate::store::{Hold, Training, TrainingState, training_key};
    let cluster = Cluster::start();
    let url = cluster.database();
    let mut a = PostgresStore::connect(&url).unwrap();
    let mut b = PostgresStore::connect(&url).unwrap();
    // 9 s to live, renewed every 3 s: a holder that renews at all keeps it, on any machine.
    a.set_lease_times(leases::LeaseTimes { ttl: Duration::from_secs(9), wait: Duration::from_secs(60) });
    b.set_lease_times(leases::LeaseTimes { ttl: Duration::from_secs(9), wait: Duration::from_millis(300) });
    let kind = Kind::PersonGroup;
    let key = training_key(kind, "g");
    let expiry = |key: &str| -> f64 {
        let sql = "SELECT EXTRACT(EPOCH FROM expires_at)::float8 FROM leases WHERE key = $1";
        a.with(|c| Ok(c.query_one(sql, &[&key])?.get(0))).unwrap()
    };
    // A renewal of `hold`'s lease now, as its renewer thread makes one every third of the ttl.
    let renew = |hold: &Hold| {
        let state = hold.lease.clone().expect("a lease");
        leases::Renewer { db: a.db.clone(), state }.renew_once()
    };

    let hold = a.hold(&key).unwrap();
    let first = expiry(&key);
    cluster_admin(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    );
    let e = b.hold(&key).unwrap_err().to_string();
    assert!(e.contains(&format!("held by {}", a.owner)), "the wait names the holder: {e}");
    // a's idle connections broke: its next call opens another instead of failing.
    assert!(a.collection(kind, "g").unwrap().is_none());
    assert_eq!(renew(&hold), leases::Renewal::Renewed, "renewed after the cut");
    assert!(expiry(&key) > first);
    assert!(!hold.lost());
    drop(hold);
    let again = b.hold(&key).expect("free once released");
    drop(again);

    // Taken over (its holder could not renew in time): the old holder is told, and its fenced
    // writes are refused.
    a.create_collection(&collection(kind, "g")).unwrap();
    let running = Training {
        state: TrainingState::Running,
        created_ms: 1,
        last_action_ms: 1,
        last_success_ms: None,
        message: None,
    };
    let hold = a.hold(&key).unwrap();
    crate::store::fenced(hold.fence(), || a.set_training(kind, "g", &running)).expect("a write fenced by a held lease");
    cluster_admin(&url, &format!("UPDATE leases SET token = 'another', owner = 'another-host/1' WHERE key = '{key}'"));
    let e = crate::store::fenced(hold.fence(), || a.set_training(kind, "g", &running)).unwrap_err();
    assert!(matches!(e, StoreError::NotHeld(_)), "{e:?}");
    assert_eq!(renew(&hold), leases::Renewal::Lost, "the take-over noticed");
    assert!(hold.lost());
    drop(hold);
    assert_eq!(b.lease_holder(&key).unwrap().map(|h| h.0).as_deref(), Some("another-host/1"), "not released");
    assert!(a.delete_collection(kind, "g").unwrap());

    // A host that died: its lease stays until it expires, then its training is failed and the
    // lease is free to take.
    a.create_collection(&collection(kind, "dead")).unwrap();
    a.set_training(kind, "dead", &running).unwrap();
    let dead = training_key(kind, "dead");
    let lease = |expires: &str| {
        cluster_admin(
            &url,
            &format!(
                "INSERT INTO leases (key, owner, token, taken_at, expires_at) VALUES ('{dead}', 'dead-host/1', 't', \
                 now(), now() + interval '{expires}') ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at"
            ),
        )
    };
    lease("1 hour");
    assert_eq!(b.fail_expired(1_000_000).unwrap(), 0, "its lease is alive");
    assert!(b.hold(&dead).is_err());
    lease("-1 second");
    assert_eq!(b.fail_expired(1_000_000).unwrap(), 1, "its lease expired");
    let failed = b.training(kind, "dead").unwrap().unwrap();
    assert_eq!(failed.state, TrainingState::Failed);
    assert!(failed.message.unwrap().contains("stopped"));
    drop(b.hold(&dead).expect("an expired lease is free"));

    // Unsent usage: each record claimed by one host's heartbeat at a time; a claim that expires
    // (its host stopped) is taken over.
    use crate::store::{UsageJournal, UsageRecord};
    for id in ["u1", "u2", "u3"] {
        let r = UsageRecord {
            id: id.into(),
            time_ms: 1,
            meter: "face.transactions".into(),
            quantity: 1,
            operation: "POST /face/v1.0/detect".into(),
        };
        a.record_usage(&r).unwrap();
    }
    let ids = |s: &PostgresStore| s.unsent_usage(10).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&a), ["u1", "u2", "u3"], "oldest first");
    assert!(ids(&b).is_empty(), "claimed by the other host");
    assert_eq!(ids(&a), ["u1", "u2", "u3"], "its own claim is renewed");
    a.mark_usage_sent(&["u1".to_owned()], 5).unwrap();
    cluster_admin(&url, "UPDATE usage SET claimed_until = now() - interval '1 second'");
    assert_eq!(ids(&b), ["u2", "u3"], "an expired claim is taken over");
    assert_eq!(b.usage_backlog().unwrap(), 2);
}
