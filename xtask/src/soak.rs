//! `cargo xtask soak [--requests N] [--concurrency C] [--hosts H]`: N mixed requests (default
//! 10,000) from C clients (default 16) against the real face-server on loopback, billing to a real
//! face-meter, with the server killed (SIGKILL) halfway and restarted on the same data. With
//! `--hosts H` (2 or more), H face-servers share one throwaway PostgreSQL cluster and each
//! request goes to the next host in turn; the first host is killed halfway while the others keep
//! serving, then restarted (its memory is the one sampled). With `--restart-db` (and `--hosts`
//! 2 or more), PostgreSQL is restarted halfway instead (`pg_ctl -m fast stop`, 3 s down, start):
//! meanwhile the hosts answer 503 with Retry-After, never 500 and never a hang past the request
//! timeout; after it every host answers a database read with 200 within 10 s of the database's
//! return, and the checks below hold across it. With `--pgbouncer`, the hosts reach PostgreSQL
//! through PgBouncer in transaction mode (its `query_wait_timeout` 10 s), as behind a pooler.
//!
//! The mix: detect (body and URL, from a loopback image server), verify, identify, AddFace to a
//! LargePersonGroup person and to a LargeFaceList, person CRUD, training, and bad inputs (corrupt
//! images, unknown ids, malformed JSON, bad parameters). Afterwards it checks, and fails unless:
//! - no answer was a 5xx other than the documented 503 and 429;
//! - every acknowledged write (a person, a face, a list face) is present and every acknowledged
//!   delete is gone;
//! - the meter holds a record for every answered billable call (its id is the answer's
//!   `apim-request-id`), each once; records beyond those are calls whose answer the kill cut off;
//! - resident memory does not keep growing: it is sampled every 200 ms, and within each life of the
//!   server the peak over the last 30% of its requests is within 1.5x of the peak over 20-50%
//!   (after a warm-up of a fifth; the second life starts when the restarted server is ready); the
//!   second life's late peak is within 1.5x of the first's (memory that grows with the stored
//!   data shows there). Peaks over windows, not single readings: one reading swings by 50 MB or
//!   more as 16 photos pass through the engine at once.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image::{ImageFormat, imageops};
use serde_json::{Value, json};

use crate::server::{Served, build_server, start_meter, wait_ready};
use crate::util::{Flags, Rng, free_port, memory_mb, testdata_dir};

const KEY: &str = "soak-key";
const GROUP: &str = "soak-group";
const LIST: &str = "soak-list";

/// One answer (or a connection that failed).
#[derive(Debug, Clone)]
struct Answer {
    op: &'static str,
    /// `None`: the connection failed (the server was down).
    status: Option<u16>,
    ms: f64,
    request_id: Option<String>,
    body: Value,
}

#[derive(Debug, Default)]
struct Writes {
    /// personId -> its acknowledged persistedFaceIds.
    persons: HashMap<String, Vec<String>>,
    deleted_persons: Vec<String>,
    list_faces: Vec<String>,
}

struct Soak {
    /// The hosts' base URLs; each call goes to the next.
    bases: Vec<String>,
    next: AtomicUsize,
    agent: ureq::Agent,
    answers: Mutex<Vec<Answer>>,
    writes: Mutex<Writes>,
    photos: Vec<Vec<u8>>,
    image_base: String,
}

impl Soak {
    /// One call to the next host in turn, recorded with the answers.
    fn call(&self, op: &'static str, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let host = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        self.call_at(host, op, method, path, content_type, body)
    }

