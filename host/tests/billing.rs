//! The container contract with the real binaries: face-server reporting usage to a real
//! face-meter over loopback HTTP; the meter stopped and started again; kill -9 and SIGTERM;
//! /metrics and JSON disk logs.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Settings that make the heartbeat fast enough for a test.
fn fast_billing(meter: &MeterProcess) -> Vec<String> {
    vec![format!("Billing={}", meter.url()), "Billing:IntervalSeconds=1".into(), "Billing:RetrySeconds=1".into()]
}

fn args(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// Billable calls (2xx under /face/v1.0) and a few refused ones, which are not billed.
fn some_calls(server: &Server) -> u64 {
    static ROUND: AtomicU64 = AtomicU64::new(0);
    let group = format!("/persongroups/billed-{}", ROUND.fetch_add(1, Ordering::SeqCst));
    let mut billed = 0;
    let mut ok = |(status, body): (u16, serde_json::Value)| {
        assert!((200..300).contains(&status), "{status} {body}");
        billed += 1;
    };
    ok(server.call("PUT", &group, Some(Body::Json(json!({"name": "b"})))));
    ok(server.call("GET", &group, None));
    ok(server.call("POST", "/detect", image(photo("obama.jpg"))));
    ok(server.call("POST", "/detect", image(photo("biden.jpg"))));
    // Errors are not billed.
    assert_eq!(server.call("GET", "/persongroups/nothing", None).0, 404);
    assert_eq!(server.call("POST", "/detect", image(vec![1; 10])).0, 400);
    assert_eq!(call("GET", &server.url("/persongroups"), Some("wrong"), None).0, 401);
    billed
}

#[test]
fn usage_is_counted_once_per_billable_transaction() {
    let dir = temp_dir("billing-once");
    let meter = start_meter(&dir.join("meter"), free_port());
    let server = start(&dir.join("data"), &args(&fast_billing(&meter)));
    let billed = some_calls(&server);
    wait_backlog_empty(&server, Duration::from_secs(20));
    assert_eq!(meter.totals(), (billed, billed, 0));
    let (status, body) = call("GET", &format!("{}/status", server.base), None, None);
    assert_eq!((status, body["apiStatus"].as_str()), (200, Some("Valid")), "{body}");
    // More calls later are counted too, and nothing twice.
    let more = some_calls(&server);
    wait_backlog_empty(&server, Duration::from_secs(20));
    assert_eq!(meter.totals(), (billed + more, billed + more, 0));
    // The meter's totals are the caller's own: nothing for a caller without an accepted key.
    let totals = format!("{}v1/totals", meter.url());
    assert_eq!(call("GET", &totals, None, None).0, 401);
    assert_eq!(call("GET", &totals, Some("wrong"), None).0, 401);
}

/// A client that sends AddFace and hangs up before the answer: the face is still added (the
/// handler runs to completion) and the work is billed once.
#[test]
fn work_for_a_client_that_hung_up_is_completed_and_billed() {
    use std::io::Write;
    let dir = temp_dir("billing-hangup");
    let meter = start_meter(&dir.join("meter"), free_port());
    let server = start(&dir.join("data"), &args(&fast_billing(&meter)));
    let mut billed = 0;
    assert_eq!(server.call("PUT", "/facelists/hung", Some(Body::Json(json!({"name": "h"})))).0, 200);
    billed += 1;
    let bytes = photo("obama.jpg");
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /face/v1.0/facelists/hung/persistedfaces HTTP/1.1\r\nHost: {address}\r\n\
         Ocp-Apim-Subscription-Key: {KEY}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes).unwrap();
    stream.flush().unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, list) = server.call("GET", "/facelists/hung", None);
        assert_eq!(status, 200, "{list}");
        billed += 1;
        if list["persistedFaces"].as_array().is_some_and(|f| f.len() == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the face of the client that hung up was never added: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
    billed += 1; // the AddFace
    wait_backlog_empty(&server, Duration::from_secs(20));
    assert_eq!(meter.totals(), (billed, billed, 0), "{}", server.log_text());
}

