//! Every one of the 69 Face v1.0 operations in process: the real router (`api::router`) over
//! the state `server::open` builds (the real guest and models, an in-memory store), called with
//! `oneshot`, no socket. Each operation is called for its success and for its main errors, and a
//! last check finds any operation of the table that was not: an operation added to the table
//! without a test here fails it. The operations on groups, lists, persons, faces and snapshots
//! run a second time over `server::open_with` and the deterministic test engine
//! (`engine::testing`): no guest, no models.
//!
//! Image URLs are served by a small HTTP server of this test on loopback
//! (`Security:AllowPrivateUrls=true`).

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use common::{cache, guest_wasm, photo, repo, temp_dir};
use face_host::api::routes::{OPERATIONS, Operation};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "in-process-key";
/// A UUID no stored thing has.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// `got` is `want`, fields in the same order (the service's order is part of its answers).
fn same(got: &Value, want: Value) {
    assert_eq!(got.to_string(), want.to_string());
}

/// A request body.
enum In {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

/// What an operation answered.
struct Out {
    status: u16,
    json: Value,
    location: Option<String>,
}

struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// For each operationId: how many calls it answered with success, and with a 4xx.
    seen: Mutex<BTreeMap<&'static str, (u32, u32)>>,
    /// The loopback server's base URL for test photos.
    photos: String,
    /// A photo whose face the engine finds to be the person of obama.jpg (the group's first
    /// face), and one whose face is the most like obama.jpg's among obama2.jpg's and biden.jpg's.
    probe: &'static str,
    similar: &'static str,
}

/// Serves the test photos over HTTP/1.0 on a loopback port, one connection at a time.
fn photo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_owned();
            let name = line.split(' ').nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
            let found = std::fs::read(cache().join("testdata").join(&name)).ok().filter(|_| !name.contains(".."));
            let answer = match found {
                Some(bytes) => {
                    let mut a = format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        bytes.len()
                    )
                    .into_bytes();
                    a.extend(bytes);
                    a
                }
                None => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&answer);
        }
    });
    base
}

impl App {
    /// Over the real engine: the guest and the models (`test_engine` false), or the test engine.
    fn new(name: &str, test_engine: bool) -> App {
        let data = temp_dir(name);
        let mut settings = vec![
            "Eula=accept".to_owned(),
            // Nothing listens there: billing stays within its grace for the whole test.
            "Billing=http://127.0.0.1:9/".to_owned(),
            format!("ApiKey={KEY}"),
            "Security:AllowPrivateUrls=true".to_owned(),
            "Storage:Scenario=Memory".to_owned(),
            format!("Storage:DataDirectory={}", data.display()),
        ];
        if !test_engine {
            settings.extend([
                format!("Engine:Guest={}", guest_wasm().display()),
                format!("Engine:Models={}", repo().join("models").display()),
                format!("Engine:Cache={}", cache().join("guest-cache").display()),
                "Engine:PoolSize=1".to_owned(),
            ]);
        }
        let settings = face_host::settings::Settings::parse(settings, std::iter::empty()).expect("settings");
        let config = face_host::server::ServerConfig::from_settings(&settings).expect("configuration");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = if test_engine {
            let engine = Arc::new(face_host::engine::testing::TestEngine);
            runtime.block_on(face_host::server::open_with(&config, Some(engine)))
        } else {
            runtime.block_on(face_host::server::open(&config))
        };
        let state = state.expect("the server state");
        // The test engine's faces are alike only for the same photo.
        let (probe, similar) = if test_engine { ("obama.jpg", "obama.jpg") } else { ("obama3.jpg", "obama2.jpg") };
        App {
            runtime,
            router: face_host::api::router(state),
            seen: Mutex::default(),
            photos: photo_server(),
            probe,
            similar,
        }
    }

