//! The persons of a PersonGroup or LargePersonGroup: create, get, list, update, delete.

use axum::extract::State;
use axum::response::Response;

use super::collections::{self, CollectionKind, Ids};
use super::error::{ApiError, ApiResult, At};
use super::input::{Json, NoBody, Query};
use super::reply::{ok_empty, ok_json};
use super::state::Shared;
use super::wire::{self, ListQuery, NameAndUserDataContract, PersonCreated};
use crate::store::{Kind, Person};

fn person_reply(p: Person) -> wire::Person {
    wire::Person { person_id: p.person_id, name: p.name, user_data: p.user_data, persisted_face_ids: p.face_ids }
}

/// The person `pid` of group `cid`, or 404 `...NotFound` / `PersonNotFound`. One store call.
async fn find(state: &Shared, kind: Kind, cid: &str, pid: &str) -> ApiResult<Person> {
    let (id, person) = (cid.to_owned(), pid.to_owned());
    let (collection, found) = state
        .db(move |s| Ok((s.collection(kind, &id)?.is_some(), s.person(kind, &id, &person)?)))
        .await
        .map_err(|e| ApiError::from_store(e, kind, cid, Some(pid)))?;
    if !collection {
        return Err(ApiError::CollectionNotFound { kind, id: cid.into(), at: At::Route });
    }
    found.ok_or_else(|| ApiError::PersonNotFound { id: pid.into(), at: At::Route })
}

/// POST /{groups}/{id}/persons
pub async fn create<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    Json(req): Json<NameAndUserDataContract>,
) -> ApiResult<Response> {
    let (name, user_data) = req.for_create()?;
    let (kind, cid) = (ids.kind(), ids.cid);
    let person = Person { person_id: uuid::Uuid::new_v4().to_string(), name, user_data, face_ids: vec![] };
    let (id, pid) = (cid.clone(), person.person_id.clone());
    state
        .db(move |s| s.create_person(kind, &id, &person))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    ok_json(PersonCreated { person_id: pid })
}

/// GET /{groups}/{id}/persons
pub async fn list<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, q: Query) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let ListQuery { start, top } = ListQuery::read(&q)?;
    collections::find(&state, kind, &cid, At::Route).await?;
    let id = cid.clone();
    let persons = state
        .db(move |s| s.list_persons(kind, &id, start.as_deref(), top))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    ok_json(persons.into_iter().map(person_reply).collect::<Vec<_>>())
}

/// GET /{groups}/{id}/persons/{personId}
pub async fn get<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>) -> ApiResult<Response> {
    let pid = ids.person.unwrap_or_default();
    ok_json(person_reply(find(&state, K::KIND, &ids.cid, &pid).await?))
}

/// PATCH /{groups}/{id}/persons/{personId}
pub async fn update<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    Json(req): Json<NameAndUserDataContract>,
) -> ApiResult<Response> {
    let (kind, cid, pid) = (ids.kind(), ids.cid, ids.person.unwrap_or_default());
    let (name, user_data) = req.for_update()?;
    find(&state, kind, &cid, &pid).await?;
    let (id, person) = (cid.clone(), pid.clone());
    let found =
        state.db(move |s| s.update_person(kind, &id, &person, name.as_deref(), user_data.as_deref().map(Some))).await;
    let found = found.map_err(|e| ApiError::from_store(e, kind, &cid, Some(&pid)))?;
    if found { Ok(ok_empty()) } else { Err(ApiError::PersonNotFound { id: pid, at: At::Route }) }
}

/// DELETE /{groups}/{id}/persons/{personId}
pub async fn delete<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, _: NoBody) -> ApiResult<Response> {
    let (kind, cid, pid) = (ids.kind(), ids.cid, ids.person.unwrap_or_default());
    find(&state, kind, &cid, &pid).await?;
    let (id, person) = (cid.clone(), pid.clone());
    let found = state
        .db(move |s| s.delete_person(kind, &id, &person))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, Some(&pid)))?;
    // The trained index keeps answering, without this person (the store logged the deaths for
    // an index loaded later).
    state.indexes.kill_person(kind, &cid, &pid);
    if found { Ok(ok_empty()) } else { Err(ApiError::PersonNotFound { id: pid, at: At::Route }) }
}
