//! PersonGroup, LargePersonGroup, FaceList and LargeFaceList: the groups and lists themselves,
//! their persons and persisted faces, and training. One set of handlers serves the four kinds;
//! the route's first segment says which, and operations a kind lacks answer 404 as unknown routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};
use super::face::{detection_model, recognition_model};
use super::input::{self, Query};
use super::{Shared, drain, iso8601, now_ms, ok_empty, ok_json};
use crate::engine::guest;
use crate::faces::{Index, concrete_model, guest_model};
use crate::store::{Collection, Kind, Person, StoreError, StoredFace, Training, TrainingState};

type Params = Path<HashMap<String, String>>;

fn route_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Resource not found: no Face API operation has this route; see /swagger for the list.",
    )
}

fn kind(p: &HashMap<String, String>) -> ApiResult<Kind> {
    let seg = p.get("kinds").map(String::as_str).unwrap_or("");
    Kind::ALL.into_iter().find(|k| k.route() == seg).ok_or_else(route_not_found)
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::PersonGroup => "Person group",
        Kind::LargePersonGroup => "Large person group",
        Kind::FaceList => "Face list",
        Kind::LargeFaceList => "Large face list",
    }
}

/// The kind and the checked collection id of a route.
fn target(p: &HashMap<String, String>) -> ApiResult<(Kind, String)> {
    let kind = kind(p)?;
    let cid = p.get("cid").cloned().unwrap_or_default();
    input::collection_id(&cid, what(kind))?;
    Ok((kind, cid))
}

fn person_param(p: &HashMap<String, String>) -> ApiResult<String> {
    input::uuid(p.get("pid").map(String::as_str).unwrap_or(""), "Person ID")
}

fn face_param(p: &HashMap<String, String>) -> ApiResult<String> {
    input::uuid(p.get("fid").map(String::as_str).unwrap_or(""), "Persisted face ID")
}

/// The JSON key of a collection's id, e.g. `personGroupId`.
fn id_key(kind: Kind) -> &'static str {
    match kind {
        Kind::PersonGroup => "personGroupId",
        Kind::LargePersonGroup => "largePersonGroupId",
        Kind::FaceList => "faceListId",
        Kind::LargeFaceList => "largeFaceListId",
    }
}

fn store_err(e: StoreError, kind: Kind, cid: &str, person: Option<&str>) -> ApiError {
    ApiError::from_store(e, StatusCode::NOT_FOUND, kind, cid, person)
}

/// The collection a route names, or 404 `...NotFound`.
async fn collection_or_404(state: &Shared, kind: Kind, cid: &str) -> ApiResult<Collection> {
    let id = cid.to_owned();
    state
        .db(move |s| s.collection(kind, &id))
        .await?
        .ok_or_else(|| ApiError::collection_not_found(StatusCode::NOT_FOUND, kind, cid))
}

/// The collection a request body names, or 400 `...NotFound`.
pub async fn collection_for_reference(state: &Shared, kind: Kind, cid: &str) -> ApiResult<Collection> {
    input::collection_id(cid, what(kind))?;
    let id = cid.to_owned();
    state
        .db(move |s| s.collection(kind, &id))
        .await?
        .ok_or_else(|| ApiError::collection_not_found(StatusCode::BAD_REQUEST, kind, cid))
}

fn model_of(c: &Collection) -> face_core::RecognitionModel {
    concrete_model(&c.recognition_model).unwrap_or(face_core::RecognitionModel::SFace)
}

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
    if !kind.needs_training() {
        let faces = state.db(move |s| s.all_faces(kind, &id)).await?;
        return Ok(Some(Arc::new(Index::build(model, 0, &faces))));
    }
    if let Some(index) = state.indexes.lock().unwrap_or_else(|p| p.into_inner()).get(&(kind, id.clone())) {
        return Ok(Some(index.clone()));
    }
    let loaded = state
        .db(move |s| match s.training(kind, &id)?.and_then(|t| t.last_success_ms) {
            Some(at) => Ok(Some((at, s.trained_faces(kind, &id)?))),
            None => Ok(None),
        })
        .await?;
    let Some((trained_ms, faces)) = loaded else { return Ok(None) };
    let index = Arc::new(
        tokio::task::spawn_blocking(move || Index::build(model, trained_ms, &faces))
            .await
            .map_err(|e| ApiError::internal(format!("loading the trained index failed: {e}")))?,
    );
    Ok(Some(cache_index(state, kind, cid, index)))
}

