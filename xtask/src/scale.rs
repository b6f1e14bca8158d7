//! `cargo xtask scale [--faces N] [--concurrency C] [--requests R]`: a LargePersonGroup and a
//! LargeFaceList of N faces (default 1,000,000, Azure's limit), driven over HTTP.
//!
//! The gallery is the real SFace embeddings of shared/data's verification photos
//! (identify_split.csv: gallery rows as persons, probe rows as queries; with `--registry-photos`,
//! the registry's test photos instead, as the test command runs it), plus distractors made
//! from them, seeded (xorshift, seed 2026): each distractor identity is a random real gallery
//! face pushed away by a random direction three times its length (so it sits about cos 0.3 from
//! its origin, like another person), normalised, and each of its two faces is that centre plus a
//! random direction of 0.8 its length (about cos 0.6 between the two, like one person's photos).
//! So the nearest neighbours of a real probe are real faces and hard negatives, as in a real
//! gallery. The collections are filled through `face-server bulk-load` (many faces to a
//! transaction); everything measured after that goes through the real face-server on loopback,
//! ending with a snapshot of the list taken and applied as a new list.
//!
//! Every figure comes with its baseline measured in the same run: AddFace at N against a
//! 1,000-face group, detect and verify during a training against idle, top-1 against an exact
//! f32 scan of the same gallery, a restarted host's peak memory against its warm memory plus
//! the index it loaded.
//!
//! With `--postgres`, the same figures are measured again on a throwaway PostgreSQL cluster
//! (filled by the same `bulk-load`) and printed after SQLite's, with a second host on the same
//! database: its first identify, and how long until it has loaded the first host's next training
//! (face_index_loads_total on its /metrics), answering identify meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::server::{Served, build_server, start_meter, wait_ready};
use crate::util::{Flags, Rng, cache_dir, free_port, memory_mb, metric, shared_data, testdata_dir};

const KEY: &str = "scale-key";
const GROUP: &str = "scale-group";
const LIST: &str = "scale-list";
const SMALL: &str = "scale-small";

