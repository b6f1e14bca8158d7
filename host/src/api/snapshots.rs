//! Snapshots: a copy of a group or list taken now and applied later as a new one, within this
//! service (Azure moves them between subscriptions; here the "account" is this service's key).
//! Take and apply run in the background and answer 202 with `Operation-Location`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::collections;
use super::error::{ApiError, ApiResult, At};
use super::input::{self, Json, NoBody, PathParam, Query};
use super::reply::{ok_empty, ok_json};
use super::state::Shared;
use super::wire::{
    self, ApplySnapshotRequest, OperationStatus, SnapshotListQuery, TakeSnapshotRequest, UpdateSnapshotRequest,
};
use crate::expiry::live;
use crate::settings::Secret;
use crate::store::{Hold, Kind, Operation, Snapshot, StoreError, operation_key};
use crate::time::{iso8601, now_ms};

/// A snapshot that has not expired, or 404 `SnapshotNotFound`.
async fn live_snapshot(state: &Shared, sid: &str) -> ApiResult<Snapshot> {
    let id = sid.to_owned();
    let found = state.db(move |s| s.snapshot(&id)).await.map_err(ApiError::store)?;
    found.filter(live).ok_or(ApiError::SnapshotNotFound(sid.into()))
}

/// The account snapshots belong to: a UUID derived from this service's key.
fn account(state: &Shared) -> String {
    let digest = Sha256::digest(state.api_key.as_ref().map_or("face-server", Secret::expose).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn snapshot_reply(state: &Shared, s: &Snapshot) -> wire::Snapshot {
    wire::Snapshot {
        id: s.id.clone(),
        account: account(state),
        kind: s.kind.name().to_owned(),
        apply_scope: s.apply_scope.clone(),
        user_data: s.user_data.clone(),
        created_time: iso8601(s.created_ms),
        last_update_time: iso8601(s.updated_ms),
    }
}

fn scope(raw: Option<Vec<String>>, required: bool) -> ApiResult<Option<Vec<String>>> {
    match raw {
        None if required => Err(ApiError::bad_argument("Request body is invalid: applyScope is required.")),
        None => Ok(None),
        Some(ids) => Ok(Some(ids.iter().map(|id| input::uuid(id, "applyScope entry")).collect::<ApiResult<_>>()?)),
    }
}

/// 202 with `Operation-Location: /operations/<id>`, the relative path the spec's examples and the
/// service send (the official SDKs read the id as its third `/`-separated part).
fn accepted(op: &str) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/operations/{op}")) {
        response.headers_mut().insert("operation-location", v);
    }
    response
}

/// A new operation, recorded as not started, and the hold that marks it as running on this host
/// until the task doing it drops it (so another host's restart does not fail it).
async fn new_operation(state: &Shared) -> ApiResult<(Operation, Hold)> {
    let now = now_ms();
    let op = Operation {
        id: uuid::Uuid::new_v4().to_string(),
        status: "notstarted".into(),
        created_ms: now,
        last_action_ms: now,
        resource_location: None,
        message: None,
    };
    let o = op.clone();
    let hold = state
        .db(move |s| {
            let hold = s.hold(&operation_key(&o.id))?;
            s.put_operation(&o)?;
            Ok(hold)
        })
        .await
        .map_err(ApiError::store)?;
    Ok((op, hold))
}

async fn finish(state: &Shared, mut op: Operation, result: Result<String, String>) {
    op.last_action_ms = now_ms();
    match result {
        Ok(location) => {
            op.status = "succeeded".into();
            op.resource_location = Some(location);
        }
        Err(message) => {
            tracing::warn!(operation = %op.id, %message, "snapshot operation failed");
            op.status = "failed".into();
            op.message = Some(message);
        }
    }
    // The operation's last word, which its client polls for: retried, and logged when lost (its
    // stored status would still say running).
    const ATTEMPTS: u64 = 3;
    for attempt in 1..=ATTEMPTS {
        let o = op.clone();
        let error = match state.db(move |s| s.put_operation(&o)).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if attempt == ATTEMPTS {
            tracing::error!(
                operation = %op.id, status = %op.status, error = %error,
                "writing a snapshot operation's final status failed {ATTEMPTS} times: its stored status still says running"
            );
            return;
        }
        tracing::warn!(operation = %op.id, attempt, error = %error, "writing a snapshot operation's final status failed; retrying");
        tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
    }
}

/// POST /snapshots
pub async fn take(State(state): State<Shared>, Json(req): Json<TakeSnapshotRequest>) -> ApiResult<Response> {
    let kind = req.kind.as_deref().and_then(Kind::from_name).ok_or_else(|| {
        ApiError::bad_argument("'type' is invalid; use FaceList, LargeFaceList, LargePersonGroup or PersonGroup.")
    })?;
    let object_id = req.object_id.unwrap_or_default();
    collections::checked_id(kind, &object_id)?;
    let apply_scope = scope(req.apply_scope, true)?.unwrap_or_default();
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    let id = object_id.clone();
    let found = state
        .db(move |s| s.collection(kind, &id))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &object_id, None))?;
    if found.is_none() {
        return Err(ApiError::CollectionNotFound { kind, id: object_id, at: At::Route });
    }
    let (op, hold) = new_operation(&state).await?;
    let response = accepted(&op.id);
    let task = state.clone();
    tokio::spawn(async move {
        let _hold = hold;
        let now = now_ms();
        let snapshot = Snapshot {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            object_id,
            apply_scope,
            user_data,
            created_ms: now,
            updated_ms: now,
        };
        let sid = snapshot.id.clone();
        let result = task
            .db(move |s| s.take_snapshot(&snapshot))
            .await
            .map(|()| format!("/snapshots/{sid}"))
            .map_err(|e| format!("The snapshot could not be taken: {e}."));
        finish(&task, op, result).await;
    });
    Ok(response)
}