/// Caches `index` unless a newer training is cached already; returns the one cached.
fn cache_index(state: &Shared, kind: Kind, cid: &str, index: Arc<Index>) -> Arc<Index> {
    let mut indexes = state.indexes.lock().unwrap_or_else(|p| p.into_inner());
    let slot = indexes.entry((kind, cid.to_owned())).or_insert_with(|| index.clone());
    if slot.trained_ms < index.trained_ms {
        *slot = index;
    }
    slot.clone()
}

/// Drops the cached index, so the next search reloads it from the store.
fn forget_index(state: &Shared, kind: Kind, cid: &str) {
    state.indexes.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid.to_owned()));
}

fn collection_json(c: &Collection, with_model: bool) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert(id_key(c.kind).into(), json!(c.id));
    o.insert("name".into(), json!(c.name));
    o.insert("userData".into(), json!(c.user_data));
    if with_model {
        o.insert("recognitionModel".into(), json!(c.recognition_model));
    }
    o
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaData {
    name: Option<String>,
    user_data: Option<String>,
    recognition_model: Option<String>,
}

/// PUT /{kinds}/{id}
pub async fn create(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = target(&p)?;
    let req: MetaData = input::json(&headers, body).await?;
    let name = input::name(req.name.as_deref(), true)?.unwrap_or_default();
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    let recognition = recognition_model(req.recognition_model.as_deref())?;
    let c = Collection {
        kind,
        id: cid.clone(),
        name,
        user_data,
        recognition_model: recognition.to_owned(),
        created_ms: now_ms(),
    };
    state.db(move |s| s.create_collection(&c)).await.map_err(|e| store_err(e, kind, &cid, None))?;
    // A collection made anew must not inherit the index of a deleted one with the same id.
    state.indexes.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid));
    Ok(ok_empty())
}

/// GET /{kinds}/{id}
pub async fn get(State(state): State<Shared>, Path(p): Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let (kind, cid) = target(&p)?;
    let q = Query::parse(raw.as_deref());
    let with_model = q.bool("returnRecognitionModel", false)?;
    let c = collection_or_404(&state, kind, &cid).await?;
    let mut o = collection_json(&c, with_model);
    if kind == Kind::FaceList {
        let faces = state.db(move |s| s.all_faces(kind, &cid)).await?;
        let faces: Vec<Value> =
            faces.iter().map(|f| json!({ "persistedFaceId": f.face_id, "userData": f.user_data })).collect();
        o.insert("persistedFaces".into(), Value::Array(faces));
    }
    ok_json(Value::Object(o))
}

