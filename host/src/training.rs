//! Training, beside the API: a collection's training rounds in the background (one at a time per
//! collection, across hosts under the collection's hold), the trained index identify and
//! find-similar search (loaded once, kept in memory), and the changes other hosts make to it
//! (events from a shared database). The handlers of `api::training` start rounds and read their
//! status; `server` feeds the events.

use std::sync::Arc;

use face_core::RecognitionModel;

use crate::api::collections::model_of;
use crate::api::error::{ApiError, ApiResult, At};
use crate::api::state::Shared;
use crate::index::{Builder, Index, Row};
use crate::store::{Collection, Event, Kind, Store, StoreError, Training, TrainingState, training_key};
use crate::time::now_ms;

/// The index identification and find-similar search in a LargeFaceList or a group: the last
/// successful training's (`None` if never trained), kept in memory after the first load, which
/// concurrent searches share. The collection is the one the request's body names: one gone
/// meanwhile is its 400.
pub async fn trained_index(
    state: &Shared,
    kind: Kind,
    cid: &str,
    collection: &Collection,
) -> ApiResult<Option<Arc<Index>>> {
    if let Some(index) = state.indexes.get(kind, cid) {
        return Ok(Some(index));
    }
    let loading = state.indexes.load_lock(kind, cid);
    let _one_load = loading.lock().await;
    if let Some(index) = state.indexes.get(kind, cid) {
        return Ok(Some(index));
    }
    let (store, id, model) = (state.store.clone(), cid.to_owned(), model_of(collection));
    let (started, epoch) = (std::time::Instant::now(), state.indexes.epoch());
    let loaded = tokio::task::spawn_blocking(move || load(store.as_ref(), kind, &id, model))
        .await
        .map_err(|e| ApiError::internal(format!("loading the trained index failed: {e}")))?
        .map_err(|e| ApiError::from_store_at(e, kind, cid, None, At::Body))?;
    let Some(index) = loaded else { return Ok(None) };
    state.metrics.index_loaded(started.elapsed().as_secs_f64(), index.memory_bytes());
    tracing::info!(
        kind = kind.name(),
        id = %cid,
        faces = index.len(),
        ms = started.elapsed().as_millis() as u64,
        "trained index loaded"
    );
    let index = state.indexes.put_since(epoch, kind, cid, Arc::new(index));
    mark_deaths(state, kind, cid, &index).await.map_err(|e| ApiError::from_store_at(e, kind, cid, None, At::Body))?;
    // Another host's training that ended while this load read the older one: load it too.
    if state.indexes.newer_heard(kind, cid, index.trained_ms) {
        spawn_refresh(state, kind, cid.to_owned());
    }
    Ok(Some(index))
}

/// Applies a change another host made (an [`Event`] from a shared database) to the cached
/// indexes: a newer training is loaded in the background while the cached one keeps answering;
/// deaths are marked; a deleted collection's index goes. `None` says the event connection was
/// (re)made: after a reconnection, events may have been missed, so every cached index is read
/// again on its next use.
pub async fn on_event(state: &Shared, event: Option<Event>, connected_before: &mut bool) {
    match event {
        None => {
            if *connected_before {
                let dropped = state.indexes.clear();
                tracing::warn!(dropped, "reconnected to the database's events; cached trained indexes are read again");
            }
            *connected_before = true;
        }
        Some(Event::Trained { kind, cid, trained_ms }) => {
            // Heard even when nothing is cached: a load under way may be reading the older one.
            state.indexes.heard(kind, &cid, trained_ms);
            if state.indexes.get(kind, &cid).is_some_and(|i| i.trained_ms < trained_ms) {
                spawn_refresh(state, kind, cid);
            }
        }
        Some(Event::DeadFace { kind, cid, person_id, face_id }) => {
            state.indexes.kill_face(kind, &cid, person_id.as_deref(), &face_id)
        }
        Some(Event::DeadPerson { kind, cid, person_id }) => state.indexes.kill_person(kind, &cid, &person_id),
        Some(Event::Gone { kind, cid }) => state.indexes.forget(kind, &cid),
    }
}

/// [`refresh`] in the background; on failure the cached index goes, so the next search reads
/// the newest one itself.
fn spawn_refresh(state: &Shared, kind: Kind, cid: String) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = refresh(&state, kind, &cid).await {
            tracing::warn!(kind = kind.name(), id = %cid, error = ?e, "a newer trained index was not loaded; the next search reads it");
            state.indexes.forget(kind, &cid);
        }
    });
}