    /// The operations of the table (those `which` keeps) without a success and an error here.
    fn missing(&self, which: impl Fn(&Operation) -> bool) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        OPERATIONS
            .iter()
            .filter(|op| which(op))
            .filter_map(|op| {
                let (ok, failed) = seen.get(op.id).copied().unwrap_or_default();
                (ok == 0 || failed == 0).then(|| format!("{} (successes {ok}, errors {failed})", op.id))
            })
            .collect()
    }

    fn url(&self, name: &str) -> Value {
        json!({ "url": format!("{}/{name}", self.photos) })
    }

    /// Calls operation `id` at `path` (under /face/v1.0): the path must be one of the
    /// operation's own routes and the body its kind, so a test cannot count a call for the
    /// wrong operation.
    fn call(&self, id: &'static str, path: &str, body: In) -> Out {
        let op: &Operation = OPERATIONS.iter().find(|o| o.id == id).unwrap_or_else(|| panic!("no operation {id}"));
        let route = path.split('?').next().unwrap();
        let template: Vec<&str> = op.route().split('/').collect();
        let given: Vec<&str> = route.split('/').collect();
        assert!(
            template.len() == given.len() && template.iter().zip(&given).all(|(t, g)| t.starts_with('{') || t == g),
            "{path} is not a route of {id} ({})",
            op.route()
        );
        // The two verify operations share a route and a media type: their bodies tell them apart.
        if let (In::Json(v), "Face_VerifyFaceToFace" | "Face_VerifyFaceToPerson") = (&body, id) {
            let face_to_face = v.get("faceId1").is_some();
            assert_eq!(face_to_face, id == "Face_VerifyFaceToFace", "{id} with the other verify's body: {v}");
        }
        match (&body, op.image()) {
            (In::Bytes(_), Some("stream")) | (In::Json(_), Some("url")) | (_, None) => {}
            _ => panic!("{id} takes a {} body", op.image().unwrap_or_default()),
        }
        let mut request = Request::builder()
            .method(op.method)
            .uri(format!("http://localhost/face/v1.0{path}"))
            .header("Ocp-Apim-Subscription-Key", KEY);
        let body = match body {
            In::None => Body::empty(),
            In::Json(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            In::Bytes(b) => {
                request = request.header(header::CONTENT_TYPE, "application/octet-stream");
                Body::from(b)
            }
        };
        let request = request.body(body).unwrap();
        let response = self.runtime.block_on(self.router.clone().oneshot(request)).expect("the router answers");
        let status = response.status().as_u16();
        let location = response.headers().get("operation-location").map(|v| v.to_str().unwrap().to_owned());
        let bytes = self.runtime.block_on(axum::body::to_bytes(response.into_body(), 64 << 20)).unwrap();
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON answer") };
        assert!(status < 500, "{id} {path}: {status} {json}");
        let mut seen = self.seen.lock().unwrap();
        let counts = seen.entry(id).or_default();
        if status < 300 {
            assert_eq!(status, op.status, "{id} {path}: {json}");
            counts.0 += 1;
        } else {
            let code = json["error"]["code"].as_str().unwrap_or_default();
            assert!(!code.is_empty() && json["error"]["message"].is_string(), "{id} {path}: {status} {json}");
            counts.1 += 1;
        }
        Out { status, json, location }
    }

    /// A call expected to succeed; its JSON.
    fn ok(&self, id: &'static str, path: &str, body: In) -> Value {
        let out = self.call(id, path, body);
        assert!(out.status < 300, "{id} {path}: {} {}", out.status, out.json);
        out.json
    }

    /// A call expected to fail with `status` and `code`.
    fn fails(&self, id: &'static str, path: &str, body: In, status: u16, code: &str) {
        let out = self.call(id, path, body);
        assert_eq!(
            (out.status, out.json["error"]["code"].as_str().unwrap_or_default()),
            (status, code),
            "{id} {path}: {}",
            out.json
        );
    }

    /// Waits for `path`'s training (or a snapshot operation) to reach a final status.
    fn wait(&self, id: &'static str, path: &str, until: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.ok(id, path, In::None);
            if status["status"] == until || status["status"] == "failed" {
                assert_eq!(status["status"], until, "{path}: {status}");
                return status;
            }
            assert!(Instant::now() < deadline, "{path} still {status} after 2 minutes");
            self.runtime.block_on(tokio::time::sleep(Duration::from_millis(20)));
        }
    }

    fn face_id(&self, photo_name: &str) -> String {
        let faces = self.ok("Face_DetectWithStream", "/detect", In::Bytes(photo(photo_name)));
        faces[0]["faceId"].as_str().unwrap().to_owned()
    }
}