/// GET /{kinds}
pub async fn list(State(state): State<Shared>, Path(p): Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let kind = kind(&p)?;
    let q = Query::parse(raw.as_deref());
    let with_model = q.bool("returnRecognitionModel", false)?;
    let start = q.start()?;
    let top = q.top()?;
    let rows = state.db(move |s| s.list_collections(kind, start.as_deref(), top)).await?;
    ok_json(Value::Array(rows.iter().map(|c| Value::Object(collection_json(c, with_model))).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameAndUserData {
    name: Option<String>,
    user_data: Option<String>,
}

/// PATCH /{kinds}/{id}
pub async fn update(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = target(&p)?;
    let req: NameAndUserData = input::json(&headers, body).await?;
    let name = input::name(req.name.as_deref(), false)?;
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    if name.is_none() && user_data.is_none() {
        return Err(ApiError::bad_argument("Both 'name' and 'userData' are empty."));
    }
    let id = cid.clone();
    let found =
        state.db(move |s| s.update_collection(kind, &id, name.as_deref(), user_data.as_deref().map(Some))).await?;
    if found { Ok(ok_empty()) } else { Err(ApiError::collection_not_found(StatusCode::NOT_FOUND, kind, &cid)) }
}

/// DELETE /{kinds}/{id}
pub async fn delete(State(state): State<Shared>, Path(p): Params, body: Body) -> ApiResult<Response> {
    drain(body).await;
    let (kind, cid) = target(&p)?;
    let id = cid.clone();
    let found = state.db(move |s| s.delete_collection(kind, &id)).await?;
    state.indexes.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind, cid.clone()));
    if found { Ok(ok_empty()) } else { Err(ApiError::collection_not_found(StatusCode::NOT_FOUND, kind, &cid)) }
}

/// POST /{kinds}/{id}/train: 202, and training runs in the background.
pub async fn train(State(state): State<Shared>, Path(p): Params, body: Body) -> ApiResult<Response> {
    drain(body).await;
    let (kind, cid) = target(&p)?;
    if !kind.needs_training() {
        return Err(route_not_found());
    }
    let collection = collection_or_404(&state, kind, &cid).await?;
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
    let task_state = state.clone();
    tokio::spawn(async move {
        loop {
            start_training(&task_state, kind, &cid, &collection).await;
            let mut training = task_state.training.lock().unwrap_or_else(|p| p.into_inner());
            match training.get_mut(&(kind, cid.clone())) {
                Some(again) if *again => *again = false,
                _ => {
                    training.remove(&(kind, cid.clone()));
                    break;
                }
            }
        }
    });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Records the training as running, then runs it.
async fn start_training(state: &Shared, kind: Kind, cid: &str, collection: &Collection) {
    let id = cid.to_owned();
    let previous = match state.db(move |s| s.training(kind, &id)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(kind = kind.name(), id = %cid, error = %e, "training could not start");
            return;
        }
    };
    let started = now_ms();
    let running = Training {
        state: TrainingState::Running,
        created_ms: started,
        last_action_ms: started,
        last_success_ms: previous.and_then(|t| t.last_success_ms),
        message: None,
    };
    let (id, r) = (cid.to_owned(), running.clone());
    if let Err(e) = state.db(move |s| s.set_training(kind, &id, &r)).await {
        if e != StoreError::NoCollection {
            tracing::error!(kind = kind.name(), id = %cid, error = %e, "training could not start");
        }
        return;
    }
    run_training(state.clone(), kind, cid.to_owned(), collection.clone(), running).await;
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
        cache_index(&state, kind, &cid, Arc::new(index));
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
                message: Some(format!("Training failed: {e}. Train again.")),
                ..running
            };
            let _ = state.db(move |s| s.set_training(kind, &cid, &failed)).await;
        }
    }
}

/// GET /{kinds}/{id}/training
pub async fn training(State(state): State<Shared>, Path(p): Params) -> ApiResult<Response> {
    let (kind, cid) = target(&p)?;
    if !kind.needs_training() {
        return Err(route_not_found());
    }
    collection_or_404(&state, kind, &cid).await?;
    let id = cid.clone();
    let t = state
        .db(move |s| s.training(kind, &id))
        .await?
        .ok_or_else(|| ApiError::not_trained(StatusCode::NOT_FOUND, kind, &cid))?;
    ok_json(json!({
        "status": t.state.name(),
        "createdDateTime": iso8601(t.created_ms),
        "lastActionDateTime": iso8601(t.last_action_ms),
        "lastSuccessfulTrainingDateTime": t.last_success_ms.map(iso8601),
        "message": t.message,
    }))
}

fn group_target(p: &HashMap<String, String>) -> ApiResult<(Kind, String)> {
    let (kind, cid) = target(p)?;
    if kind.has_persons() { Ok((kind, cid)) } else { Err(route_not_found()) }
}

