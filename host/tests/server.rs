//! The real face-server binary on a loopback port, over real HTTP, with the real guest and a
//! real SQLite file: start-up refusals, the subscription key, errors for bad input, every
//! operation of the route table served, and data that survives a restart.
//!
//! Needs the guest (`cargo xtask guest`), the models (`cargo xtask models`) and the test photos
//! (`cargo xtask testdata`); `scripts/test.sh` runs all three first.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use face_host::api::routes::OPERATIONS;
use serde_json::{Value, json};

#[test]
fn missing_required_settings_refuse_to_start_with_the_setting_named() {
    for (args, named) in [
        (vec!["Billing=http://m/", "ApiKey=k"], "Eula"),
        (vec!["Eula=accept", "ApiKey=k"], "Billing"),
        (vec!["Eula=accept", "Billing=http://m/"], "ApiKey"),
        (vec!["Eula=accept", "Billing=http://m/", "ApiKey=k", "Storage:Scenario=Floppy"], "Storage:Scenario"),
        // A typo is refused, not silently ignored.
        (vec!["Eula=accept", "Billing=http://m/", "ApiKey=k", "Billing:Interval=60"], "Billing:Interval"),
    ] {
        let out =
            Command::new(env!("CARGO_BIN_EXE_face-server")).args(&args).env_clear().output().expect("face-server runs");
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("the {named} setting")), "{args:?}: {err}");
        // `check-settings` refuses the same settings with the same words, without starting.
        let out = Command::new(env!("CARGO_BIN_EXE_face-server"))
            .arg("check-settings")
            .args(&args)
            .env_clear()
            .output()
            .expect("face-server runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("the {named} setting")), "{args:?}");
    }
    // Settings from the arguments and the environment, as a deployment gives them, accepted.
    let out = Command::new(env!("CARGO_BIN_EXE_face-server"))
        .args(["check-settings", "Eula=accept"])
        .env_clear()
        .env("BILLING", "https://billing.example/")
        .env("APIKEY", "k")
        .env("Storage__Scenario", "Postgres")
        .env("Storage__ConnectionString", "postgresql://face:pw@db.example:5432/face")
        .output()
        .expect("face-server runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A connection string a start would refuse is refused here too, without connecting.
    let out = Command::new(env!("CARGO_BIN_EXE_face-server"))
        .args(["check-settings", "Eula=accept", "Billing=https://billing.example/", "ApiKey=k"])
        .args([
            "Storage:Scenario=Postgres",
            "Storage:ConnectionString=postgresql://face@db.example/face?sslmode=verify-full",
        ])
        .env_clear()
        .output()
        .expect("face-server runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs sslrootcert"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_api_answers_face_api_errors_and_results() {
    let data = temp_dir("errors");
    let server = start(&data, &[]);

    // The subscription key.
    let (status, body) = call("GET", &server.url("/persongroups"), None, None);
    assert_eq!((status, code(&body)), (401, "401"));
    let (status, _) = call("GET", &server.url("/persongroups"), Some("wrong"), None);
    assert_eq!(status, 401);
    // Health needs no key.
    let (status, body) = call("GET", &format!("{}/status", server.base), None, None);
    assert_eq!((status, body["apiStatus"].as_str()), (503, Some("CouldNotConnect")), "no meter on port 9: {body}");
    // The default engine: models on the host's tract through wasi:nn, the guest precompiled and verified.
    assert_eq!(body["engine"]["backend"], "tract", "{body}");
    assert_eq!(body["engine"]["guest"], "precompiled", "{body}");

    // Unknown routes and methods.
    let (status, body) = server.call("GET", "/nothing/here", None);
    assert_eq!((status, code(&body)), (404, "NotFound"));
    let (status, body) = server.call("GET", "/detect", None);
    assert_eq!((status, code(&body)), (405, "MethodNotAllowed"));

    // Ids, JSON and media types.
    let (status, body) = server.call("PUT", "/persongroups/BadID", Some(Body::Json(json!({"name": "x"}))));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) =
        server.call("PUT", "/persongroups/g1", Some(Body::Bytes("application/json", b"{oops".to_vec())));
    assert_eq!((status, code(&body)), (400, "BadArgument"), "{body}");
    let (status, body) = server.call("PUT", "/persongroups/g1", Some(Body::Json(json!({"name": ""}))));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) =
        server.call("PUT", "/persongroups/g1", Some(Body::Json(json!({"name": "n", "recognitionModel": "r9"}))));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) = server.call("PUT", "/persongroups/g1", Some(Body::Bytes("text/plain", b"hi".to_vec())));
    assert_eq!((status, code(&body)), (415, "BadArgument"));
    let (status, body) = server.call("GET", "/persongroups/g1", None);
    assert_eq!((status, code(&body)), (404, "PersonGroupNotFound"));
    let (status, body) = server.call("GET", "/persongroups?top=0", None);
    assert_eq!((status, code(&body)), (400, "BadArgument"));

    // Images.
    let (status, body) = server.call("POST", "/detect", image(vec![0xff; 100]));
    assert_eq!((status, code(&body)), (400, "InvalidImageSize"));
    let (status, body) = server.call("POST", "/detect", image(vec![7; 4096]));
    assert_eq!((status, code(&body)), (400, "InvalidImage"));
    let (status, body) = server.call("POST", "/detect", image(vec![0; 6 * 1024 * 1024 + 1]));
    assert_eq!((status, code(&body)), (400, "InvalidImageSize"));
    let (status, body) = server.call("POST", "/detect?faceIdTimeToLive=59", image(photo("obama.jpg")));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) = server.call("POST", "/detect?returnFaceAttributes=age,height", image(photo("obama.jpg")));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) =
        server.call("POST", "/detect?detectionModel=detection_02&returnFaceLandmarks=true", image(photo("obama.jpg")));
    assert_eq!((status, code(&body)), (400, "BadArgument"));
    let (status, body) = server.call("POST", "/detect", Some(Body::Json(json!({"url": "file:///etc/passwd"}))));
    assert_eq!((status, code(&body)), (400, "InvalidURL"));
    // Loopback is refused unless Security:AllowPrivateUrls is set.
    let own = format!("{}/status", server.base);
    let (status, body) = server.call("POST", "/detect", Some(Body::Json(json!({ "url": own }))));
    assert_eq!((status, code(&body)), (400, "InvalidURL"), "{body}");

    // A real detection with landmarks, and verification.
    let (status, faces) = server.call(
        "POST",
        "/detect?returnFaceLandmarks=true&returnRecognitionModel=true&faceIdTimeToLive=60",
        image(photo("obama.jpg")),
    );
    assert_eq!(status, 200, "{faces}");
    let faces = faces.as_array().unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0]["recognitionModel"], "recognition_01");
    assert_eq!(faces[0]["faceLandmarks"].as_object().unwrap().len(), 27);
    let obama = faces[0]["faceId"].as_str().unwrap().to_owned();
    let (_, f2) = server.call("POST", "/detect", image(photo("obama2.jpg")));
    let (_, fb) = server.call("POST", "/detect", image(photo("biden.jpg")));
    let (obama2, biden) = (f2[0]["faceId"].as_str().unwrap(), fb[0]["faceId"].as_str().unwrap());
    let (status, v) = server.call("POST", "/verify", Some(Body::Json(json!({"faceId1": obama, "faceId2": obama2}))));
    assert_eq!((status, v["isIdentical"].as_bool()), (200, Some(true)), "{v}");
    let (_, v) = server.call("POST", "/verify", Some(Body::Json(json!({"faceId1": obama, "faceId2": biden}))));
    assert_eq!(v["isIdentical"].as_bool(), Some(false), "{v}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, v) = server.call("POST", "/verify", Some(Body::Json(json!({"faceId1": obama, "faceId2": unknown}))));
    assert_eq!((status, code(&v)), (404, "FaceNotFound"));
    let (_, f02) = server.call("POST", "/detect?recognitionModel=recognition_02", image(photo("obama2.jpg")));
    let other_model = f02[0]["faceId"].as_str().unwrap();
    let (status, v) =
        server.call("POST", "/verify", Some(Body::Json(json!({"faceId1": obama, "faceId2": other_model}))));
    assert_eq!((status, code(&v)), (400, "BadArgument"), "{v}");
    let (status, v) = server.call("POST", "/group", Some(Body::Json(json!({"faceIds": [obama]}))));
    assert_eq!((status, code(&v)), (400, "BadArgument"));
    let (status, v) = server.call("POST", "/identify", Some(Body::Json(json!({"faceIds": [obama]}))));
    assert_eq!((status, code(&v)), (400, "PersonGroupIdAndLargePersonGroupIdBothNull"));

    // Training and identification; an untrained group refuses.
    assert_eq!(server.call("PUT", "/persongroups/people", Some(Body::Json(json!({"name": "People"})))).0, 200);
    let (status, v) = server.call("PUT", "/persongroups/people", Some(Body::Json(json!({"name": "Again"}))));
    assert_eq!((status, code(&v)), (409, "PersonGroupExists"));
    let (_, p) = server.call("POST", "/persongroups/people/persons", Some(Body::Json(json!({"name": "Obama"}))));
    let person = p["personId"].as_str().unwrap().to_owned();
    let (status, v) = server.call(
        "POST",
        &format!("/persongroups/people/persons/{person}/persistedfaces?userData=first"),
        image(photo("obama2.jpg")),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = server.call(
        "POST",
        &format!("/persongroups/people/persons/{person}/persistedfaces"),
        image(photo("obama_partial_face2.jpg")),
    );
    // The face is cut by the photo's edge but whole enough to be detected: one face, so AddFace
    // persists it (the spec's rule: exactly one face, or targetFace).
    assert_eq!(status, 200, "{v}");
    let body = json!({"faceIds": [obama], "personGroupId": "people"});
    let (status, v) = server.call("POST", "/identify", Some(Body::Json(body.clone())));
    assert_eq!((status, code(&v)), (400, "PersonGroupNotTrained"));
    let (status, v) = server.call("GET", "/persongroups/people/training", None);
    assert_eq!((status, code(&v)), (404, "PersonGroupNotTrained"));
    assert_eq!(server.call("POST", "/persongroups/people/train", None).0, 202);
    wait_trained(&server, "/persongroups/people");
    let (status, v) = server.call("POST", "/identify", Some(Body::Json(body)));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["candidates"][0]["personId"], person.as_str(), "{v}");

    // The server is still serving after all of the above.
    assert_eq!(call("GET", &format!("{}/ready", server.base), None, None).0, 200);
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

pub fn wait_trained(server: &Server, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // From the 202 on, the status is running or succeeded, never "not trained".
        let (status, t) = server.call("GET", &format!("{path}/training"), None);
        assert_eq!(status, 200, "training status after train: {t}");
        if t["status"] == "succeeded" {
            return;
        }
        assert_ne!(t["status"], "failed", "{t}");
        assert!(Instant::now() < deadline, "training did not finish: {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_operation_of_the_table_is_routed() {
    let data = temp_dir("routes");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let uuid = "00000000-0000-4000-8000-000000000001";
    for op in OPERATIONS {
        let path: String = op
            .route()
            .split('/')
            .map(|seg| match seg {
                "{personId}" | "{persistedFaceId}" | "{snapshotId}" | "{operationId}" => uuid,
                s if s.starts_with('{') => "missing",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = match op.method {
            "GET" | "DELETE" => None,
            _ if op.path.contains("overload=stream") => image(vec![0; 10]),
            _ => Some(Body::Json(json!({}))),
        };
        let (status, v) = server.call(op.method, &path, body);
        // Routed: neither the router's 404 nor its 405, and answered by the operation itself,
        // which refuses an empty body or an unknown id with a Face API error, never a 5xx.
        assert!(
            status != 405 && code(&v) != "NotFound" && code(&v) != "MethodNotAllowed",
            "{} {} {path}: {status} {v}",
            op.id,
            op.method
        );
        assert!(
            status < 300 || (400..500).contains(&status) && code(&v) != "<no error code>",
            "{} {} {path}: {status} {v}",
            op.id,
            op.method
        );
        // A route parameter that does not percent-decode to UTF-8 is refused with the Face API's
        // 400, like any other malformed id (axum's own refusal is plain text).
        if op.route().contains('{') {
            let bad: String = op
                .route()
                .split('/')
                .map(|seg| if seg.starts_with('{') { "%80" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let (status, v) = server.call(op.method, &bad, None);
            assert!(status == 400 && code(&v) == "BadArgument", "{} {} {bad}: {status} {v}", op.id, op.method);
        }
    }
}

/// The table in the code is the official one: 69 operations, each with the spec's method,
/// route and success status, read from the copy of Face.json in `host/tests/spec/` (checked
/// against `../shared/face-api/` where that is beside the repo).
#[test]
fn the_route_table_matches_face_json() {
    let spec_dir = repo().join("host/tests/spec");
    let text = std::fs::read_to_string(spec_dir.join("Face.json")).unwrap();
    for name in ["Face.json", "Common-Parameters.json"] {
        if let Ok(shared) = std::fs::read(repo().join("../shared/face-api").join(name)) {
            assert!(
                shared == std::fs::read(spec_dir.join(name)).unwrap(),
                "host/tests/spec/{name} differs from ../shared"
            );
        }
    }
    let spec: Value = serde_json::from_str(&text).unwrap();
    let mut expected = Vec::new();
    for section in ["paths", "x-ms-paths"] {
        for (path, ops) in spec[section].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().unwrap() {
                let status = op["responses"].as_object().unwrap().keys().find(|k| *k != "default").unwrap().clone();
                expected.push(format!(
                    "{} {} {path} {status}",
                    op["operationId"].as_str().unwrap(),
                    method.to_uppercase()
                ));
            }
        }
    }
    let mut ours: Vec<String> =
        OPERATIONS.iter().map(|o| format!("{} {} {} {}", o.id, o.method, o.path, o.status)).collect();
    ours.sort();
    expected.sort();
    assert_eq!(ours.len(), 69);
    assert_eq!(ours, expected);
}

#[test]
fn stored_data_survives_a_restart() {
    let data = temp_dir("restart");
    let (person, face) = {
        let server = start(&data, &[]);
        assert_eq!(
            server.call("PUT", "/largepersongroups/keep", Some(Body::Json(json!({"name": "K", "userData": "u"})))).0,
            200
        );
        let (_, p) = server.call("POST", "/largepersongroups/keep/persons", Some(Body::Json(json!({"name": "Obama"}))));
        let person = p["personId"].as_str().unwrap().to_owned();
        let (status, f) = server.call(
            "POST",
            &format!("/largepersongroups/keep/persons/{person}/persistedfaces?userData=ud"),
            image(photo("obama.jpg")),
        );
        assert_eq!(status, 200, "{f}");
        assert_eq!(server.call("POST", "/largepersongroups/keep/train", None).0, 202);
        wait_trained(&server, "/largepersongroups/keep");
        (person, f["persistedFaceId"].as_str().unwrap().to_owned())
        // The server is killed here (SIGKILL), with no chance to flush anything.
    };
    let server = start(&data, &[]);
    let (status, g) = server.call("GET", "/largepersongroups/keep", None);
    assert_eq!((status, g["userData"].as_str()), (200, Some("u")), "{g}");
    let (_, p) = server.call("GET", &format!("/largepersongroups/keep/persons/{person}"), None);
    assert_eq!(p["persistedFaceIds"], json!([face]));
    let (_, f) = server.call("GET", &format!("/largepersongroups/keep/persons/{person}/persistedfaces/{face}"), None);
    assert_eq!(f["userData"], "ud");
    let (_, t) = server.call("GET", "/largepersongroups/keep/training", None);
    assert_eq!(t["status"], "succeeded");
    let (_, d) = server.call("POST", "/detect", image(photo("obama3.jpg")));
    let probe = d[0]["faceId"].as_str().unwrap();
    let (status, v) =
        server.call("POST", "/identify", Some(Body::Json(json!({"faceIds": [probe], "largePersonGroupId": "keep"}))));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["candidates"][0]["personId"], person.as_str(), "identify without retraining: {v}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn swagger_serves_the_document_and_an_offline_ui() {
    let data = temp_dir("swagger");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let (status, doc) = call("GET", &format!("{}/swagger/v1/swagger.json", server.base), None, None);
    assert_eq!(status, 200);
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().values())
        .flat_map(|op| op["x-operationIds"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()))
        .collect();
    assert_eq!(ids.len(), 69, "every operation, overloads included: {ids:?}");
    let (status, page) = call("GET", &format!("{}/swagger", server.base), None, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap_or_default().to_owned();
    assert!(
        page.contains("/swagger/ui/swagger-ui-bundle.js"),
        "Swagger UI assets missing (scripts/setup.sh installs them): {page}"
    );
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"] {
        let response = agent().get(format!("{}/swagger/ui/{asset}", server.base)).call().unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    let response = agent().get(format!("{}/swagger/ui/..%2fpackage.json", server.base)).call().unwrap();
    assert_eq!(response.status(), 404);
}

#[test]
fn a_full_engine_queue_answers_429_with_retry_after() {
    let data = temp_dir("queue");
    let server = start(&data, &["Storage:Scenario=Memory", "Engine:MaxQueue=1"]);
    // Six detects at once, by the server's count, with one instance and a queue of one.
    let answers = at_once(&server, 6, "/detect", "application/octet-stream", &photo("obama.jpg"));
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(answers.iter().any(|a| a.status == 200), "{answers:?}");
    assert!(!limited.is_empty(), "six at once with a queue of one: {answers:?}");
    for a in limited {
        assert_eq!(a.header("retry-after"), Some("1"), "{a:?}");
        assert_eq!(code(&a.json()), "RateLimitExceeded");
    }
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 429), "{answers:?}");
}

/// A body declared larger than 6 MB is refused from its Content-Length header, without waiting
/// for the body (a client that waits for `100 Continue` sends none of it).
#[test]
fn an_oversized_body_is_refused_at_its_header() {
    use std::io::{Read, Write};
    let data = temp_dir("declared");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    for (length, expect) in [(200_000_000u64, ""), (10_000_000, "Expect: 100-continue\r\n")] {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!(
            "POST /face/v1.0/detect HTTP/1.1\r\nHost: {address}\r\nOcp-Apim-Subscription-Key: {KEY}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{length} bytes declared, none sent: {text:?}");
        assert!(text.contains("InvalidImageSize"), "{text}");
    }
}

/// One memory budget holds request bodies as they arrive and each image's decoded pixels: a
/// request that would pass it is refused at once with 429 and Retry-After, and the bytes come
/// back when the request that held them ends.
#[test]
fn the_memory_budget_refuses_at_once_past_it() {
    use std::io::Write;
    let data = temp_dir("budget");
    let server = start(&data, &["Storage:Scenario=Memory", "Server:MemoryBudgetMiB=8"]);
    let refused = |(status, v): &(u16, Value), why: &str| {
        assert_eq!(*status, 429, "{why}: {v}");
        assert_eq!(code(v), "RateLimitExceeded", "{why}");
        assert!(v["error"]["message"].as_str().unwrap().contains("Server:MemoryBudgetMiB"), "{v}");
    };
    // A few kilobytes of PNG whose 2000x1000 pixels alone take 14 MB decoded.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(2000, 1000).write_to(&mut png, image::ImageFormat::Png).unwrap();
    refused(&server.call("POST", "/detect", image(png.into_inner())), "pixels past the budget");

    // obama.jpg (280 KB, 910x1137: 7.5 MB with its pixels) fits alone, but not beside an upload
    // that has declared 6 MB and sent a little of it.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut upload = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /face/v1.0/detect HTTP/1.1\r\nHost: {address}\r\nOcp-Apim-Subscription-Key: {KEY}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 6000000\r\n\r\n"
    );
    upload.write_all(head.as_bytes()).unwrap();
    upload.write_all(&[0u8; 1000]).unwrap();
    // The upload holds its declared 6 MB as soon as its headers are read, and no byte more.
    wait_until("the upload holds its 6 MB", Duration::from_secs(60), || {
        call("GET", &format!("{}/status", server.base), None, None).1["memory"]["heldBytes"] == 6_000_000
    });
    refused(&server.call("POST", "/detect", image(photo("obama.jpg"))), "beside a 6 MB upload");

    // The upload gives up: its bytes are given back, and the photo is served.
    drop(upload);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = call("GET", &format!("{}/status", server.base), None, None);
        if status["memory"]["heldBytes"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the upload's bytes were not given back: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, v) = server.call("POST", "/detect", image(photo("obama.jpg")));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
}

/// On the photo of Azure's recorded answer (the official SDK's test recording, from
/// `cargo xtask testdata`), a detect with every attribute answers in the service's conventions:
/// a face rectangle that overlaps Azure's, fields in its order, enum values in its spelling, and
/// the values code branches on (glasses, the blur, exposure and noise levels, yaw's sign, a level
/// pitch, no facial hair) as Azure answered.
#[test]
fn detect_answers_in_the_services_conventions() {
    let data = temp_dir("azure");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let azure: Value = serde_json::from_slice(&std::fs::read(cache().join("testdata/azure_queryface.json")).unwrap())
        .expect("run `cargo xtask testdata`");
    let attributes =
        "age,gender,headPose,smile,facialHair,glasses,emotion,hair,makeup,occlusion,accessories,blur,exposure,noise";
    let (status, v) =
        server.call("POST", &format!("/detect?returnFaceAttributes={attributes}"), image(photo("azure_queryface.jpg")));
    assert_eq!(status, 200, "{v}");
    let (ours, theirs) = (&v[0], &azure[0]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(ours), keys(theirs), "the face's fields in the service's order");
    assert_eq!(keys(&ours["faceRectangle"]), keys(&theirs["faceRectangle"]));
    assert_eq!(keys(&ours["faceAttributes"]), keys(&theirs["faceAttributes"]), "the attributes in the service's order");
    for group in ["headPose", "facialHair", "blur", "exposure", "noise", "makeup", "occlusion", "hair"] {
        assert_eq!(keys(&ours["faceAttributes"][group]), keys(&theirs["faceAttributes"][group]), "{group}");
    }
    let rect = |r: &Value| {
        let f = |k: &str| r[k].as_f64().unwrap();
        (f("left"), f("top"), f("left") + f("width"), f("top") + f("height"))
    };
    let (a, b) = (rect(&ours["faceRectangle"]), rect(&theirs["faceRectangle"]));
    let inter = (a.2.min(b.2) - a.0.max(b.0)).max(0.0) * (a.3.min(b.3) - a.1.max(b.1)).max(0.0);
    let union = (a.2 - a.0) * (a.3 - a.1) + (b.2 - b.0) * (b.3 - b.1) - inter;
    assert!(inter / union >= 0.8, "IoU {} with Azure's rectangle: ours {:?}, Azure's {:?}", inter / union, a, b);
    let at = &ours["faceAttributes"];
    let one_of = |value: &Value, spellings: &[&str]| {
        assert!(spellings.contains(&value.as_str().unwrap()), "{value} is not one of {spellings:?}");
    };
    one_of(&at["glasses"], &["NoGlasses", "ReadingGlasses", "Sunglasses", "SwimmingGoggles"]);
    one_of(&at["blur"]["blurLevel"], &["low", "medium", "high"]);
    one_of(&at["noise"]["noiseLevel"], &["low", "medium", "high"]);
    one_of(&at["exposure"]["exposureLevel"], &["underExposure", "goodExposure", "overExposure"]);
    assert_eq!(theirs["faceAttributes"]["glasses"], "NoGlasses");
    assert_eq!(theirs["faceAttributes"]["exposure"]["exposureLevel"], "goodExposure");
    // And the values agree with the service's where code branches on them.
    let az = &theirs["faceAttributes"];
    assert_eq!(at["glasses"], az["glasses"]);
    for (group, level) in [("blur", "blurLevel"), ("exposure", "exposureLevel"), ("noise", "noiseLevel")] {
        assert_eq!(at[group][level], az[group][level], "{group}: ours {}, Azure's {}", at[group], az[group]);
    }
    let angle = |v: &Value, k: &str| v["headPose"][k].as_f64().unwrap();
    assert_eq!(
        angle(at, "yaw").signum(),
        angle(az, "yaw").signum(),
        "yaw's sign: {} vs {}",
        at["headPose"],
        az["headPose"]
    );
    assert!(angle(at, "pitch").abs() < 10.0, "a frontal face reads level: {}", at["headPose"]);
    for k in ["moustache", "beard", "sideburns"] {
        assert!(at["facialHair"][k].as_f64().unwrap() < 0.5, "{}", at["facialHair"]);
    }
}

/// Engine instances are replaced after Engine:RecycleCalls calls; answers go on unchanged.
#[test]
fn engine_instances_are_recycled_after_their_calls() {
    let data = temp_dir("recycle");
    let server = start(&data, &["Storage:Scenario=Memory", "Engine:PoolSize=1", "Engine:RecycleCalls=2"]);
    let mut first = None;
    for _ in 0..5 {
        let (status, v) = server.call("POST", "/detect?returnFaceId=false", image(photo("obama.jpg")));
        assert_eq!(status, 200, "{v}");
        assert_eq!(*first.get_or_insert_with(|| v.clone()), v, "a fresh instance answers the same");
    }
    let (_, s) = call("GET", &format!("{}/status", server.base), None, None);
    assert_eq!(s["engine"]["recycled"], 2, "five calls, two instances worn out after two each: {s}");
    assert_eq!(s["engine"]["discarded"], 0, "{s}");
}

/// Grouping (CPU work without the engine) runs within the same admission as engine calls.
#[test]
fn grouping_is_admitted_like_engine_calls() {
    let data = temp_dir("group-queue");
    let server = start(&data, &["Storage:Scenario=Memory", "Engine:MaxQueue=1"]);
    let (status, v) = server.call("POST", "/detect", image(photo("obama.jpg")));
    assert_eq!(status, 200, "{v}");
    let a = v[0]["faceId"].as_str().unwrap().to_owned();
    let (_, v) = server.call("POST", "/detect", image(photo("biden.jpg")));
    let b = v[0]["faceId"].as_str().unwrap().to_owned();
    // 1000 faceIds (the two faces, repeated): seconds of work for one call.
    let ids: Vec<&str> = (0..1000).map(|i| if i % 2 == 0 { a.as_str() } else { b.as_str() }).collect();
    let body = serde_json::to_vec(&json!({ "faceIds": ids })).unwrap();
    let answers = at_once(&server, 4, "/group", "application/json", &body);
    assert!(answers.iter().any(|a| a.status == 200), "{answers:?}");
    assert!(
        answers.iter().any(|a| a.status == 429 && code(&a.json()) == "RateLimitExceeded"),
        "four at once, a queue of one"
    );
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 429));
}

/// A caller without a key cannot hold the server with idle sockets: past Server:MaxConnections
/// a new connection is not served, and a client that does not finish its headers within
/// Server:HeaderTimeoutSeconds is disconnected, which frees its place.
#[test]
fn idle_connections_are_capped_and_cut_at_the_header_deadline() {
    use std::io::Write;
    use std::net::TcpStream;

    let data = temp_dir("connections");
    let server = start(&data, &["Storage:Scenario=Memory", "Server:MaxConnections=2", "Server:HeaderTimeoutSeconds=2"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    // Two slow clients take both places: each sends half a request line and stops.
    let slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // A third connection is accepted by the kernel but not served while they hold their places:
    // its answer comes only after the server has cut both of them off at the header deadline.
    let started = Instant::now();
    let mut third = TcpStream::connect(&address).unwrap();
    third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = Vec::new();
    third.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // By then a slow client had been disconnected (closed, not merely waiting) to free the place
    // the third took; both are cut off, and neither was answered.
    let mut closed_before = 0;
    for mut s in slow {
        s.set_nonblocking(true).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let _ = s.read_to_end(&mut rest);
            }
            _ => closed_before += 1, // closed (or reset) already
        }
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "an unfinished request was answered: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert!(closed_before >= 1, "the third connection was served while both slow ones held their places");
    // Not before the slow clients' header deadline (2 s from when they were accepted).
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1200), "answered after {waited:?}");
    // Normal requests go on as before.
    assert_eq!(agent().get(format!("{}/", server.base)).call().unwrap().status(), 200);
}

