//! The layers around the operations: the request id and log line with its metrics, the
//! subscription-key check, and billing.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, REQUEST_ID};
use super::state::Shared;
use super::timing;
use crate::billing::{Billing, REQUEST_USAGE};
use crate::store::PendingUsage;

/// The route a request matched (`/face/v1.0/persongroups/{personGroupId}`), carried on the
/// response to the log and metrics; unmatched requests have none.
#[derive(Debug, Clone)]
struct RouteLabel(String);

/// Puts the matched route on the response (a route layer, so it runs only for matched routes).
pub async fn label_route(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(m) = matched {
        response.extensions_mut().insert(RouteLabel(m.as_str().to_owned()));
    }
    response
}

/// Gives the request an id (the `apim-request-id` header, as Azure's), then writes one
/// structured log line and one metrics observation, labelled by the matched route.
pub async fn log_request(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    let start = Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    let status = response.status().as_u16();
    let seconds = start.elapsed().as_secs_f64();
    let route = response.extensions().get::<RouteLabel>().map_or("unmatched", |r| r.0.as_str());
    state.metrics.observe(method.as_str(), route, status, seconds);
    let ms = seconds * 1000.0;
    if status >= 500 {
        tracing::error!(request_id = %id, %method, %path, %route, status, ms, "request failed");
    } else {
        tracing::info!(request_id = %id, %method, %path, %route, status, ms, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("apim-request-id", v);
    }
    if timing::timed(&response) {
        timing::append(&mut response, &[timing::entry("total", start.elapsed())]);
    }
    response
}

/// Runs the rest of the request on a task of its own, so a client that hangs up does not cancel
/// work half done: the handler finishes and its usage is journalled. A panic in a handler
/// becomes a 500 with the request id. The request counts in `face_requests_in_flight` from its
/// headers (its body may still be arriving) to its answer.
pub async fn run_to_completion(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let in_flight = state.metrics.begin();
    let run = async move {
        let response = next.run(request).await;
        drop(in_flight);
        response
    };
    let task = match REQUEST_ID.try_with(Clone::clone) {
        Ok(id) => tokio::spawn(REQUEST_ID.scope(id, run)),
        Err(_) => tokio::spawn(run),
    };
    match task.await {
        Ok(response) => response,
        Err(e) => ApiError::internal(format!("the request's task failed: {e}")).into_response(),
    }
}

/// The subscription-key check (decision 7): constant-time comparison with the configured key.
pub async fn check_key(State(state): State<Shared>, headers: HeaderMap, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.api_key {
        let given = headers.get("ocp-apim-subscription-key").map(|v| v.as_bytes()).unwrap_or_default();
        if !constant_time_eq(given, expected.expose().as_bytes()) {
            return super::input::refuse_before_body(request, ApiError::Unauthorized).await;
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
/// the grace period; every successful operation is journalled before its response is sent, a
/// mutation in the same transaction as its effect.
pub async fn bill(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Err(refusal) = state.billing.admits() {
        let error =
            ApiError::Billing { status: refusal.status, message: refusal.message, retry_after: refusal.retry_after };
        return super::input::refuse_before_body(request, error).await;
    }
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    // The record's id is the request's, so a billed answer can be found in the meter's records.
    let id = REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
    let usage = PendingUsage::new(Billing::usage(id, &format!("{} {route}", request.method())));
    let response = REQUEST_USAGE.scope(usage.clone(), next.run(request)).await;
    if !response.status().is_success() {
        return response;
    }
    // A write of the request journalled the usage with its effect; else (a detect, a read) it is
    // journalled now. The work is done: its answer goes out even if this journal write fails
    // (the record then waits in memory for the next flush), so a client never retries work
    // that was done.
    let mut response = response;
    if let Some(record) = usage.take() {
        let billing = state.billing.clone();
        let start = Instant::now();
        if let Err(e) = tokio::task::spawn_blocking(move || billing.record(record)).await {
            tracing::error!(error = %e, "the usage journal task failed");
        }
        if timing::timed(&response) {
            timing::append(&mut response, &[timing::entry("usage", start.elapsed())]);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