fn person_json(p: &Person) -> Value {
    json!({ "personId": p.person_id, "name": p.name, "userData": p.user_data, "persistedFaceIds": p.face_ids })
}

/// POST /{kinds}/{id}/persons
pub async fn create_person(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    let req: NameAndUserData = input::json(&headers, body).await?;
    let name = input::name(req.name.as_deref(), true)?.unwrap_or_default();
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    let person = Person { person_id: uuid::Uuid::new_v4().to_string(), name, user_data, face_ids: vec![] };
    let id = cid.clone();
    let pid = person.person_id.clone();
    state.db(move |s| s.create_person(kind, &id, &person)).await.map_err(|e| store_err(e, kind, &cid, None))?;
    ok_json(json!({ "personId": pid }))
}

/// GET /{kinds}/{id}/persons
pub async fn list_persons(
    State(state): State<Shared>,
    Path(p): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    let q = Query::parse(raw.as_deref());
    let start = q.start()?;
    let top = q.top()?;
    collection_or_404(&state, kind, &cid).await?;
    let persons = state.db(move |s| s.list_persons(kind, &cid, start.as_deref(), top)).await?;
    ok_json(Value::Array(persons.iter().map(person_json).collect()))
}

/// The collection a face route names, checking the person too when there is one: 404
/// `...NotFound` or `PersonNotFound` otherwise. One store call.
async fn owner_or_404(state: &Shared, kind: Kind, cid: &str, person: Option<&str>) -> ApiResult<Collection> {
    let (id, pid) = (cid.to_owned(), person.map(str::to_owned));
    let (collection, person_found) = state
        .db(move |s| {
            let c = s.collection(kind, &id)?;
            let found = match (&c, &pid) {
                (Some(_), Some(pid)) => s.person(kind, &id, pid)?.is_some(),
                _ => true,
            };
            Ok((c, found))
        })
        .await?;
    let collection = collection.ok_or_else(|| ApiError::collection_not_found(StatusCode::NOT_FOUND, kind, cid))?;
    if !person_found {
        return Err(ApiError::person_not_found(StatusCode::NOT_FOUND, person.unwrap_or("")));
    }
    Ok(collection)
}

async fn person_or_404(state: &Shared, kind: Kind, cid: &str, pid: &str) -> ApiResult<Person> {
    let (id, person) = (cid.to_owned(), pid.to_owned());
    let (collection, found) =
        state.db(move |s| Ok((s.collection(kind, &id)?.is_some(), s.person(kind, &id, &person)?))).await?;
    if !collection {
        return Err(ApiError::collection_not_found(StatusCode::NOT_FOUND, kind, cid));
    }
    found.ok_or_else(|| ApiError::person_not_found(StatusCode::NOT_FOUND, pid))
}

/// GET /{kinds}/{id}/persons/{personId}
pub async fn get_person(State(state): State<Shared>, Path(p): Params) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    let pid = person_param(&p)?;
    let person = person_or_404(&state, kind, &cid, &pid).await?;
    ok_json(person_json(&person))
}

/// PATCH /{kinds}/{id}/persons/{personId}
pub async fn update_person(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    let pid = person_param(&p)?;
    let req: NameAndUserData = input::json(&headers, body).await?;
    let name = input::name(req.name.as_deref(), false)?;
    let user_data = input::user_data(req.user_data.as_deref(), 16 * 1024)?;
    if name.is_none() && user_data.is_none() {
        return Err(ApiError::bad_argument("Both 'name' and 'userData' are empty."));
    }
    person_or_404(&state, kind, &cid, &pid).await?;
    let (id, person) = (cid.clone(), pid.clone());
    let found =
        state.db(move |s| s.update_person(kind, &id, &person, name.as_deref(), user_data.as_deref().map(Some))).await?;
    if found { Ok(ok_empty()) } else { Err(ApiError::person_not_found(StatusCode::NOT_FOUND, &pid)) }
}