#[test]
fn every_operation_answers_its_success_and_its_main_errors_in_process() {
    let app = App::new("operations", false);
    detect_and_face_operations(&app);
    resources(&app);
    let missing = app.missing(|_| true);
    assert!(missing.is_empty(), "operations without a success and an error here: {missing:#?}");
}

/// The operations on groups, lists, persons, faces and snapshots need no real engine: over the
/// test engine, they are the same calls with the same answers.
#[test]
fn the_resources_operations_run_on_the_test_engine_without_guest_or_models() {
    let app = App::new("resources", true);
    resources(&app);
    let missing = app.missing(|op| !op.id.starts_with("Face_"));
    assert!(missing.is_empty(), "resource operations without a success and an error here: {missing:#?}");
}

fn resources(app: &App) {
    for (kind, id_key) in [("persongroups", "personGroupId"), ("largepersongroups", "largePersonGroupId")] {
        groups(app, kind, id_key);
    }
    for (kind, id_key) in [("facelists", "faceListId"), ("largefacelists", "largeFaceListId")] {
        lists(app, kind, id_key);
    }
    snapshots(app);
}

fn detect_and_face_operations(app: &App) {
    let faces = app.ok(
        "Face_DetectWithStream",
        "/detect?returnFaceLandmarks=true&returnFaceAttributes=age,glasses&returnRecognitionModel=true",
        In::Bytes(photo("obama.jpg")),
    );
    assert_eq!(faces.as_array().unwrap().len(), 1, "{faces}");
    let face = &faces[0];
    assert_eq!(face["faceLandmarks"].as_object().unwrap().len(), 27);
    let attributes: Vec<&String> = face["faceAttributes"].as_object().unwrap().keys().collect();
    assert_eq!(attributes, ["age", "glasses"], "the groups asked for, in the service's order");
    assert_eq!(face["recognitionModel"], "recognition_01");
    app.fails("Face_DetectWithStream", "/detect", In::Bytes(vec![7; 4096]), 400, "InvalidImage");
    app.fails("Face_DetectWithStream", "/detect", In::Bytes(vec![7; 100]), 400, "InvalidImageSize");
    app.fails(
        "Face_DetectWithStream",
        "/detect?returnFaceAttributes=wings",
        In::Bytes(photo("obama.jpg")),
        400,
        "BadArgument",
    );
    app.fails(
        "Face_DetectWithStream",
        "/detect?detectionModel=detection_09",
        In::Bytes(photo("obama.jpg")),
        400,
        "BadArgument",
    );
    // Model names of later API versions are refused with the names this service has (README).
    for (query, names) in [
        ("detectionModel=detection_03", "detection_01 or detection_02"),
        ("recognitionModel=recognition_04", "recognition_01, recognition_02 or recognition_03"),
    ] {
        let refused = app.call("Face_DetectWithStream", &format!("/detect?{query}"), In::Bytes(photo("obama.jpg")));
        assert_eq!((refused.status, refused.json["error"]["code"].as_str()), (400, Some("BadArgument")), "{query}");
        let message = refused.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }

    let by_url = app.ok("Face_DetectWithUrl", "/detect?returnFaceId=false", In::Json(app.url("obama.jpg")));
    assert_eq!(by_url[0]["faceRectangle"], face["faceRectangle"], "the same photo by URL");
    assert!(by_url[0].get("faceId").is_none(), "returnFaceId=false: {by_url}");
    app.fails("Face_DetectWithUrl", "/detect", In::Json(json!({})), 400, "BadArgument");
    app.fails("Face_DetectWithUrl", "/detect", In::Json(app.url("missing.jpg")), 400, "InvalidURL");

    let (obama, obama2, biden) = (app.face_id("obama.jpg"), app.face_id("obama2.jpg"), app.face_id("biden.jpg"));
    let same = app.ok("Face_VerifyFaceToFace", "/verify", In::Json(json!({ "faceId1": obama, "faceId2": obama2 })));
    assert_eq!(same["isIdentical"], true, "{same}");
    let other = app.ok("Face_VerifyFaceToFace", "/verify", In::Json(json!({ "faceId1": obama, "faceId2": biden })));
    assert_eq!(other["isIdentical"], false, "{other}");
    app.fails(
        "Face_VerifyFaceToFace",
        "/verify",
        In::Json(json!({ "faceId1": obama, "faceId2": UNKNOWN })),
        404,
        "FaceNotFound",
    );
    let neither = app.call("Face_VerifyFaceToFace", "/verify", In::Json(json!({ "faceId1": obama })));
    assert_eq!(
        (neither.status, neither.json["error"]["code"].as_str()),
        (400, Some("BadArgument")),
        "{}",
        neither.json
    );
    assert_eq!(
        neither.json["error"]["message"],
        "Request body is invalid: give faceId1 and faceId2, or faceId, personId and personGroupId (or \
         largePersonGroupId).",
        "a body that is neither verify's says what each needs"
    );

    let similar = app.ok(
        "Face_FindSimilar",
        "/findsimilars",
        In::Json(json!({ "faceId": obama, "faceIds": [obama2, biden], "mode": "matchFace" })),
    );
    assert_eq!(similar[0]["faceId"], obama2.as_str(), "{similar}");
    app.fails("Face_FindSimilar", "/findsimilars", In::Json(json!({ "faceId": obama })), 400, "BadArgument");
    app.fails(
        "Face_FindSimilar",
        "/findsimilars",
        In::Json(json!({ "faceId": obama, "faceListId": "none" })),
        400,
        "FaceListNotFound",
    );

    let grouped = app.ok("Face_Group", "/group", In::Json(json!({ "faceIds": [obama, obama2, biden] })));
    let mut pair: Vec<&str> = grouped["groups"][0].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    pair.sort_unstable();
    let mut obamas = [obama.as_str(), obama2.as_str()];
    obamas.sort_unstable();
    assert_eq!(pair, obamas, "the two photos of one man, largest group first: {grouped}");
    assert_eq!(grouped["messyGroup"], json!([biden]), "{grouped}");
    app.fails("Face_Group", "/group", In::Json(json!({ "faceIds": [obama] })), 400, "BadArgument");
    app.fails("Face_Group", "/group", In::Json(json!({ "faceIds": [obama, UNKNOWN] })), 400, "FaceNotFound");
}