    /// One call to host `host`, recorded with the answers (the meter's check counts it).
    fn call_at(
        &self,
        host: usize,
        op: &'static str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let started = Instant::now();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/face/v1.0{path}", self.bases[host]))
            .header("Ocp-Apim-Subscription-Key", KEY)
            .header("Content-Type", content_type)
            .body(body)
            .expect("a request");
        let answer = match self.agent.run(request) {
            Ok(response) => {
                let status = response.status().as_u16();
                let request_id =
                    response.headers().get("apim-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let mut text = String::new();
                let _ = response.into_body().into_reader().read_to_string(&mut text);
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                Answer { op, status: Some(status), ms: 0.0, request_id, body }
            }
            Err(_) => Answer { op, status: None, ms: 0.0, request_id: None, body: Value::Null },
        };
        let answer = Answer { ms: started.elapsed().as_secs_f64() * 1000.0, ..answer };
        self.answers.lock().unwrap().push(answer.clone());
        answer
    }

    fn json(&self, op: &'static str, method: &str, path: &str, body: Value) -> Answer {
        self.call(op, method, path, "application/json", serde_json::to_vec(&body).expect("JSON"))
    }
}

fn ok(a: &Answer) -> bool {
    a.status.is_some_and(|s| (200..300).contains(&s))
}

/// One client's requests until `issued` reaches `total`.
fn client(soak: &Soak, seed: u64, issued: &AtomicUsize, total: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut face_ids: Vec<String> = Vec::new();
    let mut person: Option<String> = None;
    let photo = |rng: &mut Rng| soak.photos[rng.below(soak.photos.len())].clone();
    while issued.fetch_add(1, Ordering::SeqCst) < total {
        let roll = rng.below(100);
        let answer = match roll {
            0..=19 => {
                let a = soak.call("detect", "POST", "/detect", "application/octet-stream", photo(&mut rng));
                if ok(&a) {
                    face_ids.extend(
                        a.body.as_array().into_iter().flatten().filter_map(|f| f["faceId"].as_str().map(String::from)),
                    );
                }
                a
            }
            20..=24 => {
                let name = ["a.jpg", "b.jpg"][rng.below(2)];
                soak.json("detect (URL)", "POST", "/detect", json!({ "url": format!("{}/{name}", soak.image_base) }))
            }
            25..=34 if face_ids.len() >= 2 => {
                let (a, b) = (&face_ids[rng.below(face_ids.len())], &face_ids[rng.below(face_ids.len())]);
                soak.json("verify", "POST", "/verify", json!({ "faceId1": a, "faceId2": b }))
            }
            35..=49 if !face_ids.is_empty() => {
                let id = &face_ids[rng.below(face_ids.len())];
                soak.json(
                    "identify",
                    "POST",
                    "/identify",
                    json!({ "faceIds": [id], "largePersonGroupId": GROUP, "maxNumOfCandidatesReturned": 2 }),
                )
            }
            50..=57 => match &person {
                Some(p) => {
                    let path = format!("/largepersongroups/{GROUP}/persons/{p}/persistedfaces");
                    let a = soak.call("AddFace (person)", "POST", &path, "application/octet-stream", photo(&mut rng));
                    if ok(&a) {
                        let face = a.body["persistedFaceId"].as_str().unwrap_or_default().to_owned();
                        soak.writes.lock().unwrap().persons.entry(p.clone()).or_default().push(face);
                    } else if a.status == Some(404) {
                        person = None;
                    }
                    a
                }
                None => create_person(soak, &mut person),
            },
            58..=62 => create_person(soak, &mut person),
            63..=67 => {
                let a = soak.call(
                    "AddFace (list)",
                    "POST",
                    &format!("/largefacelists/{LIST}/persistedfaces"),
                    "application/octet-stream",
                    photo(&mut rng),
                );
                if ok(&a) {
                    soak.writes
                        .lock()
                        .unwrap()
                        .list_faces
                        .push(a.body["persistedFaceId"].as_str().unwrap_or_default().to_owned());
                }
                a
            }
            68..=72 => match &person {
                Some(p) => {
                    soak.call("get person", "GET", &format!("/largepersongroups/{GROUP}/persons/{p}"), "", vec![])
                }
                None => {
                    soak.call("list persons", "GET", &format!("/largepersongroups/{GROUP}/persons?top=10"), "", vec![])
                }
            },
            73..=75 => {
                soak.call("list persons", "GET", &format!("/largepersongroups/{GROUP}/persons?top=10"), "", vec![])
            }
            76..=77 => match person.take() {
                Some(p) => {
                    let a = soak.call(
                        "delete person",
                        "DELETE",
                        &format!("/largepersongroups/{GROUP}/persons/{p}"),
                        "",
                        vec![],
                    );
                    if ok(&a) {
                        let mut w = soak.writes.lock().unwrap();
                        w.persons.remove(&p);
                        w.deleted_persons.push(p);
                    }
                    a
                }
                None => create_person(soak, &mut person),
            },
            78 => soak.call("train", "POST", &format!("/largepersongroups/{GROUP}/train"), "", vec![]),
            79..=81 => {
                let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
                soak.call("bad: corrupt image", "POST", "/detect", "application/octet-stream", junk)
            }
            82..=84 => soak.call("bad: unknown group", "GET", "/largepersongroups/no-such-group", "", vec![]),
            85..=87 => {
                soak.call("bad: malformed JSON", "POST", "/verify", "application/json", b"{\"faceId1\": ".to_vec())
            }
            88..=89 => soak.call(
                "bad: parameter",
                "POST",
                "/detect?returnFaceAttributes=bogus",
                "application/octet-stream",
                photo(&mut rng),
            ),
            _ => soak.call(
                "detect (attributes)",
                "POST",
                "/detect?returnFaceAttributes=age,glasses,headPose",
                "application/octet-stream",
                photo(&mut rng),
            ),
        };
        if answer.status.is_none() {
            // The server is down (the kill): wait for it as a client would.
            std::thread::sleep(Duration::from_millis(100));
        }
        if face_ids.len() > 64 {
            face_ids.drain(..32);
        }
    }
}

fn create_person(soak: &Soak, person: &mut Option<String>) -> Answer {
    let a =
        soak.json("create person", "POST", &format!("/largepersongroups/{GROUP}/persons"), json!({ "name": "soak" }));
    if ok(&a) {
        let id = a.body["personId"].as_str().unwrap_or_default().to_owned();
        soak.writes.lock().unwrap().persons.insert(id.clone(), vec![]);
        *person = Some(id);
    }
    a
}

/// Serves the files of `dir` over HTTP on loopback, for URL images; returns its base URL.
fn image_server(dir: PathBuf) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let name = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
                let mut stream = &stream;
                let _ = match std::fs::read(dir.join(&name)).ok().filter(|_| !name.contains('/')) {
                    Some(bytes) => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len())
                                .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&bytes)),
                    None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            });
        }
    });
    Ok(base)
}