/// DELETE /{kinds}/{id}/persons/{personId}
pub async fn delete_person(State(state): State<Shared>, Path(p): Params, body: Body) -> ApiResult<Response> {
    drain(body).await;
    let (kind, cid) = group_target(&p)?;
    let pid = person_param(&p)?;
    person_or_404(&state, kind, &cid, &pid).await?;
    let (id, person) = (cid.clone(), pid.clone());
    let found = state.db(move |s| s.delete_person(kind, &id, &person)).await?;
    forget_index(&state, kind, &cid);
    if found { Ok(ok_empty()) } else { Err(ApiError::person_not_found(StatusCode::NOT_FOUND, &pid)) }
}

/// Detects the one face to persist (or the face at targetFace) and embeds it with the
/// collection's model.
async fn add_face(
    state: &Shared,
    kind: Kind,
    cid: String,
    person: Option<String>,
    raw: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let user_data = input::user_data(q.get("userData"), 1024)?;
    let target = input::target_face(&q)?;
    let detection = detection_model(&q)?;
    let collection = owner_or_404(state, kind, &cid, person.as_deref()).await?;
    let image = input::image(state, &headers, body).await?;
    let model = model_of(&collection);
    let slot = state.admit()?;
    let face = match target {
        Some([left, top, width, height]) => {
            let rect = guest::Rect { left: left as f32, top: top as f32, width: width as f32, height: height as f32 };
            state.engine.embed(image, rect, guest_model(model)).await?
        }
        None => {
            let options = guest::DetectOptions {
                min_score: if detection == "detection_02" { 0.6 } else { face_core::DEFAULT_MIN_SCORE },
                max_faces: 2,
                landmarks: false,
                recognition: Some(guest_model(model)),
                attributes: false,
            };
            let mut faces = state.engine.detect(image, options).await?;
            match faces.len() {
                0 => return Err(ApiError::invalid_image("No face detected in the image.")),
                1 => faces.remove(0),
                _ => {
                    return Err(ApiError::invalid_image(
                        "There is more than 1 face in the image; give targetFace=left,top,width,height.",
                    ));
                }
            }
        }
    };
    drop(slot);
    let embedding = face.embedding.ok_or_else(|| ApiError::internal("the engine returned no embedding"))?;
    let stored = StoredFace {
        face_id: uuid::Uuid::new_v4().to_string(),
        person_id: person.clone(),
        user_data,
        model: model.id().to_owned(),
        embedding: embedding.vector,
    };
    let face_id = stored.face_id.clone();
    let id = cid.clone();
    state.db(move |s| s.add_face(kind, &id, &stored)).await.map_err(|e| store_err(e, kind, &cid, person.as_deref()))?;
    ok_json(json!({ "persistedFaceId": face_id }))
}

/// POST /{kinds}/{id}/persons/{personId}/persistedfaces
pub async fn add_person_face(
    State(state): State<Shared>,
    Path(p): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    let pid = person_param(&p)?;
    add_face(&state, kind, cid, Some(pid), raw, headers, body).await
}

/// POST /{kinds}/{id}/persistedfaces
pub async fn add_list_face(
    State(state): State<Shared>,
    Path(p): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = list_target(&p)?;
    add_face(&state, kind, cid, None, raw, headers, body).await
}

fn list_target(p: &HashMap<String, String>) -> ApiResult<(Kind, String)> {
    let (kind, cid) = target(p)?;
    if kind.has_persons() { Err(route_not_found()) } else { Ok((kind, cid)) }
}

/// The LargeFaceList-only face routes (FaceList has only add and delete).
fn large_list_target(p: &HashMap<String, String>) -> ApiResult<(Kind, String)> {
    let (kind, cid) = target(p)?;
    if kind == Kind::LargeFaceList { Ok((kind, cid)) } else { Err(route_not_found()) }
}

fn face_json(f: &StoredFace) -> Value {
    json!({ "persistedFaceId": f.face_id, "userData": f.user_data })
}

