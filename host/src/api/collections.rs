//! The four collection kinds as types, and the collections themselves: create, get, list,
//! update, delete of a PersonGroup, LargePersonGroup, FaceList or LargeFaceList, with the
//! lookups the person, face, training and search handlers share.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;

use super::error::{ApiError, ApiResult, At};
use super::input::{self, Json, NoBody, Query};
use super::reply::{ok_empty, ok_json};
use super::state::Shared;
use super::wire::{self, CollectionQuery, ListQuery, MetaDataContract, NameAndUserDataContract};
use crate::faces::concrete_model;
use crate::store::{Collection, Kind};
use crate::time::now_ms;

/// A collection kind as a type: the operation table instantiates each handler for the kinds
/// that have the operation.
pub trait CollectionKind: Send + Sync + 'static {
    const KIND: Kind;
}

macro_rules! kinds {
    ($($name:ident => $kind:ident),*) => {$(
        #[doc = concat!("The ", stringify!($kind), " routes.")]
        #[derive(Debug)]
        pub enum $name {}
        impl CollectionKind for $name {
            const KIND: Kind = Kind::$kind;
        }
    )*};
}

kinds!(PersonGroups => PersonGroup, LargePersonGroups => LargePersonGroup, FaceLists => FaceList,
    LargeFaceLists => LargeFaceList);

/// The ids a route names: the collection's, and the person's and persisted face's where the
/// route has them, each checked (400 `BadArgument` for a malformed one).
#[derive(Debug)]
pub struct Ids<K> {
    pub cid: String,
    pub person: Option<String>,
    pub face: Option<String>,
    kind: PhantomData<K>,
}

impl<K: CollectionKind> Ids<K> {
    pub fn kind(&self) -> Kind {
        K::KIND
    }
}

impl<K: CollectionKind, S: Send + Sync> FromRequestParts<S> for Ids<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Ids<K>> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_argument(e.body_text()))?;
        let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let cid = param(K::KIND.id_key()).unwrap_or_default().to_owned();
        checked_id(K::KIND, &cid)?;
        let person = param("personId").map(|p| input::uuid(p, "Person ID")).transpose()?;
        let face = param("persistedFaceId").map(|f| input::uuid(f, "Persisted face ID")).transpose()?;
        Ok(Ids { cid, person, face, kind: PhantomData })
    }
}

/// A collection id, checked: `^[a-z0-9-_]{1,64}$`.
pub fn checked_id(kind: Kind, cid: &str) -> ApiResult<()> {
    input::collection_id(cid, kind.label())
}

/// The collection `cid` of `kind` (its id checked first), or `...NotFound` (404 when the route
/// names it, 400 when the body does).
pub async fn find(state: &Shared, kind: Kind, cid: &str, at: At) -> ApiResult<Collection> {
    checked_id(kind, cid)?;
    let id = cid.to_owned();
    let found = state
        .db(move |s| s.collection(kind, &id))
        .await
        .map_err(|e| ApiError::from_store_at(e, kind, cid, None, at))?;
    found.ok_or_else(|| ApiError::CollectionNotFound { kind, id: cid.into(), at })
}

/// The concrete model a collection's faces are embedded with.
pub fn model_of(c: &Collection) -> face_core::RecognitionModel {
    concrete_model(&c.recognition_model).unwrap_or(face_core::RecognitionModel::SFace)
}

impl NameAndUserDataContract {
    /// The name (required on create) and user data, checked.
    pub fn for_create(&self) -> ApiResult<(String, Option<String>)> {
        let name = input::name(self.name.as_deref(), true)?.unwrap_or_default();
        Ok((name, input::user_data(self.user_data.as_deref(), 16 * 1024)?))
    }

    /// The fields an update changes: at least one of them.
    pub fn for_update(&self) -> ApiResult<(Option<String>, Option<String>)> {
        let name = input::name(self.name.as_deref(), false)?;
        let user_data = input::user_data(self.user_data.as_deref(), 16 * 1024)?;
        if name.is_none() && user_data.is_none() {
            return Err(ApiError::bad_argument("Both 'name' and 'userData' are empty."));
        }
        Ok((name, user_data))
    }
}