/// /demo streams files from disk: a range of a large file comes back as 206 with just those
/// bytes, HEAD gives the length without a body, and hidden or climbing paths are refused.
#[test]
fn demo_files_are_streamed_with_ranges_and_hidden_paths_refused() {
    let data = temp_dir("demo-files");
    let demo = data.join("demo");
    std::fs::create_dir_all(demo.join("models")).unwrap();
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(demo.join("models/big.onnx"), &big).unwrap();
    std::fs::write(demo.join("index.html"), "<!doctype html><title>demo</title>").unwrap();
    std::fs::write(demo.join(".secret"), "no").unwrap();
    let server = start(&data, &["Storage:Scenario=Memory", &format!("Server:Demo={}", demo.display())]);
    let url = |p: &str| format!("{}/demo/{p}", server.base);

    let response = agent().get(url("models/big.onnx")).header("Range", "bytes=10000000-10000009").call().unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 10000000-10000009/20000000");
    let mut part = Vec::new();
    response.into_body().into_reader().read_to_end(&mut part).unwrap();
    assert_eq!(part, &big[10_000_000..10_000_010]);

    let head = agent().head(url("models/big.onnx")).call().unwrap();
    assert_eq!((head.status().as_u16(), head.headers()["content-length"].to_str().unwrap()), (200, "20000000"));
    let whole = agent().get(url("models/big.onnx")).call().unwrap();
    assert_eq!(whole.headers()["cache-control"], "no-cache");
    let mut all = Vec::new();
    whole.into_body().into_reader().read_to_end(&mut all).unwrap();
    assert!(all == big, "the whole file comes back unchanged");

    let page = agent().get(format!("{}/demo/", server.base)).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    for refused in [".secret", "models/../.secret", "..%2f..%2fetc%2fpasswd", "models/missing.onnx"] {
        assert_eq!(agent().get(url(refused)).call().unwrap().status(), 404, "{refused}");
    }
}

