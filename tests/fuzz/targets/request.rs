//! The request parsers, driven through the real router in process: the route's ids, the query,
//! the headers and JSON or image bodies of every Face API operation, against a real engine pool
//! and an in-memory store. No input may get a 500, and every refusal is a Face API error.
//!
//! An input is `METHOD /path?query`, a newline, the Content-Type (empty for none), a newline,
//! and the body; `cargo xtask fuzz` writes one seed per operation in that form.

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let var =
            |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `cargo xtask fuzz`"));
        let settings = face_host::settings::Settings::parse(
            [
                "Eula=accept".to_owned(),
                // Nothing listens there: billing stays within its grace for the whole run.
                "Billing=http://127.0.0.1:9/".to_owned(),
                "ApiKey=fuzz".to_owned(),
                "Security:RequireKey=false".to_owned(),
                "Security:UrlTimeoutSeconds=1".to_owned(),
                "Storage:Scenario=Memory".to_owned(),
                format!("Storage:DataDirectory={}", var("FACE_FUZZ_DATA")),
                format!("Engine:Guest={}", var("FACE_FUZZ_GUEST")),
                format!("Engine:Models={}", var("FACE_FUZZ_MODELS")),
                "Engine:PoolSize=1".to_owned(),
            ],
            std::iter::empty(),
        )
        .expect("settings");
        let config = face_host::server::ServerConfig::from_settings(&settings).expect("configuration");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let state = runtime.block_on(face_host::server::open(&config)).expect("the server state");
        App { runtime, router: face_host::api::router(state) }
    })
}

/// The request an input describes, when it is one HTTP can carry.
fn request(data: &[u8]) -> Option<Request<Body>> {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let line = std::str::from_utf8(parts.next()?).ok()?;
    let content_type = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let (method, target) = line.split_once(' ')?;
    let mut builder = Request::builder().method(method).uri(format!("http://localhost{target}"));
    if !content_type.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(Body::from(body)).ok()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(request) = request(data) else { return };
    let app = app();
    let response = app.runtime.block_on(app.router.clone().oneshot(request)).expect("the router answers");
    let status = response.status();
    let body =
        app.runtime.block_on(axum::body::to_bytes(response.into_body(), 64 << 20)).expect("the answer's body reads");
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", String::from_utf8_lossy(&body));
    if !status.is_success() && !body.is_empty() {
        let error: serde_json::Value = serde_json::from_slice(&body).expect("an error answer is JSON");
        let code = error["error"]["code"].as_str();
        assert!(code.is_some_and(|c| !c.is_empty()), "an error without a code: {error}");
    }
});