/// A PersonGroup or LargePersonGroup: the group, its persons and their faces, training,
/// identify and verify against a person.
fn groups(app: &App, kind: &str, id_key: &str) {
    let op = |verb: &str| -> &'static str {
        let prefix = if kind == "persongroups" { "PersonGroup" } else { "LargePersonGroup" };
        let id = match verb.strip_prefix("Person_") {
            Some(person_verb) => format!("{prefix}Person_{person_verb}"),
            None => format!("{prefix}_{verb}"),
        };
        OPERATIONS.iter().find(|o| o.id == id).unwrap_or_else(|| panic!("no operation {id}")).id
    };
    let g = format!("/{kind}/friends");
    app.ok(
        op("Create"),
        &g,
        In::Json(json!({ "name": "Friends", "userData": "u", "recognitionModel": "recognition_03" })),
    );
    app.fails(
        op("Create"),
        &g,
        In::Json(json!({ "name": "again" })),
        409,
        &format!("{}Exists", op("Create").split('_').next().unwrap()),
    );
    app.fails(op("Create"), &format!("/{kind}/Not-Lower"), In::Json(json!({ "name": "x" })), 400, "BadArgument");
    app.fails(
        op("Create"),
        &format!("/{kind}/later"),
        In::Json(json!({ "name": "x", "recognitionModel": "recognition_04" })),
        400,
        "BadArgument",
    );
    let group = app.ok(op("Get"), &format!("{g}?returnRecognitionModel=true"), In::None);
    same(
        &group,
        json!({ id_key: "friends", "name": "Friends", "userData": "u", "recognitionModel": "recognition_03" }),
    );
    let not_found = format!("{}NotFound", op("Create").split('_').next().unwrap());
    app.fails(op("Get"), &format!("/{kind}/nobody"), In::None, 404, &not_found);
    app.ok(op("Update"), &g, In::Json(json!({ "name": "Best friends" })));
    app.fails(op("Update"), &g, In::Json(json!({})), 400, "BadArgument");
    app.fails(op("Update"), &format!("/{kind}/nobody"), In::Json(json!({ "name": "n" })), 404, &not_found);
    let listed = app.ok(op("List"), &format!("/{kind}?top=1"), In::None);
    same(&listed, json!([{ id_key: "friends", "name": "Best friends", "userData": "u" }]));
    app.fails(op("List"), &format!("/{kind}?top=0"), In::None, 400, "BadArgument");

    let person = app.ok(op("Person_Create"), &format!("{g}/persons"), In::Json(json!({ "name": "Obama" })));
    let pid = person["personId"].as_str().unwrap().to_owned();
    assert_eq!(person.as_object().unwrap().len(), 1, "create answers the id alone: {person}");
    app.fails(
        op("Person_Create"),
        &format!("{g}/persons"),
        In::Json(json!({ "userData": "no name" })),
        400,
        "BadArgument",
    );
    let p = format!("{g}/persons/{pid}");
    let faces = format!("{p}/persistedfaces");
    let added =
        app.ok(op("Person_AddFaceFromStream"), &format!("{faces}?userData=first"), In::Bytes(photo("obama.jpg")));
    let fid = added["persistedFaceId"].as_str().unwrap().to_owned();
    app.fails(
        op("Person_AddFaceFromStream"),
        &format!("{g}/persons/{UNKNOWN}/persistedfaces"),
        In::Bytes(photo("obama.jpg")),
        404,
        "PersonNotFound",
    );
    app.fails(
        op("Person_AddFaceFromStream"),
        &format!("{faces}?targetFace=1,2,3"),
        In::Bytes(photo("obama.jpg")),
        400,
        "BadArgument",
    );
    app.ok(op("Person_AddFaceFromUrl"), &faces, In::Json(app.url("obama2.jpg")));
    app.fails(op("Person_AddFaceFromUrl"), &faces, In::Json(json!({ "url": "not a url" })), 400, "InvalidURL");
    let face = app.ok(op("Person_GetFace"), &format!("{faces}/{fid}"), In::None);
    same(&face, json!({ "persistedFaceId": fid, "userData": "first" }));
    app.fails(op("Person_GetFace"), &format!("{faces}/{UNKNOWN}"), In::None, 404, "PersistedFaceNotFound");
    app.ok(op("Person_UpdateFace"), &format!("{faces}/{fid}"), In::Json(json!({ "userData": "changed" })));
    let face = app.ok(op("Person_GetFace"), &format!("{faces}/{fid}"), In::None);
    same(&face, json!({ "persistedFaceId": fid, "userData": "changed" }));
    app.fails(
        op("Person_UpdateFace"),
        &format!("{faces}/{UNKNOWN}"),
        In::Json(json!({ "userData": "x" })),
        404,
        "PersistedFaceNotFound",
    );
    let got = app.ok(op("Person_Get"), &p, In::None);
    assert_eq!(got["persistedFaceIds"].as_array().unwrap().len(), 2, "{got}");
    assert_eq!(got["name"], "Obama");
    app.fails(op("Person_Get"), &format!("{g}/persons/{UNKNOWN}"), In::None, 404, "PersonNotFound");
    app.fails(op("Person_Get"), &format!("{g}/persons/not-a-uuid"), In::None, 400, "BadArgument");
    app.ok(op("Person_Update"), &p, In::Json(json!({ "userData": "44th" })));
    app.fails(
        op("Person_Update"),
        &format!("{g}/persons/{UNKNOWN}"),
        In::Json(json!({ "name": "n" })),
        404,
        "PersonNotFound",
    );
    let persons = app.ok(op("Person_List"), &format!("{g}/persons"), In::None);
    assert_eq!(persons.as_array().unwrap().len(), 1);
    assert_eq!(persons[0]["userData"], "44th");
    app.fails(op("Person_List"), &format!("/{kind}/nobody/persons"), In::None, 404, &not_found);

    // Identify and verify need the group trained, with the group's recognition model.
    let probe = app.ok("Face_DetectWithStream", "/detect?recognitionModel=recognition_03", In::Bytes(photo(app.probe)));
    let probe = probe[0]["faceId"].as_str().unwrap().to_owned();
    let group_ref = json!({ id_key: "friends" });
    let mut identify = json!({ "faceIds": [probe] });
    identify.as_object_mut().unwrap().extend(group_ref.as_object().unwrap().clone());
    app.fails(
        "Face_Identify",
        "/identify",
        In::Json(identify.clone()),
        400,
        &format!("{}NotTrained", op("Create").split('_').next().unwrap()),
    );
    app.fails(
        op("GetTrainingStatus"),
        &format!("{g}/training"),
        In::None,
        404,
        &format!("{}NotTrained", op("Create").split('_').next().unwrap()),
    );
    app.ok(op("Train"), &format!("{g}/train"), In::None);
    app.fails(op("Train"), &format!("/{kind}/nobody/train"), In::None, 404, &not_found);
    app.wait(op("GetTrainingStatus"), &format!("{g}/training"), "succeeded");
    let found = app.ok("Face_Identify", "/identify", In::Json(identify));
    assert_eq!(found[0]["candidates"][0]["personId"], pid.as_str(), "{found}");
    app.fails(
        "Face_Identify",
        "/identify",
        In::Json(json!({ "faceIds": [probe] })),
        400,
        "PersonGroupIdAndLargePersonGroupIdBothNull",
    );
    let mut verify = json!({ "faceId": probe, "personId": pid });
    verify.as_object_mut().unwrap().extend(group_ref.as_object().unwrap().clone());
    let verified = app.ok("Face_VerifyFaceToPerson", "/verify", In::Json(verify));
    assert_eq!(verified["isIdentical"], true, "{verified}");
    let mut stranger = json!({ "faceId": probe, "personId": UNKNOWN });
    stranger.as_object_mut().unwrap().extend(group_ref.as_object().unwrap().clone());
    app.fails("Face_VerifyFaceToPerson", "/verify", In::Json(stranger), 400, "PersonNotFound");

    app.ok(op("Person_DeleteFace"), &format!("{faces}/{fid}"), In::None);
    app.fails(op("Person_DeleteFace"), &format!("{faces}/{fid}"), In::None, 404, "PersistedFaceNotFound");
    app.ok(op("Person_Delete"), &p, In::None);
    app.fails(op("Person_Delete"), &p, In::None, 404, "PersonNotFound");
    app.ok(op("Delete"), &g, In::None);
    app.fails(op("Delete"), &g, In::None, 404, &not_found);
}

