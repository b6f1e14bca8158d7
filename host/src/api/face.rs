//! Face operations on faceIds: verify, identify, find similar, group.

use axum::extract::State;
use axum::response::Response;
use face_core::{Embedding, IDENTICAL_CONFIDENCE, confidence_from_cosine, cosine};

use super::collections;
use super::error::{ApiError, ApiResult, At};
use super::input::{self, Json};
use super::reply::ok_json;
use super::state::Shared;
use super::wire::{
    FindSimilarRequest, GroupRequest, GroupResult, IdentifyCandidate, IdentifyRequest, IdentifyResult, SimilarFace,
    VerifyFaceToFaceRequest, VerifyFaceToPersonRequest, VerifyRequest, VerifyResult,
};
use crate::faces::CachedFace;
use crate::index::{Index, cosine_for};
use crate::store::Kind;
use crate::training::trained_index;

async fn cached(state: &Shared, id: &str, at: At) -> ApiResult<CachedFace> {
    Ok(cached_all(state, std::slice::from_ref(&id.to_owned()), at).await?.remove(0))
}

/// The faces of these faceIds, in order (from memory, or from the shared database in one
/// query); `FaceNotFound` for the first one unknown or expired.
async fn cached_all(state: &Shared, ids: &[String], at: At) -> ApiResult<Vec<CachedFace>> {
    let found = state.face_ids.get_all(ids).await.map_err(ApiError::store)?;
    ids.iter().zip(found).map(|(id, f)| f.ok_or_else(|| ApiError::FaceNotFound { id: id.clone(), at })).collect()
}

fn incompatible(a: &str, b: &str) -> ApiError {
    ApiError::bad_argument(format!(
        "'recognitionModel' is incompatible: {a} and {b} faces cannot be compared; detect both with the same model."
    ))
}

/// POST /verify: face to face, or face to person.
pub async fn verify(State(state): State<Shared>, Json(req): Json<VerifyRequest>) -> ApiResult<Response> {
    let confidence = match req {
        VerifyRequest::FaceToFace(VerifyFaceToFaceRequest { face_id1: a, face_id2: b }) => {
            // Verify answers 404 for an unknown faceId, though the ids are in the body (as before).
            let mut both = cached_all(&state, &[a.clone(), b.clone()], At::Route).await?.into_iter();
            let (Some(fa), Some(fb)) = (both.next(), both.next()) else {
                return Err(ApiError::internal("two faceIds looked up, fewer found"));
            };
            if fa.recognition != fb.recognition {
                return Err(incompatible(fa.recognition, fb.recognition));
            }
            confidence_from_cosine(fa.model, cosine(&fa.embedding, &fb.embedding))
        }
        VerifyRequest::FaceToPerson(VerifyFaceToPersonRequest {
            face_id,
            person_group_id,
            large_person_group_id,
            person_id,
        }) => {
            let (kind, cid) = group_reference(person_group_id.as_deref(), large_person_group_id.as_deref())?;
            let f = cached(&state, &face_id, At::Route).await?;
            let person = input::uuid(&person_id, "Person ID")?;
            let collection = collections::find(&state, kind, &cid, At::Body).await?;
            if collection.recognition_model != f.recognition {
                return Err(incompatible(f.recognition, &collection.recognition_model));
            }
            let (id, pid) = (cid.clone(), person.clone());
            let faces = state
                .db(move |s| match s.person(kind, &id, &pid)? {
                    None => Ok(None),
                    Some(_) => Ok(Some(s.list_faces(kind, &id, Some(&pid), None, kind.max_faces() as usize)?)),
                })
                .await
                .map_err(|e| ApiError::from_store_at(e, kind, &cid, Some(&person), At::Body))?
                .ok_or(ApiError::PersonNotFound { id: person, at: At::Body })?;
            faces
                .iter()
                .filter(|x| x.model == f.model.id())
                .map(|x| confidence_from_cosine(f.model, cosine(&f.embedding, &x.embedding)))
                .fold(0.0f32, f32::max)
        }
    };
    ok_json(VerifyResult { is_identical: confidence >= IDENTICAL_CONFIDENCE, confidence: round5(confidence) })
}

fn round5(v: f32) -> f64 {
    (f64::from(v) * 1e5).round() / 1e5
}