async fn get_face(state: &Shared, kind: Kind, cid: String, person: Option<String>, fid: String) -> ApiResult<Response> {
    owner_or_404(state, kind, &cid, person.as_deref()).await?;
    let id = fid.clone();
    let face = state
        .db(move |s| s.face(kind, &cid, person.as_deref(), &id))
        .await?
        .ok_or_else(|| ApiError::persisted_face_not_found(&fid))?;
    ok_json(face_json(&face))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFace {
    user_data: Option<String>,
}

async fn update_face(
    state: &Shared,
    kind: Kind,
    cid: String,
    person: Option<String>,
    fid: String,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: UpdateFace = input::json(&headers, body).await?;
    let user_data = input::user_data(req.user_data.as_deref(), 1024)?;
    owner_or_404(state, kind, &cid, person.as_deref()).await?;
    let id = fid.clone();
    let found = state.db(move |s| s.update_face(kind, &cid, person.as_deref(), &id, user_data.as_deref())).await?;
    if found { Ok(ok_empty()) } else { Err(ApiError::persisted_face_not_found(&fid)) }
}

async fn delete_face(
    state: &Shared,
    kind: Kind,
    cid: String,
    person: Option<String>,
    fid: String,
) -> ApiResult<Response> {
    owner_or_404(state, kind, &cid, person.as_deref()).await?;
    let id = fid.clone();
    let c = cid.clone();
    let found = state.db(move |s| s.delete_face(kind, &c, person.as_deref(), &id)).await?;
    forget_index(state, kind, &cid);
    if found { Ok(ok_empty()) } else { Err(ApiError::persisted_face_not_found(&fid)) }
}

/// GET /{kinds}/{id}/persons/{personId}/persistedfaces/{persistedFaceId}
pub async fn get_person_face(State(state): State<Shared>, Path(p): Params) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    get_face(&state, kind, cid, Some(person_param(&p)?), face_param(&p)?).await
}

/// PATCH /{kinds}/{id}/persons/{personId}/persistedfaces/{persistedFaceId}
pub async fn update_person_face(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = group_target(&p)?;
    update_face(&state, kind, cid, Some(person_param(&p)?), face_param(&p)?, headers, body).await
}

/// DELETE /{kinds}/{id}/persons/{personId}/persistedfaces/{persistedFaceId}
pub async fn delete_person_face(State(state): State<Shared>, Path(p): Params, body: Body) -> ApiResult<Response> {
    drain(body).await;
    let (kind, cid) = group_target(&p)?;
    delete_face(&state, kind, cid, Some(person_param(&p)?), face_param(&p)?).await
}

/// GET /largefacelists/{id}/persistedfaces
pub async fn list_list_faces(
    State(state): State<Shared>,
    Path(p): Params,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (kind, cid) = large_list_target(&p)?;
    let q = Query::parse(raw.as_deref());
    let start = q.start()?;
    let top = q.top()?;
    collection_or_404(&state, kind, &cid).await?;
    let faces = state.db(move |s| s.list_faces(kind, &cid, None, start.as_deref(), top)).await?;
    ok_json(Value::Array(faces.iter().map(face_json).collect()))
}

/// GET /largefacelists/{id}/persistedfaces/{persistedFaceId}
pub async fn get_list_face(State(state): State<Shared>, Path(p): Params) -> ApiResult<Response> {
    let (kind, cid) = large_list_target(&p)?;
    get_face(&state, kind, cid, None, face_param(&p)?).await
}

/// PATCH /largefacelists/{id}/persistedfaces/{persistedFaceId}
pub async fn update_list_face(
    State(state): State<Shared>,
    Path(p): Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (kind, cid) = large_list_target(&p)?;
    update_face(&state, kind, cid, None, face_param(&p)?, headers, body).await
}

/// DELETE /{facelists,largefacelists}/{id}/persistedfaces/{persistedFaceId}
pub async fn delete_list_face(State(state): State<Shared>, Path(p): Params, body: Body) -> ApiResult<Response> {
    drain(body).await;
    let (kind, cid) = list_target(&p)?;
    delete_face(&state, kind, cid, None, face_param(&p)?).await
}