/// A collection as its kind's get and list answer it.
fn collection_reply(c: &Collection, with_model: bool) -> wire::Collection {
    let (id, name, user_data) = (c.id.clone(), c.name.clone(), c.user_data.clone());
    let recognition_model = with_model.then(|| c.recognition_model.clone());
    match c.kind {
        Kind::PersonGroup => {
            wire::Collection::PersonGroup(wire::PersonGroup { person_group_id: id, name, user_data, recognition_model })
        }
        Kind::LargePersonGroup => wire::Collection::LargePersonGroup(wire::LargePersonGroup {
            large_person_group_id: id,
            name,
            user_data,
            recognition_model,
        }),
        Kind::FaceList => wire::Collection::FaceList(wire::FaceList {
            face_list_id: id,
            name,
            user_data,
            recognition_model,
            persisted_faces: None,
        }),
        Kind::LargeFaceList => wire::Collection::LargeFaceList(wire::LargeFaceList {
            large_face_list_id: id,
            name,
            user_data,
            recognition_model,
        }),
    }
}

/// PUT /{kinds}/{id}
pub async fn create<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    Json(req): Json<MetaDataContract>,
) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let (name, user_data) = req.contract.for_create()?;
    let recognition = input::recognition_model(req.recognition_model.as_deref())?;
    let c = Collection {
        kind,
        id: cid.clone(),
        name,
        user_data,
        recognition_model: recognition.to_owned(),
        created_ms: now_ms(),
    };
    state.db(move |s| s.create_collection(&c)).await.map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    // A collection made anew must not inherit the index of a deleted one with the same id.
    state.indexes.forget(kind, &cid);
    Ok(ok_empty())
}

/// GET /{kinds}/{id}
pub async fn get<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, q: Query) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let CollectionQuery { return_recognition_model } = CollectionQuery::read(&q)?;
    let c = find(&state, kind, &cid, At::Route).await?;
    let mut reply = collection_reply(&c, return_recognition_model);
    if let wire::Collection::FaceList(list) = &mut reply {
        let id = cid.clone();
        let faces =
            state.db(move |s| s.all_faces(kind, &id)).await.map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
        list.persisted_faces = Some(
            faces
                .into_iter()
                .map(|f| wire::PersistedFace { persisted_face_id: f.face_id, user_data: f.user_data })
                .collect(),
        );
    }
    ok_json(reply)
}

/// GET /{kinds}
pub async fn list<K: CollectionKind>(State(state): State<Shared>, q: Query) -> ApiResult<Response> {
    let kind = K::KIND;
    let CollectionQuery { return_recognition_model } = CollectionQuery::read(&q)?;
    let ListQuery { start, top } = ListQuery::read(&q)?;
    let rows = state.db(move |s| s.list_collections(kind, start.as_deref(), top)).await.map_err(ApiError::store)?;
    ok_json(rows.iter().map(|c| collection_reply(c, return_recognition_model)).collect::<Vec<_>>())
}

/// PATCH /{kinds}/{id}
pub async fn update<K: CollectionKind>(
    State(state): State<Shared>,
    ids: Ids<K>,
    Json(req): Json<NameAndUserDataContract>,
) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let (name, user_data) = req.for_update()?;
    let id = cid.clone();
    let found =
        state.db(move |s| s.update_collection(kind, &id, name.as_deref(), user_data.as_deref().map(Some))).await;
    let found = found.map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    if found { Ok(ok_empty()) } else { Err(ApiError::CollectionNotFound { kind, id: cid, at: At::Route }) }
}

/// DELETE /{kinds}/{id}
pub async fn delete<K: CollectionKind>(State(state): State<Shared>, ids: Ids<K>, _: NoBody) -> ApiResult<Response> {
    let (kind, cid) = (ids.kind(), ids.cid);
    let id = cid.clone();
    let found = state
        .db(move |s| s.delete_collection(kind, &id))
        .await
        .map_err(|e| ApiError::from_store(e, kind, &cid, None))?;
    state.indexes.forget(kind, &cid);
    if found { Ok(ok_empty()) } else { Err(ApiError::CollectionNotFound { kind, id: cid, at: At::Route }) }
}