/// Exactly one of personGroupId and largePersonGroupId.
fn group_reference(pg: Option<&str>, lpg: Option<&str>) -> ApiResult<(Kind, String)> {
    match (pg.filter(|s| !s.is_empty()), lpg.filter(|s| !s.is_empty())) {
        (Some(_), Some(_)) => Err(ApiError::GroupReference { both: true }),
        (None, None) => Err(ApiError::GroupReference { both: false }),
        (Some(id), None) => collections::checked_id(Kind::PersonGroup, id).map(|()| (Kind::PersonGroup, id.to_owned())),
        (None, Some(id)) => {
            collections::checked_id(Kind::LargePersonGroup, id).map(|()| (Kind::LargePersonGroup, id.to_owned()))
        }
    }
}

/// POST /identify: the persons of a trained group most like each face.
pub async fn identify(State(state): State<Shared>, Json(req): Json<IdentifyRequest>) -> ApiResult<Response> {
    let face_ids = req.face_ids.unwrap_or_default();
    if face_ids.is_empty() || face_ids.len() > 10 {
        return Err(ApiError::bad_argument("The length of faceIds is not in a valid range (1 to 10)."));
    }
    let max = req.max_num_of_candidates_returned.unwrap_or(1);
    if !(1..=5).contains(&max) {
        return Err(ApiError::bad_argument("The argument maxNumOfCandidatesReturned is not valid (1 to 5)."));
    }
    let threshold = match req.confidence_threshold {
        None => IDENTICAL_CONFIDENCE,
        Some(t) if (0.0..=1.0).contains(&t) => t as f32,
        Some(_) => return Err(ApiError::bad_argument("The argument confidenceThreshold is not valid (0 to 1).")),
    };
    let (kind, cid) = group_reference(req.person_group_id.as_deref(), req.large_person_group_id.as_deref())?;
    // With the group's index in memory, the search (whose exact scores are read from the store)
    // runs beside the read of the group's row, so a shared database costs one round trip on the
    // answer's path instead of two. The answer and its errors are the same, in the same order:
    // the row is checked first, and a search it rules out is dropped.
    let early = async {
        let found = cached_all(&state, &face_ids, At::Body).await?;
        let queries: Vec<std::sync::Arc<[f32]>> = found.iter().map(|f| f.embedding.clone()).collect();
        let hits = match state.indexes.get(kind, &cid) {
            Some(index) if found.iter().all(|f| f.model == index.model) => {
                Some(search(&state, kind, &cid, index, queries.clone(), threshold, max as usize).await)
            }
            _ => None,
        };
        Ok::<_, ApiError>((found, queries, hits))
    };
    let (collection, early) = tokio::join!(collections::find(&state, kind, &cid, At::Body), early);
    let collection = collection?;
    let (found, queries, hits) = early?;
    let faces: Vec<(String, CachedFace)> = face_ids.iter().cloned().zip(found).collect();
    if let Some((_, f)) = faces.iter().find(|(_, f)| f.recognition != collection.recognition_model) {
        return Err(incompatible(f.recognition, &collection.recognition_model));
    }
    let found = match hits {
        Some(hits) => hits?,
        None => {
            let index = trained_index(&state, kind, &cid, &collection).await?.ok_or(ApiError::NotTrained {
                kind,
                id: cid.clone(),
                at: At::Body,
            })?;
            search(&state, kind, &cid, index, queries, threshold, max as usize).await?
        }
    };
    let results = faces
        .into_iter()
        .zip(found)
        .map(|((id, _), hits)| {
            let candidates = hits
                .into_iter()
                .map(|h| IdentifyCandidate {
                    person_id: h.person.unwrap_or_default(),
                    confidence: round5(h.confidence),
                })
                .collect();
            IdentifyResult { face_id: id, candidates }
        })
        .collect::<Vec<_>>();
    ok_json(results)
}

/// A row's (person, face) ids.
type RowIds = (Option<String>, String);

/// One answer of [`search`]: a person of a group (with its best face) or a face of a list.
struct Hit {
    person: Option<String>,
    face: String,
    confidence: f32,
}