/// GET /snapshots?type=&applyScope=
pub async fn list(State(state): State<Shared>, q: Query) -> ApiResult<Response> {
    let SnapshotListQuery { kind, apply_scope: wanted } = SnapshotListQuery::read(&q)?;
    let all = state.db(|s| s.list_snapshots()).await.map_err(ApiError::store)?;
    let shown: Vec<wire::Snapshot> = all
        .iter()
        .filter(|s| live(s) && kind.is_none_or(|k| s.kind == k))
        .filter(|s| wanted.iter().all(|w| s.apply_scope.contains(w)))
        .map(|s| snapshot_reply(&state, s))
        .collect();
    ok_json(shown)
}

fn snapshot_id(p: &str) -> ApiResult<String> {
    input::uuid(p, "Snapshot ID")
}

/// GET /snapshots/{id}
pub async fn get(State(state): State<Shared>, PathParam(sid): PathParam) -> ApiResult<Response> {
    let sid = snapshot_id(&sid)?;
    let s = live_snapshot(&state, &sid).await?;
    ok_json(snapshot_reply(&state, &s))
}

/// PATCH /snapshots/{id}
pub async fn update(
    State(state): State<Shared>,
    PathParam(sid): PathParam,
    Json(req): Json<UpdateSnapshotRequest>,
) -> ApiResult<Response> {
    let sid = snapshot_id(&sid)?;
    let apply_scope = scope(req.apply_scope, false)?;
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    let id = sid.clone();
    let found = state.db(move |s| s.update_snapshot(&id, apply_scope.as_deref(), user_data.as_deref(), now_ms())).await;
    let found = found.map_err(ApiError::store)?;
    if found { Ok(ok_empty()) } else { Err(ApiError::SnapshotNotFound(sid)) }
}

/// DELETE /snapshots/{id}
pub async fn delete(State(state): State<Shared>, PathParam(sid): PathParam, _: NoBody) -> ApiResult<Response> {
    let sid = snapshot_id(&sid)?;
    let id = sid.clone();
    let found = state.db(move |s| s.delete_snapshot(&id)).await.map_err(ApiError::store)?;
    if found { Ok(ok_empty()) } else { Err(ApiError::SnapshotNotFound(sid)) }
}

/// POST /snapshots/{id}/apply: a new group or list `objectId` made from the snapshot.
pub async fn apply(
    State(state): State<Shared>,
    PathParam(sid): PathParam,
    Json(req): Json<ApplySnapshotRequest>,
) -> ApiResult<Response> {
    let sid = snapshot_id(&sid)?;
    if !req.mode.as_deref().is_none_or(|m| m.eq_ignore_ascii_case("CreateNew")) {
        return Err(ApiError::bad_argument("'mode' is invalid; the only mode is CreateNew."));
    }
    let object_id = req.object_id.unwrap_or_default();
    let snapshot = live_snapshot(&state, &sid).await?;
    collections::checked_id(snapshot.kind, &object_id)?;
    let (op, hold) = new_operation(&state).await?;
    let response = accepted(&op.id);
    let task = state.clone();
    tokio::spawn(async move {
        let _hold = hold;
        let kind = snapshot.kind;
        let target = object_id.clone();
        let result = task
            .db(move |s| s.apply_snapshot(&snapshot.id, &target))
            .await
            .map(|()| format!("/{}/{object_id}", kind.route()))
            .map_err(|e| match e {
                StoreError::Exists => {
                    format!("{} '{object_id}' already exists; apply with another objectId.", kind.name())
                }
                e => {
                    tracing::error!(snapshot = %sid, error = %e, "applying a snapshot failed");
                    "The snapshot could not be applied (the server's log has the cause); apply it again.".into()
                }
            });
        if result.is_ok() {
            task.indexes.forget(kind, &object_id);
        }
        finish(&task, op, result).await;
    });
    Ok(response)
}

/// GET /operations/{id}
pub async fn operation(State(state): State<Shared>, PathParam(oid): PathParam) -> ApiResult<Response> {
    let oid = input::uuid(&oid, "Operation ID")?;
    let id = oid.clone();
    let op =
        state.db(move |s| s.operation(&id)).await.map_err(ApiError::store)?.ok_or(ApiError::OperationNotFound(oid))?;
    ok_json(OperationStatus {
        status: op.status,
        created_time: iso8601(op.created_ms),
        last_action_time: iso8601(op.last_action_ms),
        resource_location: op.resource_location,
        message: op.message,
    })
}