/// A FaceList or LargeFaceList: the list and its faces, training (large lists) and find similar.
fn lists(app: &App, kind: &str, id_key: &str) {
    let prefix = if kind == "facelists" { "FaceList" } else { "LargeFaceList" };
    let op = |verb: &str| -> &'static str {
        let id = format!("{prefix}_{verb}");
        OPERATIONS.iter().find(|o| o.id == id).unwrap_or_else(|| panic!("no operation {id}")).id
    };
    let not_found = format!("{prefix}NotFound");
    let l = format!("/{kind}/faces");
    app.ok(op("Create"), &l, In::Json(json!({ "name": "Faces" })));
    app.fails(op("Create"), &l, In::Json(json!({ "name": "again" })), 409, &format!("{prefix}Exists"));
    app.fails(
        op("Create"),
        &format!("/{kind}/other"),
        In::Json(json!({ "name": "x", "recognitionModel": "recognition_09" })),
        400,
        "BadArgument",
    );
    let faces = format!("{l}/persistedfaces");
    let added = app.ok(op("AddFaceFromStream"), &format!("{faces}?userData=o"), In::Bytes(photo(app.similar)));
    let fid = added["persistedFaceId"].as_str().unwrap().to_owned();
    app.fails(
        op("AddFaceFromStream"),
        &format!("/{kind}/nobody/persistedfaces"),
        In::Bytes(photo("obama.jpg")),
        404,
        &not_found,
    );
    app.ok(op("AddFaceFromUrl"), &faces, In::Json(app.url("biden.jpg")));
    app.fails(op("AddFaceFromUrl"), &faces, In::Json(app.url("missing.jpg")), 400, "InvalidURL");
    app.ok(op("Update"), &l, In::Json(json!({ "userData": "two faces" })));
    app.fails(op("Update"), &format!("/{kind}/nobody"), In::Json(json!({ "name": "n" })), 404, &not_found);
    let got = app.ok(op("Get"), &l, In::None);
    assert_eq!(got[id_key], "faces");
    assert_eq!(got["userData"], "two faces");
    if kind == "facelists" {
        assert_eq!(got["persistedFaces"].as_array().unwrap().len(), 2, "a FaceList's get has its faces: {got}");
    }
    app.fails(op("Get"), &format!("/{kind}/nobody"), In::None, 404, &not_found);
    let listed = app.ok(op("List"), &format!("/{kind}?returnRecognitionModel=true"), In::None);
    assert_eq!(listed[0]["recognitionModel"], "recognition_01", "{listed}");
    app.fails(op("List"), &format!("/{kind}?returnRecognitionModel=maybe"), In::None, 400, "BadArgument");

    let query = app.face_id("obama.jpg");
    let mut similar = json!({ "faceId": query });
    similar[id_key] = json!("faces");
    if kind == "largefacelists" {
        let face = app.ok(op("GetFace"), &format!("{faces}/{fid}"), In::None);
        same(&face, json!({ "persistedFaceId": fid, "userData": "o" }));
        app.fails(op("GetFace"), &format!("{faces}/{UNKNOWN}"), In::None, 404, "PersistedFaceNotFound");
        app.ok(op("UpdateFace"), &format!("{faces}/{fid}"), In::Json(json!({ "userData": "p" })));
        same(
            &app.ok(op("GetFace"), &format!("{faces}/{fid}"), In::None),
            json!({ "persistedFaceId": fid, "userData": "p" }),
        );
        app.fails(op("UpdateFace"), &format!("{faces}/{UNKNOWN}"), In::Json(json!({})), 404, "PersistedFaceNotFound");
        let page = app.ok(op("ListFaces"), &format!("{faces}?top=1"), In::None);
        assert_eq!(page.as_array().unwrap().len(), 1);
        app.fails(op("ListFaces"), &format!("{faces}?top=1001"), In::None, 400, "BadArgument");
        app.fails("Face_FindSimilar", "/findsimilars", In::Json(similar.clone()), 400, "LargeFaceListNotTrained");
        app.fails(op("GetTrainingStatus"), &format!("{l}/training"), In::None, 404, "LargeFaceListNotTrained");
        app.ok(op("Train"), &format!("{l}/train"), In::None);
        app.fails(op("Train"), &format!("/{kind}/nobody/train"), In::None, 404, &not_found);
        app.wait(op("GetTrainingStatus"), &format!("{l}/training"), "succeeded");
    }
    let found = app.ok("Face_FindSimilar", "/findsimilars", In::Json(similar));
    assert_eq!(found[0]["persistedFaceId"], fid.as_str(), "{found}");

    app.ok(op("DeleteFace"), &format!("{faces}/{fid}"), In::None);
    app.fails(op("DeleteFace"), &format!("{faces}/{fid}"), In::None, 404, "PersistedFaceNotFound");
    app.ok(op("Delete"), &l, In::None);
    app.fails(op("Delete"), &l, In::None, 404, &not_found);
}

