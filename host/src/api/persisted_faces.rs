//! Persisted faces: added to a person of a group or to a list (detected and embedded with the
//! collection's model), read, updated, listed and deleted.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::collections::{self, CollectionKind, Ids, model_of};
use super::error::{ApiError, ApiResult, At};
use super::input::{self, Json, NoBody, Query};
use super::reply::{ok_empty, ok_json};
use super::state::Shared;
use super::wire::{AddFaceQuery, ListQuery, PersistedFace, PersistedFaceAdded, UpdateFaceRequest};
use crate::engine::guest;
use crate::faces::guest_model;
use crate::store::{Collection, StoredFace};

/// The collection a face route names, checking the person too when there is one: 404
/// `...NotFound` or `PersonNotFound` otherwise. One store call.
async fn owner<K: CollectionKind>(state: &Shared, ids: &Ids<K>) -> ApiResult<Collection> {
    let (kind, id, pid) = (ids.kind(), ids.cid.clone(), ids.person.clone());
    let (collection, person_found) = state
        .db(move |s| {
            let c = s.collection(kind, &id)?;
            let found = match (&c, &pid) {
                (Some(_), Some(pid)) => s.person(kind, &id, pid)?.is_some(),
                _ => true,
            };
            Ok((c, found))
        })
        .await
        .map_err(|e| ApiError::from_store(e, ids.kind(), &ids.cid, ids.person.as_deref()))?;
    let collection =
        collection.ok_or_else(|| ApiError::CollectionNotFound { kind, id: ids.cid.clone(), at: At::Route })?;
    if !person_found {
        return Err(ApiError::PersonNotFound { id: ids.person.clone().unwrap_or_default(), at: At::Route });
    }
    Ok(collection)
}

fn face_reply(f: StoredFace) -> PersistedFace {
    PersistedFace { persisted_face_id: f.face_id, user_data: f.user_data }
}

/// POST /{groups}/{id}/persons/{personId}/persistedfaces and /{lists}/{id}/persistedfaces:
/// detects the one face to persist (or the face at targetFace) and embeds it with the
/// collection's model.
pub async fn add<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    q: Query,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let AddFaceQuery { user_data, target_face: target, detection_model: detection } = AddFaceQuery::read(&q)?;
    let collection = owner(&state, &ids).await?;
    let image = input::image(&state, &headers, body).await?;
    let model = model_of(&collection);
    let (image, admission) = state.admit_image(image)?;
    let face = match target {
        Some([left, top, width, height]) => {
            let rect = guest::Rect { left: left as f32, top: top as f32, width: width as f32, height: height as f32 };
            state.engine.embed(image, rect, guest_model(model)).await?
        }
        None => {
            let options = guest::DetectOptions {
                min_score: input::min_score(detection),
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
    drop(admission);
    let embedding = face.embedding.ok_or_else(|| ApiError::internal("the engine returned no embedding"))?;
    let stored = StoredFace {
        face_id: uuid::Uuid::new_v4().to_string(),
        person_id: ids.person.clone(),
        user_data,
        model: model.id().to_owned(),
        embedding: embedding.vector,
    };
    let face_id = stored.face_id.clone();
    let (kind, cid, person) = (ids.kind(), ids.cid, ids.person);
    let id = cid.clone();
    state
        .db(move |s| s.add_face(kind, &id, &stored))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, person.as_deref()))?;
    ok_json(PersistedFaceAdded { persisted_face_id: face_id })
}

/// GET .../persistedfaces/{persistedFaceId}
pub async fn get<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>) -> ApiResult<Response> {
    owner(&state, &ids).await?;
    let (kind, cid, person, fid) = (ids.kind(), ids.cid, ids.person, ids.face.unwrap_or_default());
    let id = fid.clone();
    let (c, p) = (cid.clone(), person.clone());
    let face = state
        .db(move |s| s.face(kind, &c, p.as_deref(), &id))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, person.as_deref()))?
        .ok_or(ApiError::PersistedFaceNotFound(fid))?;
    ok_json(face_reply(face))
}

/// PATCH .../persistedfaces/{persistedFaceId}
pub async fn update<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    Json(req): Json<UpdateFaceRequest>,
) -> ApiResult<Response> {
    let user_data = input::user_data(req.user_data.as_deref(), 1024)?;
    owner(&state, &ids).await?;
    let (kind, cid, person, fid) = (ids.kind(), ids.cid, ids.person, ids.face.unwrap_or_default());
    let id = fid.clone();
    let (c, p) = (cid.clone(), person.clone());
    let found = state
        .db(move |s| s.update_face(kind, &c, p.as_deref(), &id, user_data.as_deref()))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, person.as_deref()))?;
    if found { Ok(ok_empty()) } else { Err(ApiError::PersistedFaceNotFound(fid)) }
}

/// DELETE .../persistedfaces/{persistedFaceId}
pub async fn delete<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, _: NoBody) -> ApiResult<Response> {
    owner(&state, &ids).await?;
    let (kind, cid, person, fid) = (ids.kind(), ids.cid, ids.person, ids.face.unwrap_or_default());
    let (id, c, p) = (fid.clone(), cid.clone(), person.clone());
    let found = state
        .db(move |s| s.delete_face(kind, &c, p.as_deref(), &id))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, person.as_deref()))?;
    state.indexes.kill_face(kind, &cid, person.as_deref(), &fid);
    if found { Ok(ok_empty()) } else { Err(ApiError::PersistedFaceNotFound(fid)) }
}

/// GET /largefacelists/{id}/persistedfaces
pub async fn list<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, q: Query) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let ListQuery { start, top } = ListQuery::read(&q)?;
    collections::find(&state, kind, &cid, At::Route).await?;
    let id = cid.clone();
    let faces = state
        .db(move |s| s.list_faces(kind, &id, None, start.as_deref(), top))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    ok_json(faces.into_iter().map(face_reply).collect::<Vec<_>>())
}
