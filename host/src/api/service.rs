//! The container's own endpoints: `/` (home), `/status` (billing and engine), `/ready`, `/metrics`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::state::Shared;
use crate::billing::ApiStatus;
use crate::metrics::Gauges;
use crate::store::Kind;

pub async fn home(State(state): State<Shared>) -> Html<String> {
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
pub async fn status(State(state): State<Shared>) -> Response {
    let (api_status, message) = state.billing.status_now().await;
    let pool = state.engine.stats();
    let billing = state.billing.clone();
    let backlog = tokio::task::spawn_blocking(move || billing.backlog()).await.unwrap_or(0);
    let code = if api_status == ApiStatus::Valid { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (
        code,
        axum::Json(json!({
            "service": "face-server",
            "version": env!("CARGO_PKG_VERSION"),
            "apiStatus": api_status,
            "apiStatusMessage": message,
            "usageBacklog": backlog,
            "engine": {
                "poolSize": pool.size,
                "idle": pool.idle,
                "discarded": pool.discarded,
                "recycled": pool.recycled,
                "backend": pool.backend.name(),
                "guest": pool.guest_source.name(),
            },
            "faceIds": state.face_ids.len(),
            "sharedFaceIds": state.face_ids.shared_count().await,
            "memory": {
                "budgetBytes": state.budget.total(),
                "heldBytes": state.budget.held(),
                "trainedIndexBytes": state.indexes.memory_bytes(),
            },
        })),
    )
        .into_response();
    if code != StatusCode::OK {
        response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("30"));
    }
    response
}

/// GET /metrics: Prometheus text.
pub async fn metrics(State(state): State<Shared>) -> Response {
    let pool = state.engine.stats();
    let billing = state.billing.clone();
    let backlog = tokio::task::spawn_blocking(move || billing.backlog()).await.unwrap_or(0);
    let database = state.store.pool_stats();
    let text = state.metrics.render(Gauges {
        pool_size: pool.size,
        pool_busy: pool.size.saturating_sub(pool.idle),
        pool_discarded: pool.discarded,
        engine_queue: state.engine_queue.load(Ordering::Relaxed),
        usage_backlog: backlog,
        face_ids: state.face_ids.len(),
        memory_held: state.budget.held(),
        database,
    });
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Ready when the engine pool has its instances and the store answers.
pub async fn ready(State(state): State<Shared>) -> Response {
    let store_ok = state.db(|s| s.collection(Kind::PersonGroup, "-")).await.is_ok();
    let pool = state.engine.stats();
    if store_ok && pool.size > 0 {
        (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}