#[test]
fn past_the_grace_billable_queries_wait_for_the_meter_and_the_backlog_arrives_once() {
    let dir = temp_dir("billing-grace");
    let port = free_port();
    let meter = start_meter(&dir.join("meter"), port);
    let mut settings = fast_billing(&meter);
    // Long enough that the calls below, made at once, fall inside it on any machine; the test
    // then waits for the refusal rather than for a fixed time.
    settings.push("Billing:GraceSeconds=8".into());
    let server = start(&dir.join("data"), &args(&settings));
    let mut billed = some_calls(&server);
    wait_backlog_empty(&server, Duration::from_secs(20));
    drop(meter);

    // Within the grace the service goes on, journalling usage: cheap calls, made as soon as the
    // meter is gone (the grace counts from the first failed send, a heartbeat later).
    let group = "/persongroups/in-grace";
    assert_eq!(server.call("PUT", group, Some(Body::Json(json!({"name": "g"})))).0, 200);
    assert_eq!(server.call("GET", group, None).0, 200);
    billed += 2;
    let refused_at = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let response = respond("GET", &server.url("/persongroups"), Some(KEY), None);
        if response.status() != 200 {
            break response;
        }
        // Served within the grace: billed, and journalled for the meter's return.
        billed += 1;
        assert!(Instant::now() < refused_at, "queries were still served a minute after the meter went away");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some());
    let body: serde_json::Value = serde_json::from_str(&refused.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(code(&body), "BillingEndpointUnreachable", "{body}");
    // Health answers while queries are refused.
    let (status, s) = call("GET", &format!("{}/status", server.base), None, None);
    assert_eq!((status, s["apiStatus"].as_str()), (503, Some("CouldNotConnect")), "{s}");
    assert_eq!(call("GET", &format!("{}/ready", server.base), None, None).0, 200);
    assert_eq!(agent().get(format!("{}/metrics", server.base)).call().unwrap().status(), 200);

    // The meter is back: queries are served again and the backlog arrives, each record once.
    let meter = start_meter(&dir.join("meter"), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.call("GET", "/persongroups", None).0 != 200 {
        assert!(Instant::now() < deadline, "still refused with the meter back");
        std::thread::sleep(Duration::from_millis(200));
    }
    billed += 1;
    wait_backlog_empty(&server, Duration::from_secs(20));
    assert_eq!(meter.totals(), (billed, billed, 0));
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_usage_or_face_and_counts_nothing_twice() {
    let dir = temp_dir("billing-kill");
    let meter = start_meter(&dir.join("meter"), free_port());
    let settings = fast_billing(&meter);
    let data = dir.join("data");
    let mut server = start(&data, &args(&settings));
    assert_eq!(server.call("PUT", "/facelists/kept", Some(Body::Json(json!({"name": "k"})))).0, 200);
    let answered = Arc::new(AtomicU64::new(1));
    let faces = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("/facelists/kept/persistedfaces");
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (answered, faces, stop, url) = (answered.clone(), faces.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let bytes = photo(["obama.jpg", "biden.jpg", "obama2.jpg"][i]);
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) =
                        call("POST", &url, Some(KEY), Some(Body::Bytes("application/octet-stream", bytes.clone())));
                    if status == 200 {
                        answered.fetch_add(1, Ordering::SeqCst);
                        faces.lock().unwrap().push(body["persistedFaceId"].as_str().unwrap().to_owned());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    let answered = answered.load(Ordering::SeqCst);
    let faces = faces.lock().unwrap().clone();
    assert!(faces.len() >= 3, "the load made progress: {} faces", faces.len());

    let server = start(&data, &args(&settings));
    wait_backlog_empty(&server, Duration::from_secs(30));
    let (quantity, records, _) = meter.totals();
    assert_eq!(quantity, records, "each record counted once");
    // Every answered transaction was journalled before its answer; at most the three requests
    // in flight at the kill were journalled without being answered.
    assert!(records >= answered && records <= answered + 3, "{records} records for {answered} answers");
    let (_, list) = server.call("GET", "/facelists/kept", None);
    let stored: Vec<&str> =
        list["persistedFaces"].as_array().unwrap().iter().map(|f| f["persistedFaceId"].as_str().unwrap()).collect();
    for f in &faces {
        assert!(stored.contains(&f.as_str()), "face {f} answered before the kill is gone");
    }
}

#[test]
fn sigterm_drains_requests_in_flight_and_flushes_usage() {
    let dir = temp_dir("billing-term");
    let meter = start_meter(&dir.join("meter"), free_port());
    // No heartbeat during the test: only the final flush can deliver the usage.
    let settings = vec![format!("Billing={}", meter.url()), "Billing:IntervalSeconds=3600".into()];
    let mut server = start(&dir.join("data"), &args(&settings));
    let before = meter.totals().0;
    // A detect whose body is half sent: in flight on the server, by its own count, when the
    // SIGTERM comes; the rest is sent once the server has stopped accepting connections.
    let in_flight = HalfSent::begin(&server, "/detect", "application/octet-stream", &photo("obama.jpg"));
    wait_until("the detect is in flight", Duration::from_secs(60), || {
        metric(&server, "face_requests_in_flight") == Some(1.0)
    });
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let address = server.base.trim_start_matches("http://").to_owned();
    wait_until("the server stops accepting", Duration::from_secs(60), || {
        std::net::TcpStream::connect(&address).is_err()
    });
    let answer = in_flight.finish();
    assert_eq!(answer.status, 200, "the request in flight was answered: {answer:?}");
    assert!(answer.body.contains("faceRectangle"), "{answer:?}");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", server.log_text());
    assert_eq!(meter.totals().0, before + 1, "usage flushed at shutdown:\n{}", server.log_text());
}

#[test]
fn metrics_are_scraped_and_json_logs_go_to_the_output_mount() {
    let dir = temp_dir("billing-metrics");
    let output = dir.join("output");
    let server =
        start(&dir.join("data"), &["Logging:Disk:Format=json", &format!("Mounts:Output={}", output.display())]);
    assert_eq!(server.call("POST", "/detect", image(photo("obama.jpg"))).0, 200);
    assert_eq!(server.call("GET", "/persongroups/none", None).0, 404);
    // Unknown paths share one label, so path words cannot grow the label set.
    assert_eq!(server.call("GET", "/persongroups/none/detect/train", None).0, 404);
    assert_eq!(server.call("GET", "/swagger-ui.php", None).0, 404);
    let text = agent().get(format!("{}/metrics", server.base)).call().unwrap().into_body().read_to_string().unwrap();
    for wanted in [
        "face_requests_total{route=\"/face/v1.0/detect\",method=\"POST\",status=\"200\"} 1",
        "face_requests_total{route=\"/face/v1.0/persongroups/{personGroupId}\",method=\"GET\",status=\"404\"} 1",
        "face_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 2",
        "face_request_duration_seconds_count{route=\"/face/v1.0/detect\"} 1",
        "face_engine_pool_size 1",
        "face_usage_backlog ",
    ] {
        assert!(text.contains(wanted), "{wanted} missing:\n{text}");
    }
    let log = std::fs::read_to_string(output.join("face-server.log")).expect("the disk log exists");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(lines.iter().any(|l| l["fields"]["path"] == "/face/v1.0/detect" && l["fields"]["status"] == 200), "{log}");
    // A disk log without a writable output is refused at start-up, naming the setting.
    let out = Command::new(env!("CARGO_BIN_EXE_face-server"))
        .args([
            "Eula=accept",
            "Billing=http://127.0.0.1:9/",
            "ApiKey=k",
            "Logging:Disk:Format=json",
            "Mounts:Output=/proc/none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mounts:Output"));
}

#[test]
fn a_key_the_meter_refuses_stops_billable_queries_at_once() {
    let dir = temp_dir("billing-invalid");
    let port = free_port();
    let _meter = MeterProcess {
        child: Command::new(env!("CARGO_BIN_EXE_face-meter"))
            .args(["Keys=somebody-else", &format!("Address=127.0.0.1:{port}")])
            .arg(format!("DataDirectory={}", dir.join("meter").display()))
            .spawn()
            .unwrap(),
        port,
    };
    let settings = vec![format!("Billing=http://127.0.0.1:{port}/"), "Billing:RetrySeconds=1".into()];
    let server = start(&dir.join("data"), &args(&settings));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.call("GET", "/persongroups", None);
        if status == 401 {
            assert!(body["error"]["message"].as_str().unwrap().contains("refused the ApiKey"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still served with a key the meter refuses: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, s) = call("GET", &format!("{}/status", server.base), None, None);
    assert_eq!((status, s["apiStatus"].as_str()), (503, Some("Invalid")), "{s}");
}

#[test]
fn with_memory_storage_the_usage_journal_still_survives_a_restart() {
    let dir = temp_dir("billing-memory");
    let port = free_port();
    let settings = vec![
        "Storage:Scenario=Memory".to_owned(),
        format!("Billing=http://127.0.0.1:{port}/"),
        "Billing:IntervalSeconds=1".into(),
        "Billing:RetrySeconds=1".into(),
    ];
    let data = dir.join("data");
    let mut server = start(&data, &args(&settings));
    // No meter yet: the calls are journalled and wait.
    let billed = some_calls(&server);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let meter = start_meter(&dir.join("meter"), port);
    let server = start(&data, &args(&settings));
    wait_backlog_empty(&server, Duration::from_secs(20));
    assert_eq!(meter.totals(), (billed, billed, 0));
}