#[test]
fn a_detect_answer_says_where_its_time_went() {
    let data = temp_dir("timing");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let response = respond("POST", &server.url("/detect"), Some(KEY), image(photo("obama.jpg")));
    assert_eq!(response.status(), 200);
    let lines: Vec<&str> =
        response.headers().get_all("server-timing").iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>();
    let stages = face_host::api::timing::parse(lines.iter().copied());
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["image", "queue", "decode", "detector-input", "detector", "crops", "recognizer", "sandbox", "faceid"] {
        assert!(names.contains(&want), "{want} missing from {lines:?}");
    }
    for want in ["json", "body", "usage", "total"] {
        assert!(names.contains(&want), "{want} missing from {lines:?}");
    }
    let total = stages.iter().find(|(n, _)| n == "total").unwrap().1;
    let parts: f64 = stages.iter().filter(|(n, _)| n != "total").map(|(_, ms)| ms).sum();
    assert!(stages.iter().all(|(_, ms)| *ms >= 0.0) && parts <= total + 0.1, "{lines:?}");
    assert!(stages.iter().find(|(n, _)| n == "detector").unwrap().1 > 0.0, "{lines:?}");
    // Errors carry none: only answers whose work was timed do.
    let (status, _) = server.call("POST", "/detect", image(vec![1; 10]));
    assert_eq!(status, 400);
    let listed = respond("GET", &server.url("/persongroups"), Some(KEY), None);
    assert!(listed.headers().get("server-timing").is_none());
}

/// A request refused before its body is read (a wrong key) still receives its answer: the body
/// is read and dropped first, so the client writing it gets the 401, not a connection reset.
#[test]
fn a_refused_upload_receives_its_answer_not_a_reset() {
    use std::io::{Read, Write};
    let data = temp_dir("refused-upload");
    let server = start(&data, &["Storage:Scenario=Memory"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    // 5 MB: more than the sockets' buffers hold, so the server must read it for the write to end.
    let body: Vec<u8> = photo("obama.jpg").into_iter().cycle().take(5_000_000).collect();
    for _ in 0..3 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST /face/v1.0/detect HTTP/1.1\r\nHost: {address}\r\nOcp-Apim-Subscription-Key: wrong\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).expect("the whole body sent, not a reset");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("the answer, not a reset");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    }
}