/// The best `k` persons of a group (or faces of a list) for each query at or above
/// `min_confidence`, best first, with exact confidences: the int8 index picks the candidates
/// (every one that could be in the answer, see `crate::index`), and their stored embeddings
/// score them.
async fn search(
    state: &Shared,
    kind: Kind,
    cid: &str,
    index: std::sync::Arc<Index>,
    queries: Vec<std::sync::Arc<[f32]>>,
    min_confidence: f32,
    k: usize,
) -> ApiResult<Vec<Vec<Hit>>> {
    let model = index.model;
    let (ix, qs) = (index.clone(), queries.clone());
    // Per query, its candidate units, each as its live rows' (person, face) ids.
    let picked: Vec<Vec<Vec<RowIds>>> = state
        .compute(move || {
            let refs: Vec<&[f32]> = qs.iter().map(|q| &q[..]).collect();
            ix.candidates(&refs, cosine_for(model, min_confidence), k)
                .into_iter()
                .map(|units| {
                    units.into_iter().map(|u| ix.rows_of(u).into_iter().map(|r| ix.ids(r)).collect()).collect()
                })
                .collect()
        })
        .await?;
    let mut wanted: Vec<String> = picked.iter().flatten().flatten().map(|(_, f)| f.clone()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let id = cid.to_owned();
    let exact: std::collections::HashMap<String, Vec<f32>> = state
        .db(move |s| {
            let stored = s.embeddings(kind, &id, &wanted)?;
            Ok(wanted.into_iter().zip(stored).filter_map(|(id, e)| e.map(|e| (id, e))).collect())
        })
        .await
        .map_err(|e| ApiError::from_store_at(e, kind, cid, None, At::Body))?;
    state
        .compute(move || {
            picked
                .into_iter()
                .zip(&queries)
                .map(|(units, q)| {
                    let mut hits: Vec<Hit> = units
                        .into_iter()
                        .filter_map(|rows| {
                            rows.into_iter()
                                .filter_map(|(person, face)| {
                                    let e = exact.get(&face)?;
                                    let confidence = confidence_from_cosine(model, cosine(q, e));
                                    Some(Hit { person, face, confidence })
                                })
                                .max_by(|a, b| a.confidence.total_cmp(&b.confidence).then_with(|| b.face.cmp(&a.face)))
                        })
                        .filter(|h| h.confidence >= min_confidence)
                        .collect();
                    let key = |h: &Hit| h.person.clone().unwrap_or_else(|| h.face.clone());
                    hits.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| key(a).cmp(&key(b))));
                    hits.truncate(k);
                    hits
                })
                .collect()
        })
        .await
}

/// What find-similar searches: the given faceIds' vectors or a FaceList's faces (at most 1,000,
/// scored one by one), or a LargeFaceList's trained index.
enum Candidates {
    Faces(Vec<(String, std::sync::Arc<[f32]>)>),
    List(Vec<crate::store::StoredFace>),
    Index(Kind, String, std::sync::Arc<Index>),
}

/// Which id a find-similar result names: a faceId of `faceIds`, or a list's persistedFaceId.
#[derive(Debug, Clone, Copy)]
enum Key {
    FaceId,
    PersistedFaceId,
}