/// Loads the collection's last training into the cache beside the index cached now, which
/// answers until the new one is put in its place. Nothing to do when the cached index is as new
/// as every training heard of (an earlier refresh, or this host's own training, put it there).
async fn refresh(state: &Shared, kind: Kind, cid: &str) -> ApiResult<()> {
    let loading = state.indexes.load_lock(kind, cid);
    let _one_load = loading.lock().await;
    let cached = state.indexes.get(kind, cid).map(|i| i.trained_ms);
    if cached.is_some_and(|t| !state.indexes.newer_heard(kind, cid, t)) {
        return Ok(());
    }
    let epoch = state.indexes.epoch();
    let id = cid.to_owned();
    let found =
        state.db(move |s| s.collection(kind, &id)).await.map_err(|e| ApiError::from_store(e, kind, cid, None))?;
    let Some(collection) = found else { return Ok(()) };
    let (store, id, model) = (state.store.clone(), cid.to_owned(), model_of(&collection));
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || load(store.as_ref(), kind, &id, model))
        .await
        .map_err(|e| ApiError::internal(format!("loading the trained index failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, kind, cid, None))?;
    let Some(index) = loaded else { return Ok(()) };
    let (faces, trained_ms) = (index.len(), index.trained_ms);
    state.metrics.index_loaded(started.elapsed().as_secs_f64(), index.memory_bytes());
    let index = state.indexes.put_since(epoch, kind, cid, Arc::new(index));
    mark_deaths(state, kind, cid, &index).await.map_err(|e| ApiError::from_store(e, kind, cid, None))?;
    tracing::info!(
        kind = kind.name(),
        id = %cid,
        faces,
        trained_ms,
        ms = started.elapsed().as_millis() as u64,
        "a newer training (another host's) loaded"
    );
    Ok(())
}

/// Reads the last successful training's index from the store. A newer training (another
/// host's) may replace the index between reading which one is last and reading its parts: then
/// the newer one is read.
fn load(store: &dyn Store, kind: Kind, cid: &str, model: RecognitionModel) -> Result<Option<Index>, StoreError> {
    let mut at = store.training(kind, cid)?.and_then(|t| t.last_success_ms);
    for _ in 0..5 {
        let Some(trained) = at else { return Ok(None) };
        // Streamed from its stored parts: the load holds the index once, not its bytes beside it.
        let mut index = None;
        let found = store.read_index(kind, cid, trained, &mut |len, stream| {
            index = Some(Index::from_reader(len, stream).map_err(|e| StoreError::Internal(e.to_string()))?);
            Ok(())
        })?;
        if found {
            return Ok(index);
        }
        let now = store.training(kind, cid)?.and_then(|t| t.last_success_ms);
        if now == at {
            // Trained by a version that kept a copy of the faces instead of an index.
            return read_faces(store, kind, cid, model, true, trained).map(Some);
        }
        at = now;
    }
    Err(StoreError::Internal("the trained index kept changing while it was read; search again".into()))
}

/// An index of the collection's faces (with `trained`, of the older versions' copy of them).
fn read_faces(
    store: &dyn Store,
    kind: Kind,
    cid: &str,
    model: RecognitionModel,
    trained: bool,
    trained_ms: i64,
) -> Result<Index, StoreError> {
    let mut builder = Builder::new(model, kind.has_persons());
    let mut read = 0u64;
    store.scan_faces(kind, cid, trained, &mut |f| {
        if f.model == model.id() {
            builder
                .push(Row { face_id: f.face_id, person_id: f.person_id, embedding: f.embedding })
                .map_err(|e| StoreError::Internal(e.to_string()))?;
        }
        read += 1;
        if read.is_multiple_of(100_000) {
            tracing::info!(kind = kind.name(), id = %cid, faces = read, "training: reading faces");
        }
        Ok(())
    })?;
    Ok(builder.build(trained_ms))
}

/// Marks dead in `index` the faces deleted since its training. Called after the index is
/// cached: a delete that commits later finds it cached and marks it itself.
async fn mark_deaths(state: &Shared, kind: Kind, cid: &str, index: &Index) -> Result<(), StoreError> {
    let id = cid.to_owned();
    for (person, face) in state.db(move |s| s.dead_faces(kind, &id)).await? {
        index.kill_face(person.as_deref(), &face);
    }
    Ok(())
}

/// Starts training the collection: recorded as running before this returns, so a status asked
/// right after it says `running`; the rounds run in the background. A call while the collection
/// trains asks for one more round when the current one ends, so faces added meanwhile are not
/// left out.
pub async fn start(state: &Shared, kind: Kind, cid: String, collection: Collection) -> Result<(), StoreError> {
    {
        // One training per collection at a time; a train call during one asks for another
        // round when it ends, so faces added meanwhile are not left out.
        let mut training = state.training.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(again) = training.get_mut(&(kind, cid.clone())) {
            *again = true;
            return Ok(());
        }
        training.insert((kind, cid.clone()), false);
    }
    let running = match mark_running(state, kind, &cid).await {
        Ok(running) => running,
        Err(e) => {
            state.training.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid.clone()));
            return Err(e);
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
    Ok(())
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

/// Bytes of one stored part of a trained index.
const INDEX_PART: usize = 8 << 20;

async fn run_training(state: Shared, kind: Kind, cid: String, collection: Collection, running: Training) {
    let model = model_of(&collection);
    let result: Result<(), StoreError> = async {
        // One training of a collection at a time across the hosts of a shared database: this
        // one waits for another host's to end (and then trains again, with what it added).
        let (store, key) = (state.store.clone(), training_key(kind, &cid));
        let hold = tokio::task::spawn_blocking(move || store.hold(&key))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??;
        // Another host's training may have ended while this one waited: its time is the one to
        // pass, and the status says running again (that training wrote succeeded over it).
        let (id, mut again) = (cid.clone(), running.clone());
        let running = state
            .db(move |s| {
                let now = s.training(kind, &id)?;
                again.last_success_ms = now.as_ref().and_then(|t| t.last_success_ms).max(again.last_success_ms);
                if now.is_none_or(|t| t.state != TrainingState::Running) {
                    again.last_action_ms = now_ms();
                    s.set_training(kind, &id, &again)?;
                }
                Ok(again)
            })
            .await?;
        let started = std::time::Instant::now();
        // The new index is built beside the one in use, with no lock that requests wait on:
        // the faces are read in one read transaction of their own, and identify answers from
        // the previous training until the new one is swapped in.
        let scanned_ms = now_ms();
        let trained_ms = scanned_ms.max(running.last_success_ms.unwrap_or(0) + 1);
        let (store, id) = (state.store.clone(), cid.clone());
        let index = tokio::task::spawn_blocking(move || -> Result<Index, StoreError> {
            let index = read_faces(store.as_ref(), kind, &id, model, false, trained_ms)?;
            tracing::info!(kind = kind.name(), id = %id, faces = index.len(), "training: index built; writing it");
            let parts = index
                .write_parts(INDEX_PART, &mut |part, bytes| store.put_index_part(kind, &id, trained_ms, part, bytes))?;
            tracing::debug!(kind = kind.name(), id = %id, parts, "training: index written");
            Ok(index)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        let done = Training {
            state: TrainingState::Succeeded,
            last_action_ms: now_ms(),
            last_success_ms: Some(trained_ms),
            message: None,
            ..running.clone()
        };
        if hold.lost() {
            // This host could not renew its lease in time (another host may have taken it): that
            // host's training stands, and this one writes nothing over it.
            return Err(StoreError::NotHeld(format!(
                "the training lease of {cid} was not renewed in time; this round's index is not used"
            )));
        }
        let (id, created, fence) = (cid.clone(), collection.created_ms, hold.fence());
        // Fenced: written only if the lease is still this host's (checked in the same transaction).
        state
            .db(move |s| crate::store::fenced(fence, || s.save_trained(kind, &id, created, &done, scanned_ms)))
            .await?;
        let faces = index.len();
        let index = state.indexes.put(kind, &cid, Arc::new(index));
        mark_deaths(&state, kind, &cid, &index).await?;
        tracing::info!(
            kind = kind.name(),
            id = %cid,
            faces,
            ms = started.elapsed().as_millis() as u64,
            "training succeeded"
        );
        Ok(())
    }
    .await;
    match result {
        Ok(()) | Err(StoreError::NoCollection) => {}
        Err(StoreError::NotHeld(why)) => {
            // Another host's training holds (or took over) the collection's lease: its result
            // and status stand; this round writes nothing over them.
            tracing::warn!(kind = kind.name(), id = %cid, reason = %why, "training left to another host");
        }
        Err(e) => {
            tracing::error!(kind = kind.name(), id = %cid, error = %e, "training failed");
            // The last success as the store has it now (another host's may be newer than this
            // round's start).
            let id = cid.clone();
            let written = state
                .db(move |s| {
                    let last = s.training(kind, &cid)?.and_then(|t| t.last_success_ms).max(running.last_success_ms);
                    let failed = Training {
                        state: TrainingState::Failed,
                        last_action_ms: now_ms(),
                        last_success_ms: last,
                        message: Some("Training failed on the server (its log has the cause); train again.".into()),
                        ..running
                    };
                    s.set_training(kind, &cid, &failed)
                })
                .await;
            if let Err(e) = written {
                // The stored status stays the one written when this round started.
                tracing::error!(
                    kind = kind.name(), id = %id, error = %e,
                    "writing the failed training's status failed too; its stored status is still the one of its start"
                );
            }
        }
    }
}
