//! Training's routes: start a collection's training, and read its status. The training itself
//! runs beside the API (`crate::training`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::collections::{self, CollectionKind, Ids};
use super::error::{ApiError, ApiResult, At};
use super::input::NoBody;
use super::reply::ok_json;
use super::state::Shared;
use super::wire::TrainingStatus;
use crate::time::iso8601;
use crate::training;

/// POST /{kinds}/{id}/train: 202 once the training is recorded as running.
pub async fn train<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, _: NoBody) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let collection = collections::find(&state, kind, &cid, At::Route).await?;
    training::start(&state, kind, cid.clone(), collection)
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// GET /{kinds}/{id}/training
pub async fn status<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    collections::find(&state, kind, &cid, At::Route).await?;
    let id = cid.clone();
    let t = state.db(move |s| s.training(kind, &id)).await.map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    let t = t.ok_or(ApiError::NotTrained { kind, id: cid, at: At::Route })?;
    ok_json(TrainingStatus {
        status: t.state.name().to_owned(),
        created_date_time: iso8601(t.created_ms),
        last_action_date_time: iso8601(t.last_action_ms),
        last_successful_training_date_time: t.last_success_ms.map(iso8601),
        message: t.message,
    })
}
