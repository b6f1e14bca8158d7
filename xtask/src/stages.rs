//! `cargo xtask stages [--runs N] [--backends tract,onnxruntime,guest]`: where one detect
//! request's time goes, per engine backend and photo size. For each backend it starts the real
//! face-server (pool size = cores) and sends N detect requests (faceId on, one at a time, on an
//! idle server) with a 640x480, a 1920x1080 and a 4032x3024 (12-megapixel) photo made from a
//! registry photo (`util::photo_sized`), reads each answer's `Server-Timing` and prints the
//! median of every stage: the body's read, the image, the wait for an instance, the guest's
//! steps (decode, detector input, detector, crops, landmarks, recognizer), the sandbox's own
//! cost, the faceId write, the JSON, the usage journal, and the rest of the total. Then, per
//! backend, the 12-megapixel photo's total against the 640x480 one's (the cliff: at most 3x).
//! Run by `cargo xtask bench`; prints a ratio, never fails on a time.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::load::{KEY, Running, start};
use crate::server::build_server;
use crate::util::{Flags, PHOTO_SIZES, photo_sized};

/// The stages in the order a request meets them; `rest` is computed.
const ORDER: [&str; 16] = [
    "body",
    "image",
    "queue",
    "decode",
    "detector-input",
    "detector",
    "crops",
    "landmarks",
    "recognizer",
    "attributes",
    "sandbox",
    "faceid",
    "json",
    "usage",
    "rest",
    "total",
];

/// One detect request's stages, ms by name, from its `Server-Timing` lines.
fn timed_detect(run: &Running, photo: &[u8]) -> Result<BTreeMap<String, f64>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/face/v1.0/detect", run.base))
        .header("Ocp-Apim-Subscription-Key", KEY)
        .header("Content-Type", "application/octet-stream")
        .body(photo.to_vec())?;
    let response = agent.run(request).context("POST /detect")?;
    let status = response.status().as_u16();
    let lines: Vec<String> =
        response.headers().get_all("server-timing").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
    let body = response.into_body().read_to_string()?;
    if status != 200 {
        bail!("detect answered {status}: {body}");
    }
    let faces: serde_json::Value = serde_json::from_str(&body)?;
    if faces.as_array().map(Vec::len) != Some(1) {
        bail!("the bench photo should have one face, detect found: {body}");
    }
    let mut stages: BTreeMap<String, f64> = BTreeMap::new();
    for line in &lines {
        for entry in line.split(',') {
            let mut parts = entry.trim().split(';');
            let name = parts.next().unwrap_or_default().trim().to_owned();
            if let Some(ms) = parts.find_map(|p| p.trim().strip_prefix("dur=")).and_then(|v| v.parse::<f64>().ok()) {
                *stages.entry(name).or_default() += ms;
            }
        }
    }
    let total = *stages.get("total").context("the answer has no Server-Timing total")?;
    let parts: f64 = stages.iter().filter(|(k, _)| k.as_str() != "total").map(|(_, v)| v).sum();
    stages.insert("rest".into(), (total - parts).max(0.0));
    Ok(stages)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn stages(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask stages [--runs N] [--backends tract,onnxruntime,guest]";
    let flags = Flags::parse(args, usage, &["--runs", "--backends"], &[])?;
    let runs: usize = flags.value("--runs", 7)?;
    if runs < 1 {
        return Err(flags.refuse("--runs takes a number of at least 1"));
    }
    let backends: Vec<String> =
        flags.text("--backends").unwrap_or("tract,onnxruntime,guest").split(',').map(str::to_owned).collect();
    let (server, guest) = build_server()?;
    let photos: Vec<(String, Vec<u8>)> = PHOTO_SIZES
        .iter()
        .map(|&(w, h)| -> Result<_> { Ok((format!("{w}x{h}"), std::fs::read(photo_sized(w, h)?)?)) })
        .collect::<Result<_>>()?;
    // (backend, photo) -> stage -> median ms.
    let mut columns: Vec<(String, String, BTreeMap<String, f64>)> = Vec::new();
    for backend in &backends {
        let run = start(&server, &guest, backend)?;
        for (label, bytes) in &photos {
            eprintln!("stages: {backend}: {runs} detects of the {label} photo ({} KB)", bytes.len() / 1024);
            // One call first: instances, caches and the allocator warmed.
            timed_detect(&run, bytes)?;
            let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for _ in 0..runs {
                for (k, v) in timed_detect(&run, bytes)? {
                    samples.entry(k).or_default().push(v);
                }
            }
            let medians = samples.into_iter().map(|(k, v)| (k, median(v))).collect();
            columns.push((backend.clone(), label.clone(), medians));
        }
        let _ = std::fs::remove_dir_all(&run.dir);
    }
    print_table(&columns, runs);
    Ok(())
}

fn print_table(columns: &[(String, String, BTreeMap<String, f64>)], runs: usize) {
    println!("\nOne detect request through REST (faceId on, one face, idle server), median ms of {runs}:\n");
    let head: Vec<String> = columns.iter().map(|(b, p, _)| format!("{b} {p}")).collect();
    println!("| stage | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    let mut names: Vec<&str> = ORDER.to_vec();
    for (_, _, m) in columns {
        for k in m.keys() {
            if !names.contains(&k.as_str()) {
                names.insert(names.len() - 2, k.as_str());
            }
        }
    }
    for name in names {
        if columns.iter().all(|(_, _, m)| !m.contains_key(name)) {
            continue;
        }
        let cells: Vec<String> =
            columns.iter().map(|(_, _, m)| m.get(name).map_or("-".into(), |v| format!("{v:.1}"))).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!("\nThe largest photo against the smallest, total ms (no cliff: at most 3x):\n");
    println!(
        "| backend | {} | {} | ratio |",
        columns.first().map_or("", |c| c.1.as_str()),
        columns.last().map_or("", |c| c.1.as_str())
    );
    println!("|---|---|---|---|");
    let mut backends: Vec<&str> = columns.iter().map(|(b, _, _)| b.as_str()).collect();
    backends.dedup();
    for b in backends {
        let of = |photo: &str| {
            columns.iter().find(|(cb, p, _)| cb == b && p == photo).and_then(|(_, _, m)| m.get("total").copied())
        };
        let (small, large) = (
            of(&format!("{}x{}", PHOTO_SIZES[0].0, PHOTO_SIZES[0].1)),
            of(&format!("{}x{}", PHOTO_SIZES[2].0, PHOTO_SIZES[2].1)),
        );
        if let (Some(s), Some(l)) = (small, large) {
            println!("| {b} | {s:.1} | {l:.1} | {:.2} |", l / s);
        }
    }
}
