//! Training of PersonGroups, LargePersonGroups and LargeFaceLists, its status, and the trained
//! index that identify and find-similar search.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::collections::{self, CollectionKind, Ids, model_of};
use super::error::{ApiError, ApiResult, At};
use super::input::NoBody;
use super::reply::ok_json;
use super::state::Shared;
use crate::faces::Index;
use crate::store::{Collection, Kind, StoreError, Training, TrainingState};
use crate::time::{iso8601, now_ms};

/// The index identification and find-similar search: a FaceList's current faces, or for the
/// other kinds the faces of the last successful training (`None` if never trained), kept in
/// memory after the first load.
pub async fn trained_index(
    state: &Shared,
    kind: Kind,
    cid: &str,
    collection: &Collection,
) -> ApiResult<Option<Arc<Index>>> {
    let model = model_of(collection);
    let id = cid.to_owned();
    let (trained_ms, faces) = if !kind.needs_training() {
        (0, state.db(move |s| s.all_faces(kind, &id)).await?)
    } else {
        if let Some(index) = state.indexes.get(kind, cid) {
            return Ok(Some(index));
        }
        let loaded = state
            .db(move |s| match s.training(kind, &id)?.and_then(|t| t.last_success_ms) {
                Some(at) => Ok(Some((at, s.trained_faces(kind, &id)?))),
                None => Ok(None),
            })
            .await?;
        let Some(loaded) = loaded else { return Ok(None) };
        loaded
    };
    let index = tokio::task::spawn_blocking(move || Index::build(model, trained_ms, &faces))
        .await
        .map_err(|e| ApiError::internal(format!("loading the trained index failed: {e}")))?;
    let index = Arc::new(index);
    // A FaceList's index is its current faces, built for each search; the others are cached.
    Ok(Some(if kind.needs_training() { state.indexes.put(kind, cid, index) } else { index }))
}

/// POST /{kinds}/{id}/train: the training is recorded as running before the 202, so a status
/// asked right after it says `running`; the training itself runs in the background.
pub async fn train<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, _: NoBody) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let collection = collections::find(&state, kind, &cid, At::Route).await?;
    {
        // One training per collection at a time; a train call during one asks for another
        // round when it ends, so faces added meanwhile are not left out.
        let mut training = state.training.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(again) = training.get_mut(&(kind, cid.clone())) {
            *again = true;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        training.insert((kind, cid.clone()), false);
    }
    let running = match mark_running(&state, kind, &cid).await {
        Ok(running) => running,
        Err(e) => {
            state.training.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid.clone()));
            return Err(ApiError::from_store(e, kind, &cid, None));
        }
    };
    let task_state = state.clone();
    tokio::spawn(async move {
        let mut running = running;
        loop {
            run_training(task_state.clone(), kind, cid.clone(), collection.clone(), running).await;
            if !another_round(&task_state, kind, &cid) {
                break;
            }
            match mark_running(&task_state, kind, &cid).await {
                Ok(r) => running = r,
                Err(e) => {
                    if e != StoreError::NoCollection {
                        tracing::error!(kind = kind.name(), id = %cid, error = %e, "training could not start");
                    }
                    task_state.training.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid.clone()));
                    break;
                }
            }
        }
    });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Whether a train call came during the round that just ended (and so another round is due);
/// when none did, the collection is no longer training.
fn another_round(state: &Shared, kind: Kind, cid: &str) -> bool {
    let mut training = state.training.lock().unwrap_or_else(|p| p.into_inner());
    let key = (kind, cid.to_owned());
    match training.get_mut(&key) {
        Some(again) if *again => {
            *again = false;
            true
        }
        _ => {
            training.remove(&key);
            false
        }
    }
}

/// Records a training of the collection as running (keeping the last success), and returns it.
async fn mark_running(state: &Shared, kind: Kind, cid: &str) -> Result<Training, StoreError> {
    let id = cid.to_owned();
    state
        .db(move |s| {
            let previous = s.training(kind, &id)?;
            let started = now_ms();
            let running = Training {
                state: TrainingState::Running,
                created_ms: started,
                last_action_ms: started,
                last_success_ms: previous.and_then(|t| t.last_success_ms),
                message: None,
            };
            s.set_training(kind, &id, &running)?;
            Ok(running)
        })
        .await
}

async fn run_training(state: Shared, kind: Kind, cid: String, collection: Collection, running: Training) {
    let model = model_of(&collection);
    let id = cid.clone();
    let result: Result<(), StoreError> = async {
        let faces = state.db(move |s| s.all_faces(kind, &id)).await?;
        let done_at = now_ms();
        let done = Training {
            state: TrainingState::Succeeded,
            last_action_ms: done_at,
            last_success_ms: Some(done_at),
            message: None,
            ..running.clone()
        };
        let (faces, index) = tokio::task::spawn_blocking(move || {
            let index = Index::build(model, done_at, &faces);
            (faces, index)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?;
        let id = cid.clone();
        let created = collection.created_ms;
        state.db(move |s| s.save_trained(kind, &id, created, &done, &faces)).await?;
        state.indexes.put(kind, &cid, Arc::new(index));
        tracing::info!(kind = kind.name(), id = %cid, ms = done_at - running.created_ms, "training succeeded");
        Ok(())
    }
    .await;
    match result {
        Ok(()) | Err(StoreError::NoCollection) => {}
        Err(e) => {
            tracing::error!(kind = kind.name(), id = %cid, error = %e, "training failed");
            let failed = Training {
                state: TrainingState::Failed,
                last_action_ms: now_ms(),
                message: Some("Training failed on the server (its log has the cause); train again.".into()),
                ..running
            };
            let _ = state.db(move |s| s.set_training(kind, &cid, &failed)).await;
        }
    }
}

/// GET /{kinds}/{id}/training
pub async fn status<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    collections::find(&state, kind, &cid, At::Route).await?;
    let id = cid.clone();
    let t =
        state.db(move |s| s.training(kind, &id)).await?.ok_or(ApiError::NotTrained { kind, id: cid, at: At::Route })?;
    ok_json(json!({
        "status": t.state.name(),
        "createdDateTime": iso8601(t.created_ms),
        "lastActionDateTime": iso8601(t.last_action_ms),
        "lastSuccessfulTrainingDateTime": t.last_success_ms.map(iso8601),
        "message": t.message,
    }))
}