/// POST /findsimilars: faces like the query face among faceIds, a FaceList or a LargeFaceList.
pub async fn find_similar(State(state): State<Shared>, Json(req): Json<FindSimilarRequest>) -> ApiResult<Response> {
    let face_id = req.face_id.ok_or_else(|| ApiError::bad_argument("Request body is invalid: faceId is required."))?;
    let max = req.max_num_of_candidates_returned.unwrap_or(20);
    if !(1..=1000).contains(&max) {
        return Err(ApiError::bad_argument("The argument maxNumOfCandidatesReturned is not valid (1 to 1000)."));
    }
    let match_face = match req.mode.as_deref() {
        None | Some("") => false,
        Some(m) if m.eq_ignore_ascii_case("matchPerson") => false,
        Some(m) if m.eq_ignore_ascii_case("matchFace") => true,
        Some(_) => return Err(ApiError::bad_argument("Mode is invalid; use matchPerson or matchFace.")),
    };
    let given = [req.face_list_id.is_some(), req.large_face_list_id.is_some(), req.face_ids.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => return Err(ApiError::bad_argument("LargeFaceListId, faceListId and faceIds are all null.")),
        1 => {}
        _ => return Err(ApiError::bad_argument("2 or more of largeFaceListId, faceListId and faceIds are not null.")),
    }
    let query = cached(&state, &face_id, At::Body).await?;
    // The candidates: faceIds with their vectors, or a list's index.
    let candidates = if let Some(ids) = req.face_ids {
        if ids.len() > 1000 {
            return Err(ApiError::bad_argument("The length of faceIds is not in a valid range (at most 1000)."));
        }
        let mut faces = Vec::with_capacity(ids.len());
        let found = cached_all(&state, &ids, At::Body).await?;
        for (id, c) in ids.into_iter().zip(found) {
            if c.recognition != query.recognition {
                return Err(incompatible(query.recognition, c.recognition));
            }
            faces.push((id, c.embedding));
        }
        Candidates::Faces(faces)
    } else {
        let (kind, cid) = match (req.face_list_id, req.large_face_list_id) {
            (Some(id), _) => (Kind::FaceList, id),
            (_, Some(id)) => (Kind::LargeFaceList, id),
            _ => unreachable!("exactly one reference was checked above"),
        };
        let collection = collections::find(&state, kind, &cid, At::Body).await?;
        if collection.recognition_model != query.recognition {
            return Err(incompatible(query.recognition, &collection.recognition_model));
        }
        if kind == Kind::FaceList {
            let id = cid.clone();
            let faces = state
                .db(move |s| s.all_faces(kind, &id))
                .await
                .map_err(|e| ApiError::from_store_at(e, kind, &cid, None, At::Body))?;
            if faces.is_empty() {
                return Err(ApiError::FaceListNotReady);
            }
            Candidates::List(faces)
        } else {
            let index = trained_index(&state, kind, &cid, &collection).await?.ok_or(ApiError::NotTrained {
                kind,
                id: cid.clone(),
                at: At::Body,
            })?;
            Candidates::Index(kind, cid, index)
        }
    };
    let min_confidence = if match_face { 0.0 } else { IDENTICAL_CONFIDENCE };
    let hits: Vec<(Key, String, f32)> = match candidates {
        Candidates::Index(kind, cid, index) => {
            search(&state, kind, &cid, index, vec![query.embedding.clone()], min_confidence, max as usize)
                .await?
                .pop()
                .unwrap_or_default()
                .into_iter()
                .map(|h| (Key::PersistedFaceId, h.face, h.confidence))
                .collect()
        }
        scored => {
            state
                .compute(move || {
                    // (which id, id, cosine) for every candidate.
                    let scored: Vec<(Key, String, f32)> = match scored {
                        Candidates::Faces(faces) => {
                            faces.into_iter().map(|(id, e)| (Key::FaceId, id, cosine(&query.embedding, &e))).collect()
                        }
                        Candidates::List(faces) => faces
                            .into_iter()
                            .filter(|f| f.model == query.model.id())
                            .map(|f| (Key::PersistedFaceId, f.face_id, cosine(&query.embedding, &f.embedding)))
                            .collect(),
                        Candidates::Index(..) => Vec::new(),
                    };
                    let mut hits: Vec<(Key, String, f32)> = scored
                        .into_iter()
                        .map(|(k, id, cos)| (k, id, confidence_from_cosine(query.model, cos)))
                        .filter(|(_, _, c)| *c >= min_confidence)
                        .collect();
                    let keep = (max as usize).min(hits.len());
                    if keep > 0 && keep < hits.len() {
                        hits.select_nth_unstable_by(keep - 1, |a, b| b.2.total_cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
                        hits.truncate(keep);
                    }
                    hits.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
                    hits
                })
                .await?
        }
    };
    let similar = hits.into_iter().map(|(k, id, c)| {
        let (face_id, persisted_face_id) = match k {
            Key::FaceId => (Some(id), None),
            Key::PersistedFaceId => (None, Some(id)),
        };
        SimilarFace { face_id, persisted_face_id, confidence: round5(c) }
    });
    ok_json(similar.collect::<Vec<_>>())
}

/// POST /group: faces divided by identity, plus the faces like no other.
pub async fn group(State(state): State<Shared>, Json(req): Json<GroupRequest>) -> ApiResult<Response> {
    let ids = req.face_ids.unwrap_or_default();
    if ids.len() < 2 || ids.len() > face_core::MAX_GROUP_FACES {
        return Err(ApiError::bad_argument("The length of faceIds is not in a valid range (2 to 1000)."));
    }
    let faces: Vec<CachedFace> = cached_all(&state, &ids, At::Body).await?;
    if let Some(f) = faces.iter().find(|f| f.recognition != faces[0].recognition) {
        return Err(incompatible(faces[0].recognition, f.recognition));
    }
    let embeddings: Vec<Embedding> =
        faces.iter().map(|f| Embedding { model: f.model, vector: f.embedding.to_vec() }).collect();
    let grouping = state
        .compute(move || face_core::group(&embeddings))
        .await?
        .map_err(|e| ApiError::bad_argument(e.to_string()))?;
    let name = |i: &usize| ids[*i].clone();
    ok_json(GroupResult {
        groups: grouping.groups.iter().map(|g| g.iter().map(name).collect()).collect(),
        messy_group: (!grouping.messy_group.is_empty()).then(|| grouping.messy_group.iter().map(name).collect()),
    })
}