/// A random direction: uniform components, unit length.
fn direction(rng: &mut Rng, dim: usize) -> Vec<f32> {
    unit((0..dim).map(|_| (rng.next() % 20_001) as f32 / 10_000.0 - 1.0).collect())
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn plus(a: &[f32], b: &[f32], k: f32) -> Vec<f32> {
    unit(a.iter().zip(b).map(|(x, y)| x + k * y).collect())
}

/// A person's or face's UUID in the bulk files, from a number.
fn uuid(n: u64, what: u64) -> u128 {
    Uuid::from_u64_pair(0x5ca1_e000_0000_4000 | what, 0x8000_0000_0000_0000 | n).as_u128()
}

/// A bulk file for `face-server bulk-load`.
struct Bulk(std::io::BufWriter<std::fs::File>);

impl Bulk {
    fn create(path: &Path, kind: u8, cid: &str, dim: usize) -> Result<Bulk> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        w.write_all(b"FACEBULK")?;
        w.write_all(&[kind])?;
        for s in [cid, "recognition_01", "sface_2021dec"] {
            w.write_all(&(s.len() as u16).to_le_bytes())?;
            w.write_all(s.as_bytes())?;
        }
        w.write_all(&(dim as u32).to_le_bytes())?;
        Ok(Bulk(w))
    }

    fn face(&mut self, person: u128, face: u128, v: &[f32]) -> Result<()> {
        self.0.write_all(&person.to_le_bytes())?;
        self.0.write_all(&face.to_le_bytes())?;
        for x in v {
            self.0.write_all(&x.to_le_bytes())?;
        }
        Ok(())
    }
}

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn call(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> (u16, Value, f64) {
        let url = format!("{}/face/v1.0{path}", self.base);
        let t = Instant::now();
        let r = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Ocp-Apim-Subscription-Key", KEY).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Ocp-Apim-Subscription-Key", KEY).call(),
            (m, body) => {
                let (ct, bytes) = body.unwrap_or(("application/json", b"{}".to_vec()));
                let req = if m == "PUT" { self.agent.put(&url) } else { self.agent.post(&url) };
                req.header("Ocp-Apim-Subscription-Key", KEY).header("Content-Type", ct).send(&bytes[..])
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                let v = serde_json::from_str(&text).unwrap_or(Value::Null);
                (status, v, ms)
            }
            Err(e) => (0, json!(e.to_string()), ms),
        }
    }

    fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value, f64) {
        self.call(method, path, Some(("application/json", serde_json::to_vec(&body).unwrap_or_default())))
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let (s, v, _) = self.json(method, path, body);
        if !(200..300).contains(&s) {
            bail!("{method} {path} answered {s}: {v}");
        }
        Ok(v)
    }

    /// Trains and waits; returns the seconds from the call to `succeeded`.
    fn train(&self, route: &str, id: &str) -> Result<f64> {
        let t = Instant::now();
        self.ok("POST", &format!("/{route}/{id}/train"), json!({}))?;
        self.wait_trained(route, id, t)
    }

    fn wait_trained(&self, route: &str, id: &str, t: Instant) -> Result<f64> {
        loop {
            let v = self.ok("GET", &format!("/{route}/{id}/training"), Value::Null)?;
            match v["status"].as_str() {
                Some("succeeded") => return Ok(t.elapsed().as_secs_f64()),
                Some("failed") => bail!("training {route}/{id} failed: {v}"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// Latencies of `calls` spread over `clients` threads: sorted ms.
fn under_load(clients: usize, calls: usize, f: &(dyn Fn(usize) -> Result<f64> + Sync)) -> Result<Vec<f64>> {
    let per = calls.div_ceil(clients);
    let mut all = std::thread::scope(|s| -> Result<Vec<f64>> {
        let handles: Vec<_> = (0..clients)
            .map(|c| s.spawn(move || (0..per).map(|i| f(c * per + i)).collect::<Result<Vec<f64>>>()))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??);
        }
        Ok(out)
    })?;
    all.sort_by(f64::total_cmp);
    Ok(all)
}

fn db_mb(dir: &Path) -> f64 {
    ["face.db", "face.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join("data").join(f)).map(|m| m.len()).unwrap_or(0) as f64 / 1e6)
        .sum()
}

pub fn scale(args: &[String]) -> Result<()> {
    // A thousand calls per figure: a p99 of 200 calls is their second-worst, which one stall of
    // the machine decides (one of 100 ms hit four concurrent identifies at once in a run here).
    let flags = Flags::parse(
        args,
        "usage: cargo xtask scale [--faces N] [--concurrency C] [--requests R] [--registry-photos] [--postgres]",
        &["--faces", "--concurrency", "--requests"],
        &["--registry-photos", "--postgres"],
    )?;
    let faces: usize = flags.value("--faces", 1_000_000)?;
    let clients: usize = flags.value::<usize>("--concurrency", 4)?.max(1);
    let requests: usize = flags.value::<usize>("--requests", 1000)?.max(clients);
    let (registry_photos, postgres) = (flags.on("--registry-photos"), flags.on("--postgres"));
    // (path, identity, role) of the real photos: shared/data's identification split, or with
    // --registry-photos the registry's test photos (`cargo xtask testdata`), which any clone has.
    let split: Vec<(PathBuf, String, String)> = if registry_photos {
        let dir = testdata_dir();
        [
            ("obama.jpg", "obama", "gallery"),
            ("biden.jpg", "biden", "gallery"),
            ("azure_queryface.jpg", "azure_queryface", "gallery"),
            ("obama2.jpg", "obama", "probe"),
            ("obama3.jpg", "obama", "probe"),
        ]
        .iter()
        .map(|(f, who, role)| (dir.join(f), (*who).to_owned(), (*role).to_owned()))
        .collect()
    } else {
        let data = shared_data();
        crate::stats::csv_rows(&data.join("verification/identify_split.csv"))
            .with_context(|| format!("scale reads {} (or run it with --registry-photos)", data.display()))?
            .into_iter()
            .map(|r| (data.join("verification").join(&r[0]), r[1].clone(), r[2].clone()))
            .collect()
    };

    // The real faces: SFace embeddings of the gallery and probe photos.
    let engine = crate::engine::load()?;
    // Gallery: (person, embedding); probes: (person, photo, embedding).
    let mut gallery: Vec<(usize, Vec<f32>)> = Vec::new();
    let mut probes: Vec<(usize, PathBuf, Vec<f32>)> = Vec::new();
    let mut identities: Vec<String> = Vec::new();
    for (path, identity, role) in &split {
        let img = engine.decode(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)?;
        let Some(det) = engine.detect_faces(&img, face_core::DEFAULT_MIN_SCORE, 1)?.into_iter().next() else {
            continue;
        };
        let who = match identities.iter().position(|i| i == identity) {
            Some(i) => i,
            None => {
                identities.push(identity.clone());
                identities.len() - 1
            }
        };
        let e = engine.embed(&img, &det, None, face_core::RecognitionModel::SFace)?.vector;
        if role == "probe" {
            probes.push((who, path.clone(), e));
        } else {
            gallery.push((who, e));
        }
    }
    let dim = gallery.first().context("no gallery face found")?.1.len();
    if probes.len() < 2 {
        bail!("scale needs at least two probe faces, found {}", probes.len());
    }
    if faces < gallery.len() + 2 {
        bail!("--faces must be at least {} (the real gallery and one distractor)", gallery.len() + 2);
    }
    eprintln!(
        "scale: {} real gallery faces of {} persons, {} probes; {} faces in all",
        gallery.len(),
        identities.len(),
        probes.len(),
        faces
    );

    let (server, guest) = build_server()?;
    let dir = cache_dir().join("scale");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data"))?;

    // The bulk files: the group (real persons, then two-face distractor persons), the list (the
    // same faces), and a 1,000-face group as AddFace's baseline.
    let t = Instant::now();
    let mut group = Bulk::create(&dir.join("group.bulk"), 1, GROUP, dim)?;
    let mut list = Bulk::create(&dir.join("list.bulk"), 3, LIST, dim)?;
    let mut small = Bulk::create(&dir.join("small.bulk"), 1, SMALL, dim)?;
    // Every gallery vector, with its person number, for the exact scan.
    let mut all: Vec<(u64, Vec<f32>)> = Vec::with_capacity(faces);
    for (i, (who, v)) in gallery.iter().enumerate() {
        all.push((*who as u64, v.clone()));
        group.face(uuid(*who as u64, 1), uuid(i as u64, 2), v)?;
        list.face(0, uuid(i as u64, 2), v)?;
        small.face(uuid(*who as u64, 1), uuid(i as u64, 3), v)?;
    }
    let mut rng = Rng(2026);
    let mut person = identities.len() as u64;
    while all.len() < faces {
        let origin = &gallery[(rng.next() % gallery.len() as u64) as usize].1;
        let centre = plus(origin, &direction(&mut rng, dim), 3.0);
        for _ in 0..2.min(faces - all.len()) {
            let v = plus(&centre, &direction(&mut rng, dim), 0.8);
            let n = all.len() as u64;
            group.face(uuid(person, 1), uuid(n, 2), &v)?;
            list.face(0, uuid(n, 2), &v)?;
            if n < 1000 {
                small.face(uuid(person, 1), uuid(n, 3), &v)?;
            }
            all.push((person, v));
        }
        person += 1;
    }
    drop((group, list, small));
    let persons = person;
    eprintln!("scale: {faces} faces of {persons} persons written in {:.1} s", t.elapsed().as_secs_f64());

    // The exact answer: each probe's best person by an f32 scan of every gallery face.
    let exact_right = probes
        .iter()
        .filter(|(who, _, q)| {
            let best = all.iter().map(|(p, v)| (face_core::cosine(q, v), *p)).max_by(|a, b| a.0.total_cmp(&b.0));
            best.is_some_and(|(_, p)| p == *who as u64)
        })
        .count();
    // And each probe's most similar face of the list (the same faces), for find-similar.
    let exact_faces: Vec<String> = probes
        .iter()
        .map(|(_, _, q)| {
            let best = all
                .iter()
                .enumerate()
                .max_by(|a, b| face_core::cosine(q, &a.1.1).total_cmp(&face_core::cosine(q, &b.1.1)));
            Uuid::from_u128(uuid(best.map_or(0, |(i, _)| i) as u64, 2)).to_string()
        })
        .collect();

    let gallery = Gallery {
        server: &server,
        guest: &guest,
        dir: &dir,
        faces,
        clients,
        requests,
        probes: &probes,
        exact_right,
        exact_faces: &exact_faces,
    };
    let mut tables = vec![("SQLite", measure(&gallery, None)?)];
    if postgres {
        let cluster = crate::postgres::Cluster::start()?;
        tables.push(("PostgreSQL", measure(&gallery, Some(&cluster))?));
    }
    for file in ["group.bulk", "list.bulk", "small.bulk"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    let mut failures = Vec::new();
    for (store, figures) in &tables {
        println!();
        println!(
            "| figure ({faces} faces, {persons} persons; {clients} clients; {store}) | value | baseline in the same run | ratio |"
        );
        println!("|---|---|---|---|");
        for row in &figures.rows {
            println!("| {} | {} | {} | {} |", row[0], row[1], row[2], row[3]);
        }
        failures.extend(figures.failures.iter().map(|f| format!("{store}: {f}")));
    }
    if !failures.is_empty() {
        bail!("scale:\n- {}", failures.join("\n- "));
    }
    Ok(())
}

/// What every store's run shares: the programs, the bulk files in `dir`, the probes and the
/// exact answers.
struct Gallery<'a> {
    server: &'a Path,
    guest: &'a Path,
    dir: &'a Path,
    faces: usize,
    clients: usize,
    requests: usize,
    probes: &'a [(usize, PathBuf, Vec<f32>)],
    exact_right: usize,
    exact_faces: &'a [String],
}

/// One store's table (figure, value, baseline, ratio) and what failed.
struct Figures {
    rows: Vec<[String; 4]>,
    failures: Vec<String>,
}

/// Fills the store (SQLite in a folder of its own, or `cluster`'s database), then measures it
/// through face-server on loopback: the same figures for both.
fn measure(g: &Gallery<'_>, cluster: Option<&crate::postgres::Cluster>) -> Result<Figures> {
    let Gallery { server, guest, faces, clients, requests, probes, exact_right, .. } = *g;
    let dir = g.dir.join(if cluster.is_some() { "postgres" } else { "sqlite" });
    std::fs::create_dir_all(dir.join("data"))?;
    let dir = dir.as_path();
    let storage: Vec<String> = match cluster {
        Some(c) => vec!["Storage:Scenario=Postgres".into(), format!("Storage:ConnectionString={}", c.url)],
        None => Vec::new(),
    };
    let settings: Vec<&str> =
        ["Logging:Console:LogLevel=info"].into_iter().chain(storage.iter().map(String::as_str)).collect();
    let db_size = || -> f64 {
        match cluster {
            Some(c) => c.database_mb().unwrap_or(f64::NAN),
            None => db_mb(dir),
        }
    };
    eprintln!("scale: loading the bulk files into {}", if cluster.is_some() { "PostgreSQL" } else { "SQLite" });
    let t = Instant::now();
    for file in ["group.bulk", "list.bulk", "small.bulk"] {
        let target = match cluster {
            Some(c) => c.url.clone(),
            None => dir.join("data").display().to_string(),
        };
        let status = Command::new(server).arg("bulk-load").arg(target).arg(g.dir.join(file)).status()?;
        if !status.success() {
            bail!("face-server bulk-load {file} failed");
        }
    }
    let fill_s = t.elapsed().as_secs_f64();
    if let Some(c) = cluster {
        // The fill wrote gigabytes: without this, PostgreSQL's checkpoints and autovacuum of it
        // run under the measurements (commits then wait a second for the disk).
        let t = Instant::now();
        c.settle()?;
        eprintln!(
            "scale: PostgreSQL settled after the fill (VACUUM ANALYZE, CHECKPOINT) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    let (_meter, meter_port) = start_meter(server, dir, KEY)?;
    let port = free_port()?;
    let http = Http {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let served = Served { server, guest, dir, port, meter: meter_port, key: KEY };
    let mut child = served.start(&settings, "server-1.log")?;
    wait_ready(&http.agent, &http.base, "face-server")?;

    // The probes' faceIds.
    let mut face_ids: Vec<(usize, String)> = Vec::new();
    for (who, path, _) in probes {
        let (s, v, _) = http.call(
            "POST",
            "/detect?returnFaceId=true&recognitionModel=recognition_01",
            Some(("application/octet-stream", std::fs::read(path)?)),
        );
        match v[0]["faceId"].as_str() {
            Some(id) if s == 200 => face_ids.push((*who, id.to_owned())),
            _ => bail!("detect on {} answered {s}: {v}", path.display()),
        }
    }
    let db_before = db_size();
    // The baseline: the server warm (engine instances made by the detects), no index loaded.
    let rss_idle = memory_mb(child.0.id()).0;
    eprintln!("scale: training {GROUP} ({faces} faces)");
    let train_group_s = http.train("largepersongroups", GROUP)?;
    eprintln!("scale: training {LIST} ({faces} faces)");
    let train_list_s = http.train("largefacelists", LIST)?;
    http.train("largepersongroups", SMALL)?;
    let db_after = db_size();
    if let Some(c) = cluster {
        c.settle()?;
    }

    // Top-1 of the real probes, one identify per probe.
    let person_of = |who: usize| Uuid::from_u128(uuid(who as u64, 1)).to_string();
    let top1 = |http: &Http, face_ids: &[(usize, String)]| -> Result<usize> {
        let mut right = 0;
        for (who, id) in face_ids {
            let v = http.ok(
                "POST",
                "/identify",
                json!({ "faceIds": [id], "largePersonGroupId": GROUP, "confidenceThreshold": 0.0 }),
            )?;
            right += usize::from(v[0]["candidates"][0]["personId"].as_str() == Some(person_of(*who).as_str()));
        }
        Ok(right)
    };
    let right = top1(&http, &face_ids)?;
    let mut similar_right = 0;
    for ((_, id), exact) in face_ids.iter().zip(g.exact_faces) {
        let v = http.ok(
            "POST",
            "/findsimilars",
            json!({ "faceId": id, "largeFaceListId": LIST, "maxNumOfCandidatesReturned": 1, "mode": "matchFace" }),
        )?;
        similar_right += usize::from(v[0]["persistedFaceId"].as_str() == Some(exact.as_str()));
    }
    let rss_trained = memory_mb(child.0.id()).0;
    let status: Value = http
        .agent
        .get(format!("{}/status", http.base))
        .call()
        .ok()
        .and_then(|mut r| serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok())
        .unwrap_or(Value::Null);
    let index_mb = status["memory"]["trainedIndexBytes"].as_f64().unwrap_or(f64::NAN) / 1e6;

    // Identify with 10 query faces, find-similar, under `clients` concurrent clients.
    let ten = |i: usize| -> Vec<&str> { (0..10).map(|k| face_ids[(i + k) % face_ids.len()].1.as_str()).collect() };
    let identify = under_load(clients, requests, &|i| {
        let (s, v, ms) = http.json("POST", "/identify", json!({ "faceIds": ten(i), "largePersonGroupId": GROUP }));
        if s != 200 {
            bail!("identify answered {s}: {v}");
        }
        Ok(ms)
    })?;
    let similar = under_load(clients, requests, &|i| {
        let (s, v, ms) = http.json(
            "POST",
            "/findsimilars",
            json!({ "faceId": face_ids[i % face_ids.len()].1, "largeFaceListId": LIST }),
        );
        if s != 200 {
            bail!("findsimilars answered {s}: {v}");
        }
        Ok(ms)
    })?;

    // AddFace at N against the 1,000-face group, the same photo to a real person of each.
    let photo = std::fs::read(testdata_dir().join("obama.jpg")).context("run `cargo xtask testdata`")?;
    let add = |gid: &str| -> Result<Vec<f64>> {
        let p = http.ok("POST", &format!("/largepersongroups/{gid}/persons"), json!({ "name": "added" }))?;
        let pid = p["personId"].as_str().unwrap_or_default().to_owned();
        under_load(clients, (requests / 4).clamp(clients, 240), &|_| {
            let (s, v, ms) = http.call(
                "POST",
                &format!("/largepersongroups/{gid}/persons/{pid}/persistedfaces"),
                Some(("application/octet-stream", photo.clone())),
            );
            if s != 200 {
                bail!("AddFace answered {s}: {v}");
            }
            Ok(ms)
        })
    };
    let add_small = add(SMALL)?;
    let add_large = add(GROUP)?;

    // Detect and verify, idle and while the group trains again; identify meanwhile answers
    // from the previous training.
    let verify_pair = (face_ids[0].1.clone(), face_ids[1].1.clone());
    let detect_verify = |i: usize| -> Result<f64> {
        if i.is_multiple_of(2) {
            let (s, v, ms) =
                http.call("POST", "/detect?returnFaceId=false", Some(("application/octet-stream", photo.clone())));
            if s != 200 {
                bail!("detect answered {s}: {v}");
            }
            Ok(ms)
        } else {
            let (s, v, ms) =
                http.json("POST", "/verify", json!({ "faceId1": verify_pair.0, "faceId2": verify_pair.1 }));
            if s != 200 {
                bail!("verify answered {s}: {v}");
            }
            Ok(ms)
        }
    };
    let idle = under_load(2, 40, &detect_verify)?;
    // With PostgreSQL, a second host on the same database: it loads the trained index at its
    // first identify, then the first host's next training in the background, answering meanwhile.
    let second_dir = g.dir.join("postgres-2");
    let second_port = free_port()?;
    let second_http = Http { agent: http.agent.clone(), base: format!("http://127.0.0.1:{second_port}") };
    let second_host = match cluster {
        Some(_) => {
            std::fs::create_dir_all(second_dir.join("data"))?;
            let served = Served { server, guest, dir: &second_dir, port: second_port, meter: meter_port, key: KEY };
            let child = served.start(&settings, "server.log")?;
            wait_ready(&second_http.agent, &second_http.base, "the second face-server")?;
            let t = Instant::now();
            second_http.ok("POST", "/identify", json!({ "faceIds": ten(0), "largePersonGroupId": GROUP }))?;
            let first_s = t.elapsed().as_secs_f64();
            Some((child, first_s, metric(&second_http.base, "face_index_load_seconds_total").unwrap_or(0.0)))
        }
        None => None,
    };
    let t = Instant::now();
    http.ok("POST", &format!("/largepersongroups/{GROUP}/train"), json!({}))?;
    let (mut during, mut identify_during, mut identify_failed) = (Vec::new(), 0usize, 0usize);
    loop {
        let status = http.ok("GET", &format!("/largepersongroups/{GROUP}/training"), Value::Null)?;
        if status["status"] == "succeeded" {
            break;
        }
        if status["status"] == "failed" {
            bail!("the second training failed: {status}");
        }
        during.extend(under_load(2, 4, &detect_verify)?);
        let (s, _, _) = http.json("POST", "/identify", json!({ "faceIds": ten(0), "largePersonGroupId": GROUP }));
        identify_during += 1;
        identify_failed += usize::from(s != 200);
    }
    let retrain_s = t.elapsed().as_secs_f64();
    during.sort_by(f64::total_cmp);
    let second = match second_host {
        Some((child, first_s, first_load_s)) => {
            let succeeded = Instant::now();
            let (mut calls, mut failed) = (0, 0);
            while metric(&second_http.base, "face_index_loads_total").unwrap_or(0.0) < 2.0 {
                if succeeded.elapsed() > Duration::from_secs(600) {
                    bail!("the second host did not load the new training within 10 minutes");
                }
                let (s, _, _) = second_http.json(
                    "POST",
                    "/identify",
                    json!({ "faceIds": ten(calls), "largePersonGroupId": GROUP }),
                );
                calls += 1;
                failed += usize::from(s != 200);
            }
            let refresh_s = succeeded.elapsed().as_secs_f64();
            // The seconds of this load: the total less the first load's.
            let load_s = metric(&second_http.base, "face_index_load_seconds_total").unwrap_or(0.0) - first_load_s;
            drop(child);
            Some(SecondHost { first_s, refresh_s, load_s, calls, failed })
        }
        None => None,
    };

    // A restart: the index is read back, not retrained, and answers as before it.
    let before = http.ok("GET", &format!("/largepersongroups/{GROUP}/training"), Value::Null)?;
    let right_before = top1(&http, &face_ids)?;
    drop(child);
    child = served.start(&settings, "server-2.log")?;
    wait_ready(&http.agent, &http.base, "face-server")?;
    // The faceIds died with the old process; detect the probes again.
    face_ids.clear();
    for (who, path, _) in probes {
        let (_, v, _) = http.call(
            "POST",
            "/detect?returnFaceId=true&recognitionModel=recognition_01",
            Some(("application/octet-stream", std::fs::read(path)?)),
        );
        face_ids.push((*who, v[0]["faceId"].as_str().unwrap_or_default().to_owned()));
    }
    // The restarted host warm (its engine instances made by those detects), its peak reset, then
    // the load: the peak it reaches is the load's.
    let warm_restarted = memory_mb(child.0.id()).0;
    let peak_reset = std::fs::write(format!("/proc/{}/clear_refs", child.0.id()), "5").is_ok();
    let t_load = Instant::now();
    let first = http.ok("POST", "/identify", json!({ "faceIds": [face_ids[0].1], "largePersonGroupId": GROUP }))?;
    let load_s = t_load.elapsed().as_secs_f64();
    let peak_load = memory_mb(child.0.id()).1;
    if first[0]["candidates"].as_array().is_none_or(|c| c.is_empty()) {
        bail!("after the restart, identify found no one: {first}");
    }
    let after = http.ok("GET", &format!("/largepersongroups/{GROUP}/training"), Value::Null)?;
    let right_after = top1(&http, &face_ids)?;
    let rss_restarted = memory_mb(child.0.id()).0;
    let restarted_index_mb = http
        .agent
        .get(format!("{}/status", http.base))
        .call()
        .ok()
        .and_then(|mut r| serde_json::from_str::<Value>(&r.body_mut().read_to_string().ok()?).ok())
        .and_then(|v| v["memory"]["trainedIndexBytes"].as_f64())
        .unwrap_or(f64::NAN)
        / 1e6;

    // A snapshot of the LargeFaceList, taken and applied as a new list (rows copied inside the
    // database); each waited for through what the API shows: the snapshot listed, the list there.
    let wait = |path: &str, done: &dyn Fn(&Value) -> bool| -> Result<(f64, Value)> {
        let t = Instant::now();
        loop {
            let (s, v, _) = http.call("GET", path, None);
            if s == 200 && done(&v) {
                return Ok((t.elapsed().as_secs_f64(), v));
            }
            if t.elapsed() > Duration::from_secs(1800) {
                bail!("GET {path} did not show the snapshot's result within 30 minutes: {s} {v}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    eprintln!("scale: a snapshot of {LIST}, taken and applied as a new list");
    let scope = json!(["00000000-0000-4000-8000-000000000001"]);
    http.ok("POST", "/snapshots", json!({ "type": "LargeFaceList", "objectId": LIST, "applyScope": scope }))?;
    let (take_s, listed) = wait("/snapshots?type=LargeFaceList", &|v| v.as_array().is_some_and(|a| !a.is_empty()))?;
    let sid = listed[0]["id"].as_str().unwrap_or_default();
    let copy = format!("{LIST}-copy");
    http.ok("POST", &format!("/snapshots/{sid}/apply"), json!({ "objectId": copy }))?;
    let (apply_s, _) = wait(&format!("/largefacelists/{copy}"), &|_| true)?;
    let page = http.ok("GET", &format!("/largefacelists/{copy}/persistedfaces?top=1000"), Value::Null)?;
    let copied = page.as_array().map_or(0, Vec::len);
    let rss_snapshot = memory_mb(child.0.id()).0;
    drop(child);
    if copied != faces.min(1000) {
        bail!("the list applied from the snapshot shows {copied} faces on its first page");
    }

    let ms = |v: &[f64]| format!("{:.1} / {:.1}", crate::stats::percentile(v, 0.5), crate::stats::percentile(v, 0.99));
    let p99 = |v: &[f64]| crate::stats::percentile(v, 0.99);
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |figure: String, value: String, baseline: String, ratio: String| {
        rows.push([figure, value, baseline, ratio]);
    };
    let none = String::new;
    row(
        "fill through `face-server bulk-load`, group + list + 1K group".into(),
        format!("{fill_s:.1} s"),
        none(),
        none(),
    );
    row("train the LargePersonGroup".into(), format!("{train_group_s:.1} s"), none(), none());
    row("train the LargeFaceList".into(), format!("{train_list_s:.1} s"), none(), none());
    row("identify, 10 query faces, p50 / p99 ms".into(), ms(&identify), none(), none());
    row("find-similar on the LargeFaceList, p50 / p99 ms".into(), ms(&similar), none(), none());
    row(
        format!("AddFace p50 / p99 ms, at {faces} / at 1,000 faces"),
        ms(&add_large),
        ms(&add_small),
        format!("{:.2} (p99)", p99(&add_large) / p99(&add_small)),
    );
    row(
        format!(
            "detect and verify during a training, p50 / p99 ms (identify answered {} of {identify_during} calls meanwhile)",
            identify_during - identify_failed
        ),
        ms(&during),
        format!("{} idle", ms(&idle)),
        format!("{:.2} (p99)", p99(&during) / p99(&idle)),
    );
    row("the second training, under that load".into(), format!("{retrain_s:.1} s"), none(), none());
    if let Some(h) = &second {
        row(
            "a second host: first identify (loads the index) / the new training loaded after it succeeded on the first host (load's own seconds) / identify answered meanwhile".into(),
            format!(
                "{:.2} s / {:.1} s ({:.1} s) / {} of {}",
                h.first_s,
                h.refresh_s,
                h.load_s,
                h.calls - h.failed,
                h.calls
            ),
            none(),
            none(),
        );
    }
    row(
        format!("top-1 of the {} real probes, identify / exact f32 scan", probes.len()),
        right.to_string(),
        exact_right.to_string(),
        if right == exact_right { "equal" } else { "DIFFERENT" }.into(),
    );
    row(
        "find-similar on the LargeFaceList: the probes whose most similar face is the exact f32 scan's".into(),
        format!("{similar_right} of {}", probes.len()),
        none(),
        if similar_right == probes.len() { "equal" } else { "DIFFERENT" }.into(),
    );
    row(
        format!(
            "resident memory of face-server, MB: both indexes trained / warm, before training (the indexes' own bytes: {index_mb:.0} MB)"
        ),
        format!("{rss_trained:.0}"),
        format!("{rss_idle:.0}"),
        format!("+{:.0} MB", rss_trained - rss_idle),
    );
    row(
        format!(
            "database growth from the two trainings (the indexes' stored parts{})",
            if cluster.is_some() { "" } else { ", with the WAL" }
        ),
        format!("{:.0} MB", db_after - db_before),
        format!("{db_before:.0} MB before"),
        none(),
    );
    row(
        "after a restart: first identify (loads the index) / top-1 / training kept".into(),
        format!(
            "{load_s:.2} s / {right_after} / {}",
            if before["lastSuccessfulTrainingDateTime"] == after["lastSuccessfulTrainingDateTime"] {
                "yes"
            } else {
                "NO"
            }
        ),
        format!("top-1 {right_before} before it"),
        none(),
    );
    // Warm plus 1.2 times the index; at least the index plus 32 MB, for a short run's tiny index
    // (the identify's own buffers).
    let memory_bound = warm_restarted + (1.2 * restarted_index_mb).max(restarted_index_mb + 32.0);
    row(
        format!(
            "a restarted host loading one group's index ({restarted_index_mb:.0} MB): resident MB after / peak during the load{} (at most {memory_bound:.0})",
            if peak_reset { "" } else { " (its peak could not be reset: the process's whole life)" }
        ),
        format!("{rss_restarted:.0} / {peak_load:.0}"),
        format!("{warm_restarted:.0} warm, before it"),
        format!("{:.2} (peak over the bound)", peak_load / memory_bound),
    );
    row(
        "snapshot of the LargeFaceList: take / apply as a new list, s (resident MB after both)".into(),
        format!("{take_s:.1} / {apply_s:.1} ({rss_snapshot:.0})"),
        none(),
        none(),
    );
    let mut failures = Vec::new();
    if right != exact_right
        || similar_right != probes.len()
        || right_after != right_before
        || before["lastSuccessfulTrainingDateTime"] != after["lastSuccessfulTrainingDateTime"]
        || identify_failed > 0
    {
        failures.push(
            "the index did not keep the exact scan's answers (identify or find-similar), the training across the restart, or identify during training"
                .to_owned(),
        );
    }
    if second.as_ref().is_some_and(|h| h.failed > 0) {
        failures.push("the second host failed identify calls while it loaded the new training".into());
    }
    if peak_load.is_nan() || peak_load > memory_bound {
        failures.push(format!(
            "the restarted host peaked at {peak_load:.0} MB loading a {restarted_index_mb:.0} MB index, above its warm \
             {warm_restarted:.0} MB + 1.2 x the index (or a figure could not be read)"
        ));
    }
    Ok(Figures { rows, failures })
}

/// A second host on the same PostgreSQL: its first identify (the index loaded), and, after the
/// first host's next training, how long until it had loaded it and how its identifies fared.
struct SecondHost {
    first_s: f64,
    refresh_s: f64,
    load_s: f64,
    calls: usize,
    failed: usize,
}
