//! The Face v1.0 REST API: routes, shared state, the subscription-key check and request logs.

pub mod collections;
pub mod demo;
pub mod error;
pub mod face;
pub mod input;
pub mod openapi;
pub mod snapshots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::billing::{ApiStatus, Billing};
use crate::engine::EnginePool;
use crate::faces::{FaceIds, Index};
use crate::fetch::Fetcher;
use crate::metrics::{Gauges, Metrics};
use crate::store::{Kind, Store, StoreError};
use error::{ApiError, ApiResult};

/// Everything a request may use.
#[derive(Debug)]
pub struct AppState {
    pub engine: EnginePool,
    pub store: Arc<dyn Store>,
    pub face_ids: FaceIds,
    /// Collections training now; `true` when another round was asked for meanwhile.
    pub training: Mutex<HashMap<(Kind, String), bool>>,
    /// Trained indexes, loaded from the store on first use.
    pub indexes: Mutex<HashMap<(Kind, String), Arc<Index>>>,
    pub fetcher: Fetcher,
    /// The key requests must carry in `Ocp-Apim-Subscription-Key`; `None` turns the check off.
    pub api_key: Option<String>,
    pub billing: Arc<Billing>,
    /// Requests allowed to hold a buffered body at once (`Server:MaxUploads`).
    pub uploads: tokio::sync::Semaphore,
    pub metrics: Metrics,
    /// Requests holding or waiting for an engine instance, and the most allowed before 429.
    pub engine_queue: AtomicUsize,
    pub max_engine_queue: usize,
    /// The in-browser demo's folder (web/dist), if built.
    pub demo: Option<std::path::PathBuf>,
    /// Swagger UI's files (npm swagger-ui-dist), if installed.
    pub swagger_ui: Option<std::path::PathBuf>,
    pub started: Instant,
}

pub type Shared = Arc<AppState>;

/// A place in the engine queue, given back on drop.
#[derive(Debug)]
pub struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    /// A place in the engine queue, or 429 RateLimitExceeded when `max_engine_queue` requests
    /// already hold or wait for an engine instance.
    pub fn admit(&self) -> ApiResult<QueueSlot<'_>> {
        let before = self.engine_queue.fetch_add(1, Ordering::SeqCst);
        let slot = QueueSlot(&self.engine_queue);
        if before >= self.max_engine_queue {
            drop(slot);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                format!(
                    "Rate limit is exceeded: {before} images are already waiting for the face engine. Try again in 1 second."
                ),
            );
            e.retry_after = Some(1);
            return Err(e);
        }
        Ok(slot)
    }

    /// Runs a store call off the async runtime.
    pub async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Internal(format!("the database task failed: {e}")))?
    }
}

/// The whole HTTP service: the Face API under `/face/v1.0`, and the container's own endpoints.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/detect", post(face::detect))
        .route("/verify", post(face::verify))
        .route("/identify", post(face::identify))
        .route("/findsimilars", post(face::find_similar))
        .route("/group", post(face::group))
        .route("/snapshots", post(snapshots::take).get(snapshots::list))
        .route("/snapshots/{sid}", get(snapshots::get).patch(snapshots::update).delete(snapshots::delete))
        .route("/snapshots/{sid}/apply", post(snapshots::apply))
        .route("/operations/{oid}", get(snapshots::operation))
        .route("/{kinds}", get(collections::list))
        .route(
            "/{kinds}/{cid}",
            get(collections::get).put(collections::create).patch(collections::update).delete(collections::delete),
        )
        .route("/{kinds}/{cid}/train", post(collections::train))
        .route("/{kinds}/{cid}/training", get(collections::training))
        .route("/{kinds}/{cid}/persons", post(collections::create_person).get(collections::list_persons))
        .route(
            "/{kinds}/{cid}/persons/{pid}",
            get(collections::get_person).patch(collections::update_person).delete(collections::delete_person),
        )
        .route("/{kinds}/{cid}/persons/{pid}/persistedfaces", post(collections::add_person_face))
        .route(
            "/{kinds}/{cid}/persons/{pid}/persistedfaces/{fid}",
            get(collections::get_person_face)
                .patch(collections::update_person_face)
                .delete(collections::delete_person_face),
        )
        .route("/{kinds}/{cid}/persistedfaces", post(collections::add_list_face).get(collections::list_list_faces))
        .route(
            "/{kinds}/{cid}/persistedfaces/{fid}",
            get(collections::get_list_face).patch(collections::update_list_face).delete(collections::delete_list_face),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), input::buffer_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), bill))
        .layer(axum::middleware::from_fn_with_state(state.clone(), check_key));

    Router::new()
        .nest("/face/v1.0", api)
        .route("/", get(home))
        .route("/status", get(status))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/swagger", get(openapi::swagger_ui))
        .route("/swagger/v1/swagger.json", get(openapi::document))
        .route("/swagger/ui/{file}", get(openapi::swagger_asset))
        .route("/demo", get(demo::redirect))
        .route("/demo/", get(demo::index))
        .route("/demo/{*path}", get(demo::file))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), log_request))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Resource not found: no Face API operation has this route; see /swagger for the list.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "This route does not take this HTTP method; see /swagger for the operations.",
    )
}