/// Resident memory of a process, MB.
fn rss_mb(pid: u32) -> f64 {
    memory_mb(pid).0
}

pub fn soak(args: &[String]) -> Result<()> {
    const USAGE: &str =
        "usage: cargo xtask soak [--requests N] [--concurrency C] [--hosts H [--restart-db] [--pgbouncer]]";
    let flags =
        Flags::parse(args, USAGE, &["--requests", "--concurrency", "--hosts"], &["--restart-db", "--pgbouncer"])?;
    let total: usize = flags.value("--requests", 10_000)?;
    let concurrency: usize = flags.value("--concurrency", 16)?;
    let hosts: usize = flags.value::<usize>("--hosts", 1)?.max(1);
    let (restart_db, pgbouncer) = (flags.on("--restart-db"), flags.on("--pgbouncer"));
    if (restart_db || pgbouncer) && hosts < 2 {
        bail!("--restart-db and --pgbouncer are for the hosts' PostgreSQL: give --hosts 2 or more; {USAGE}");
    }
    let (server, guest) = build_server()?;
    let dir = std::env::temp_dir().join(format!("face-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images"))?;
    // Two registry photos at a web size, as bodies and behind the loopback image server.
    let mut photos = Vec::new();
    for (name, out) in [("obama.jpg", "a.jpg"), ("biden.jpg", "b.jpg")] {
        let path = testdata_dir().join(name);
        let img = image::open(&path).with_context(|| format!("{}: run `cargo xtask testdata`", path.display()))?;
        let img = img.resize(480, 480, imageops::FilterType::Triangle).to_rgb8();
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, ImageFormat::Jpeg)?;
        std::fs::write(dir.join("images").join(out), bytes.get_ref())?;
        photos.push(bytes.into_inner());
    }
    let image_base = image_server(dir.join("images"))?;

    let (_meter, meter_port) = start_meter(&server, &dir, KEY)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    // Several hosts: one PostgreSQL cluster for them all, stopped when this returns.
    let cluster = if hosts > 1 { Some(crate::postgres::Cluster::start()?) } else { None };
    // With --pgbouncer the hosts reach the cluster through PgBouncer in transaction mode, their
    // event listeners directly.
    let pooler = match (&cluster, pgbouncer) {
        (Some(c), true) => Some(c.pgbouncer()?),
        _ => None,
    };
    let storage: Vec<String> = match (&cluster, &pooler) {
        (Some(c), Some(p)) => vec![
            "Storage:Scenario=Postgres".into(),
            format!("Storage:ConnectionString={}", p.url),
            format!("Storage:EventsConnectionString={}", c.url),
        ],
        (Some(c), None) => vec!["Storage:Scenario=Postgres".into(), format!("Storage:ConnectionString={}", c.url)],
        _ => Vec::new(),
    };
    // Frequent heartbeats, so the meter sees the calls before the checks; the loopback image server.
    let mut settings = vec![
        "Billing:IntervalSeconds=2",
        "Billing:RetrySeconds=1",
        "Security:AllowPrivateUrls=true",
        "Logging:Console:LogLevel=warn",
    ];
    settings.extend(storage.iter().map(String::as_str));
    let mut dirs = Vec::new();
    for h in 0..hosts {
        let d = if hosts == 1 { dir.clone() } else { dir.join(format!("host-{}", h + 1)) };
        std::fs::create_dir_all(&d)?;
        dirs.push((d, free_port()?));
    }
    let served: Vec<Served> = dirs
        .iter()
        .map(|(d, port)| Served { server: &server, guest: &guest, dir: d, port: *port, meter: meter_port, key: KEY })
        .collect();
    let bases: Vec<String> = served.iter().map(|s| format!("http://127.0.0.1:{}", s.port)).collect();
    let base = bases[hosts - 1].clone();
    let mut children = Vec::new();
    for (s, b) in served.iter().zip(&bases) {
        children.push(s.start(&settings, "server-1.log")?);
        wait_ready(&agent, b, "face-server")?;
    }
    let mut child = children.remove(0);
    let restarted_what = match (restart_db, hosts) {
        (true, _) => "PostgreSQL",
        (false, 1) => "the server",
        (false, _) => "the first host",
    };
    eprintln!(
        "soak: {total} requests from {concurrency} clients to {hosts} host(s); {restarted_what} is {} after {} and \
         restarted",
        if restart_db { "stopped" } else { "killed" },
        total / 2
    );
    // Seconds from the database's return to each host's first 200 on a database read.
    let mut recovery: Vec<f64> = Vec::new();

    let soak = Arc::new(Soak {
        bases: bases.clone(),
        next: AtomicUsize::new(0),
        agent: agent.clone(),
        answers: Mutex::new(Vec::new()),
        writes: Mutex::new(Writes::default()),
        photos,
        image_base,
    });
    // The group the clients identify against: two persons, trained; a list for faces.
    let setup = |a: Answer| -> Result<Answer> {
        if !ok(&a) {
            bail!("setup call {} answered {:?}: {}", a.op, a.status, a.body);
        }
        Ok(a)
    };
    setup(soak.json("setup", "PUT", &format!("/largepersongroups/{GROUP}"), json!({ "name": "soak" })))?;
    setup(soak.json("setup", "PUT", &format!("/largefacelists/{LIST}"), json!({ "name": "soak" })))?;
    for photo in soak.photos.clone() {
        let p = setup(soak.json(
            "setup",
            "POST",
            &format!("/largepersongroups/{GROUP}/persons"),
            json!({ "name": "known" }),
        ))?;
        let id = p.body["personId"].as_str().unwrap_or_default().to_owned();
        let f = setup(soak.call(
            "setup",
            "POST",
            &format!("/largepersongroups/{GROUP}/persons/{id}/persistedfaces"),
            "application/octet-stream",
            photo,
        ))?;
        soak.writes
            .lock()
            .unwrap()
            .persons
            .insert(id, vec![f.body["persistedFaceId"].as_str().unwrap_or_default().to_owned()]);
    }
    setup(soak.call("setup", "POST", &format!("/largepersongroups/{GROUP}/train"), "", vec![]))?;

    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // (requests issued when read, MB), for each life of the server.
    let mut samples: [Vec<(usize, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut sampled = Instant::now();
    let restarted = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..concurrency)
        .map(|i| {
            let (soak, issued) = (soak.clone(), issued.clone());
            std::thread::spawn(move || client(&soak, i as u64 + 1, &issued, total))
        })
        .collect();
    // Warm-up, the kill in the middle, the restart, the end.
    let mut progress = Instant::now();
    let mut life = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        let n = issued.load(Ordering::SeqCst).min(total);
        if sampled.elapsed() >= Duration::from_millis(200) {
            samples[life].push((n, rss_mb(child.0.id())));
            sampled = Instant::now();
        }
        if life == 0 && n >= total / 2 && restart_db {
            let cluster = cluster.as_ref().context("--restart-db without a cluster")?;
            eprintln!("soak: PostgreSQL stopped (fast) after {n} requests; 3 s down, then started again");
            cluster.restart(Duration::from_secs(3))?;
            let back = Instant::now();
            for host in 0..bases.len() {
                recovery.push(soak.first_read(host, back)?);
            }
            eprintln!("soak: every host reads from the database again, {recovery:.1?} s after its return");
            restarted.store(true, Ordering::SeqCst);
            life = 1;
        }
        if life == 0 && n >= total / 2 {
            child.0.kill()?;
            child.0.wait()?;
            eprintln!("soak: face-server killed (SIGKILL) after {n} requests; restarting it on the same data");
            child = served[0].start(&settings, "server-2.log")?;
            wait_ready(&agent, &bases[0], "the restarted face-server")?;
            restarted.store(true, Ordering::SeqCst);
            life = 1;
        }
        if progress.elapsed() > Duration::from_secs(10) {
            eprintln!("soak: {n}/{total} requests, {:.0} s", started.elapsed().as_secs_f64());
            progress = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("a soak client panicked"))?;
    }
    samples[1].push((total, rss_mb(child.0.id())));
    // Peak resident MB over the samples of a life read while the issued requests were in a part of
    // that life's span: the first life runs from request 0 to the kill, the second from the request
    // count when the restarted server was ready (calls refused while it was down are not its
    // requests) to the end. Early: 20-50% of the span (after a warm-up of a fifth); late: 70-100%.
    let spans = [(0, total / 2), (samples[1].first().map_or(total, |s| s.0), total)];
    let peak = |life: usize, from: f64, to: f64| {
        let (start, end) = spans[life];
        let at = |f: f64| start + ((end - start) as f64 * f) as usize;
        let range = at(from) + 1..=at(to);
        let mb = samples[life].iter().filter(|(n, _)| range.contains(n)).map(|s| s.1).fold(f64::NAN, f64::max);
        (format!("{} life, requests {}-{}", ["first", "second"][life], range.start(), range.end()), mb)
    };
    let memory = [peak(0, 0.2, 0.5), peak(0, 0.7, 1.0), peak(1, 0.2, 0.5), peak(1, 0.7, 1.0)];
    let seconds = started.elapsed().as_secs_f64();

    // Every acknowledged write is there; every acknowledged delete is gone.
    let writes = std::mem::take(&mut *soak.writes.lock().unwrap());
    let mut missing = Vec::new();
    // The checks' own answers are billed too: their request ids join the answered calls.
    let checked = Mutex::new(Vec::<String>::new());
    let get = |path: &str| -> Result<(u16, Value)> {
        let response = agent.get(format!("{base}/face/v1.0{path}")).header("Ocp-Apim-Subscription-Key", KEY).call()?;
        let status = response.status().as_u16();
        if (200..300).contains(&status)
            && let Some(id) = response.headers().get("apim-request-id").and_then(|v| v.to_str().ok())
        {
            checked.lock().unwrap().push(id.to_owned());
        }
        let mut text = String::new();
        response.into_body().into_reader().read_to_string(&mut text)?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    };
    for (person, faces) in &writes.persons {
        let (status, v) = get(&format!("/largepersongroups/{GROUP}/persons/{person}"))?;
        let held: HashSet<&str> =
            v["persistedFaceIds"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if status != 200 {
            missing.push(format!("person {person} ({status})"));
        }
        missing.extend(
            faces.iter().filter(|f| !held.contains(f.as_str())).map(|f| format!("face {f} of person {person}")),
        );
    }
    for face in &writes.list_faces {
        let (status, _) = get(&format!("/largefacelists/{LIST}/persistedfaces/{face}"))?;
        if status != 200 {
            missing.push(format!("list face {face} ({status})"));
        }
    }
    let resurrected: Vec<_> = writes
        .deleted_persons
        .iter()
        .filter(|p| get(&format!("/largepersongroups/{GROUP}/persons/{p}")).map(|(s, _)| s != 404).unwrap_or(true))
        .collect();

    // Billing: every answered billable call is on the meter, once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backlogs: Vec<Option<u64>> = bases
            .iter()
            .map(|b| {
                agent
                    .get(format!("{b}/status"))
                    .call()
                    .ok()
                    .and_then(|r| r.into_body().read_to_string().ok())
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v["usageBacklog"].as_u64())
            })
            .collect();
        let backlog = backlogs.iter().try_fold(0, |sum, b| b.map(|b| sum + b));
        if backlog == Some(0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the usage backlog did not drain within 60 s (backlog {backlog:?})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut metered: HashMap<String, u64> = HashMap::new();
    let mut operations: HashMap<String, String> = HashMap::new();
    let mut after = String::new();
    loop {
        let response = agent
            .get(format!("http://127.0.0.1:{meter_port}/v1/records?after={after}&limit=10000"))
            .header("Ocp-Apim-Subscription-Key", KEY)
            .call()?;
        let page: Value = serde_json::from_str(&response.into_body().read_to_string()?)?;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for r in &records {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            *metered.entry(id.clone()).or_default() += r["quantity"].as_u64().unwrap_or(0);
            operations.insert(id, r["operation"].as_str().unwrap_or_default().to_owned());
        }
        after = records.last().and_then(|r| r["id"].as_str()).unwrap_or_default().to_owned();
    }
    let answers = std::mem::take(&mut *soak.answers.lock().unwrap());
    let checked = checked.into_inner().unwrap();
    let answered: HashSet<&str> = answers
        .iter()
        .filter(|a| ok(a))
        .filter_map(|a| a.request_id.as_deref())
        .chain(checked.iter().map(String::as_str))
        .collect();
    let lost = answered.iter().filter(|id| !metered.contains_key(**id)).count();
    let twice = metered.values().filter(|q| **q != 1).count();
    let unanswered: Vec<&String> = metered.keys().filter(|id| !answered.contains(id.as_str())).collect();
    let unanswered_billed = unanswered.len();
    let mut unanswered_ops: HashMap<&str, usize> = HashMap::new();
    for id in &unanswered {
        *unanswered_ops.entry(operations.get(*id).map_or("", String::as_str)).or_default() += 1;
    }
    let cut_off = answers.iter().filter(|a| a.status.is_none()).count();

    // The table.
    let mut by_op: Vec<(&str, HashMap<String, usize>)> = Vec::new();
    for a in &answers {
        let status = a.status.map_or("no connection".to_owned(), |s| s.to_string());
        match by_op.iter_mut().find(|(op, _)| *op == a.op) {
            Some((_, m)) => *m.entry(status).or_default() += 1,
            None => by_op.push((a.op, HashMap::from([(status, 1)]))),
        }
    }
    by_op.sort_by_key(|(op, _)| *op);
    println!("| operation | answers | status counts |");
    println!("|---|---:|---|");
    for (op, counts) in &by_op {
        let mut c: Vec<_> = counts.iter().collect();
        c.sort();
        let text: Vec<String> = c.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        println!("| {op} | {} | {} |", counts.values().sum::<usize>(), text.join(", "));
    }
    let mut ms: Vec<f64> = answers.iter().filter(|a| a.status.is_some()).map(|a| a.ms).collect();
    ms.sort_by(f64::total_cmp);
    let bad_5xx: Vec<&Answer> = answers.iter().filter(|a| a.status.is_some_and(|s| s >= 500 && s != 503)).collect();
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| requests (clients, concurrency {concurrency}) | {} in {seconds:.0} s ({:.1}/s) |",
        answers.len(),
        answers.len() as f64 / seconds
    );
    println!(
        "| p50 / p99 ms | {:.1} / {:.1} |",
        crate::stats::percentile(&ms, 0.5),
        crate::stats::percentile(&ms, 0.99)
    );
    println!("| 5xx other than 503 | {} |", bad_5xx.len());
    println!(
        "| 429 / 503 | {} / {} |",
        answers.iter().filter(|a| a.status == Some(429)).count(),
        answers.iter().filter(|a| a.status == Some(503)).count()
    );
    println!("| connections refused or cut while the server was down | {cut_off} |");
    for (when, mb) in &memory {
        println!("| resident MB, peak in the {when} | {mb:.0} |");
    }
    println!(
        "| acknowledged writes checked (persons, their faces, list faces, deletes) | {}, {}, {}, {} |",
        writes.persons.len(),
        writes.persons.values().map(Vec::len).sum::<usize>(),
        writes.list_faces.len(),
        writes.deleted_persons.len()
    );
    println!("| acknowledged writes missing | {} |", missing.len() + resurrected.len());
    println!("| answered billable calls | {} |", answered.len());
    println!("| meter records (quantity) | {} ({}) |", metered.len(), metered.values().sum::<u64>());
    println!("| records lost | {lost} |");
    println!("| counted twice | {twice} |");
    println!("| billed, answer cut off by the kill | {unanswered_billed} |");
    if restart_db {
        let worst = recovery.iter().copied().fold(0.0, f64::max);
        println!("| seconds from the database's return to every host's first read (at most 10) | {worst:.1} |");
    }

    let mut failures = Vec::new();
    if !bad_5xx.is_empty() {
        failures.push(format!("{} answers were 5xx other than 503, e.g. {:?}", bad_5xx.len(), bad_5xx[0]));
    }
    if !missing.is_empty() || !resurrected.is_empty() {
        failures.push(format!("acknowledged writes missing: {missing:?}; deleted persons back: {resurrected:?}"));
    }
    if lost > 0 || twice > 0 {
        failures.push(format!("{lost} answered calls not on the meter, {twice} counted more than once"));
    }
    if unanswered_billed > cut_off {
        failures.push(format!(
            "{unanswered_billed} meter records match no answered call, more than the {cut_off} calls the kill cut \
             off; by operation: {unanswered_ops:?}"
        ));
    }
    for (early, late) in [(0, 1), (2, 3), (1, 3)] {
        let ((early_when, early_mb), (late_when, late_mb)) = (&memory[early], &memory[late]);
        let (early_mb, late_mb) = (*early_mb, *late_mb);
        if early_mb.is_nan() || late_mb.is_nan() {
            failures.push(format!(
                "no memory reading in the {} window: the run is too short to judge memory; give --requests 1000 \
                 or more",
                if early_mb.is_nan() { early_when } else { late_when }
            ));
        } else if late_mb > 1.5 * early_mb {
            failures.push(format!(
                "resident memory grew from a peak of {early_mb:.0} MB ({early_when}) to {late_mb:.0} MB ({late_when})"
            ));
        }
    }
    if !restarted.load(Ordering::SeqCst) {
        failures.push(format!("{restarted_what} was never stopped and restarted"));
    }
    if restart_db {
        // No host went down: every call got an answer, within the clients' 60 s timeout.
        if cut_off > 0 {
            failures
                .push(format!("{cut_off} calls got no answer (refused, cut, or past 60 s) while PostgreSQL restarted"));
        }
        if let Some(slow) = recovery.iter().find(|s| **s > 10.0) {
            failures
                .push(format!("a host read from the database again only {slow:.1} s after its return (at most 10)"));
        }
    }
    if !failures.is_empty() {
        bail!("soak failed (logs in {}):\n- {}", dir.display(), failures.join("\n- "));
    }
    drop((child, children, pooler, cluster));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

impl Soak {
    /// Seconds from `back` (the database's return) until host `host` answers a database read
    /// (the soak's group) with 200; fails past 60 s. Its calls are billable answers like the rest.
    fn first_read(&self, host: usize, back: Instant) -> Result<f64> {
        let path = format!("/largepersongroups/{GROUP}");
        crate::util::wait_until(
            &format!("{} reading from the database after its return", self.bases[host]),
            Duration::from_secs(60),
            || self.call_at(host, "read after the restart", "GET", &path, "", vec![]).status == Some(200),
        )?;
        Ok(back.elapsed().as_secs_f64())
    }
}