/// Snapshots: take, list, get, update, apply as a new group, the operations' status, delete.
fn snapshots(app: &App) {
    app.ok("PersonGroup_Create", "/persongroups/kept", In::Json(json!({ "name": "Kept" })));
    let scope = UNKNOWN.replace("0000-4000", "0000-4001");
    let take = json!({ "type": "PersonGroup", "objectId": "kept", "applyScope": [scope] });
    let taken = app.call("Snapshot_Take", "/snapshots", In::Json(take));
    assert_eq!(taken.status, 202);
    let operation = taken.location.expect("Operation-Location");
    let op_id = operation.rsplit('/').next().unwrap().to_owned();
    let done = app.wait("Snapshot_GetOperationStatus", &format!("/operations/{op_id}"), "succeeded");
    let snapshot = done["resourceLocation"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    app.fails("Snapshot_GetOperationStatus", &format!("/operations/{UNKNOWN}"), In::None, 404, "OperationNotFound");
    app.fails(
        "Snapshot_Take",
        "/snapshots",
        In::Json(json!({ "type": "Album", "objectId": "kept", "applyScope": [] })),
        400,
        "BadArgument",
    );
    app.fails(
        "Snapshot_Take",
        "/snapshots",
        In::Json(json!({ "type": "PersonGroup", "objectId": "gone", "applyScope": [scope] })),
        404,
        "PersonGroupNotFound",
    );

    let s = format!("/snapshots/{snapshot}");
    let got = app.ok("Snapshot_Get", &s, In::None);
    assert_eq!(
        (got["type"].as_str(), got["applyScope"][0].as_str()),
        (Some("PersonGroup"), Some(scope.as_str())),
        "{got}"
    );
    app.fails("Snapshot_Get", &format!("/snapshots/{UNKNOWN}"), In::None, 404, "SnapshotNotFound");
    let listed = app.ok("Snapshot_List", "/snapshots?type=PersonGroup", In::None);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    app.fails("Snapshot_List", "/snapshots?applyScope=not-a-uuid", In::None, 400, "BadArgument");
    app.ok("Snapshot_Update", &s, In::Json(json!({ "userData": "weekly" })));
    assert_eq!(app.ok("Snapshot_Get", &s, In::None)["userData"], "weekly");
    app.fails(
        "Snapshot_Update",
        &format!("/snapshots/{UNKNOWN}"),
        In::Json(json!({ "userData": "x" })),
        404,
        "SnapshotNotFound",
    );

    let applied = app.call("Snapshot_Apply", &format!("{s}/apply"), In::Json(json!({ "objectId": "restored" })));
    assert_eq!(applied.status, 202, "{}", applied.json);
    let op_id = applied.location.expect("Operation-Location").rsplit('/').next().unwrap().to_owned();
    app.wait("Snapshot_GetOperationStatus", &format!("/operations/{op_id}"), "succeeded");
    let restored = app.ok("PersonGroup_Get", "/persongroups/restored", In::None);
    assert_eq!(restored["name"], "Kept");
    app.fails("Snapshot_Apply", &format!("{s}/apply"), In::Json(json!({})), 400, "BadArgument");

    app.ok("Snapshot_Delete", &s, In::None);
    app.fails("Snapshot_Delete", &s, In::None, 404, "SnapshotNotFound");
}