/// The subscription-key check (decision 7): constant-time comparison with the configured key.
async fn check_key(State(state): State<Shared>, headers: HeaderMap, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.api_key {
        let given = headers.get("ocp-apim-subscription-key").map(|v| v.as_bytes()).unwrap_or_default();
        if !constant_time_eq(given, expected.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        diff |= (a.get(i).copied().unwrap_or(0) ^ y) as usize;
    }
    diff == 0
}

/// Billing (decision 6): billable queries are refused once the meter has been unreachable past
/// the grace period; every successful operation is journalled before its response is sent.
async fn bill(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Err(refusal) = state.billing.admits() {
        let (status, code) = match refusal.status {
            ApiStatus::Invalid => (StatusCode::UNAUTHORIZED, "401"),
            ApiStatus::OutOfQuota => (StatusCode::FORBIDDEN, "QuotaExceeded"),
            ApiStatus::BillingEndpointBusy => (StatusCode::SERVICE_UNAVAILABLE, "BillingEndpointBusy"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "BillingEndpointUnreachable"),
        };
        let mut e = ApiError::new(status, code, refusal.message);
        e.retry_after = Some(refusal.retry_after);
        return e.into_response();
    }
    let operation = format!("{} {}", request.method(), crate::metrics::route_label(request.uri().path()));
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let billing = state.billing.clone();
    match tokio::task::spawn_blocking(move || billing.record(&operation)).await {
        Ok(Ok(())) => response,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "usage journal write failed");
            ApiError::internal(format!("The usage of this request could not be recorded ({e}); try again."))
                .into_response()
        }
        Err(e) => ApiError::internal(format!("The usage of this request could not be recorded ({e}); try again."))
            .into_response(),
    }
}

/// One structured log line and one metrics observation per request.
async fn log_request(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = start.elapsed().as_secs_f64();
    state.metrics.observe(method.as_str(), &path, status, seconds);
    let ms = seconds * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, "request failed");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    response
}

async fn home(State(state): State<Shared>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Face API v1.0</title></head>\
         <body><h1>Face API v1.0, self-hosted</h1><p>face-server {} &middot; up {} s</p>\
         <ul><li><a href=\"/status\">/status</a></li><li><a href=\"/ready\">/ready</a></li>\
         <li><a href=\"/swagger\">/swagger</a> (the API)</li>\
         <li><a href=\"/demo/\">/demo</a> (the engine in your browser)</li></ul></body></html>",
        env!("CARGO_PKG_VERSION"),
        state.started.elapsed().as_secs()
    ))
}

/// `apiStatus` from the Billing endpoint, asked now; 200 when Valid, 503 with Retry-After otherwise.
async fn status(State(state): State<Shared>) -> Response {
    let (api_status, message) = state.billing.status_now().await;
    let pool = state.engine.stats();
    let code = if api_status == ApiStatus::Valid { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (
        code,
        axum::Json(json!({
            "service": "face-server",
            "version": env!("CARGO_PKG_VERSION"),
            "apiStatus": api_status,
            "apiStatusMessage": message,
            "usageBacklog": state.billing.backlog(),
            "engine": {
                "poolSize": pool.size,
                "idle": pool.idle,
                "discarded": pool.discarded,
                "backend": pool.backend.name(),
                "guest": pool.guest_source.name(),
            },
            "faceIds": state.face_ids.len(),
        })),
    )
        .into_response();
    if code != StatusCode::OK {
        response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("30"));
    }
    response
}

/// GET /metrics: Prometheus text.
async fn metrics(State(state): State<Shared>) -> Response {
    let pool = state.engine.stats();
    let billing = state.billing.clone();
    let backlog = tokio::task::spawn_blocking(move || billing.backlog()).await.unwrap_or(0);
    let text = state.metrics.render(Gauges {
        pool_size: pool.size,
        pool_busy: pool.size.saturating_sub(pool.idle),
        pool_discarded: pool.discarded,
        engine_queue: state.engine_queue.load(Ordering::Relaxed),
        usage_backlog: backlog,
        face_ids: state.face_ids.len(),
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Ready when the engine pool has its instances and the store answers.
async fn ready(State(state): State<Shared>) -> Response {
    let store_ok = state.db(|s| s.collection(Kind::PersonGroup, "-")).await.is_ok();
    let pool = state.engine.stats();
    if store_ok && pool.size > 0 {
        (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-11-24T21:03:08.123Z` from milliseconds since the epoch.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A 200 with an empty body, as Azure answers creates, updates and deletes.
pub fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

/// A JSON 200.
pub fn ok_json(value: serde_json::Value) -> ApiResult<Response> {
    Ok(axum::Json(value).into_response())
}

/// Reads the whole body of an operation that takes none, ignoring it.
pub async fn drain(body: Body) {
    let _ = axum::body::to_bytes(body, 64 * 1024).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_795_547_988_123), "2026-11-24T19:19:48.123Z");
    }

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
