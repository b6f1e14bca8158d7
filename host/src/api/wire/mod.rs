//! The Face API's wire format: every request body, query and answer of the 69 operations as a
//! type, named as Face.json's definitions where the spec has one (the answers of a create or an
//! add, `PersonCreated` and `PersistedFaceAdded`, are the spec's types with the id alone), with
//! their fields in the order the service writes them. Handlers read bodies into and answer with
//! these types, and the OpenAPI document takes its schemas from them (`utoipa`). The query types'
//! `read` looks their parameters up by name: `query.rs` keeps each name beside its field.
//!
//! Request bodies mostly keep the spec's required fields as `Option`s: a missing one is refused
//! by the handler with the Face API's own error and message, not by serde's; the schema still
//! marks them required (`#[schema(required)]`). The two verify bodies are told apart by which
//! fields are present (`VerifyRequest`'s `try_from`), which refuses a body that is neither.

mod face;
mod query;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::error::{APIError, ErrorDetail};
pub use super::input::ImageUrl;
pub use face::{
    Accessory, Blur, Coordinate, DetectedFace, Emotion, Exposure, FaceAttributes, FaceLandmarks, FaceRectangle,
    FacialHair, Hair, HairColor, HeadPose, Makeup, Noise, Occlusion,
};
pub use query::{ATTRIBUTES, AddFaceQuery, CollectionQuery, DetectQuery, ListQuery, SnapshotListQuery};

/// `name` and `userData`: the body of an update, and of a person's create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameAndUserDataContract {
    /// 1 to 128 characters; required on create.
    pub name: Option<String>,
    /// At most 16 KB.
    pub user_data: Option<String>,
}

/// The body of a collection's create: `name`, `userData` and the recognition model its faces
/// are embedded with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaDataContract {
    #[serde(flatten)]
    pub contract: NameAndUserDataContract,
    /// recognition_01 (default), recognition_02 or recognition_03.
    pub recognition_model: Option<String>,
}

/// `POST /verify`: two faceIds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyFaceToFaceRequest {
    pub face_id1: String,
    pub face_id2: String,
}

/// `POST /verify`: a faceId and a person of a PersonGroup or LargePersonGroup.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyFaceToPersonRequest {
    pub face_id: String,
    pub person_group_id: Option<String>,
    pub large_person_group_id: Option<String>,
    pub person_id: String,
}

/// The two bodies `POST /verify` takes, told apart by their fields.
#[derive(Debug, Deserialize)]
#[serde(try_from = "VerifyFields")]
pub enum VerifyRequest {
    FaceToFace(VerifyFaceToFaceRequest),
    FaceToPerson(VerifyFaceToPersonRequest),
}

/// Every field either verify body may have, read before the body is told apart.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyFields {
    face_id1: Option<String>,
    face_id2: Option<String>,
    face_id: Option<String>,
    person_id: Option<String>,
    person_group_id: Option<String>,
    large_person_group_id: Option<String>,
}

impl TryFrom<VerifyFields> for VerifyRequest {
    type Error = &'static str;

    fn try_from(f: VerifyFields) -> Result<VerifyRequest, &'static str> {
        match f {
            VerifyFields { face_id1: Some(face_id1), face_id2: Some(face_id2), .. } => {
                Ok(VerifyRequest::FaceToFace(VerifyFaceToFaceRequest { face_id1, face_id2 }))
            }
            VerifyFields { face_id: Some(face_id), person_id: Some(person_id), .. } => {
                Ok(VerifyRequest::FaceToPerson(VerifyFaceToPersonRequest {
                    face_id,
                    person_group_id: f.person_group_id,
                    large_person_group_id: f.large_person_group_id,
                    person_id,
                }))
            }
            _ => Err("give faceId1 and faceId2, or faceId, personId and personGroupId (or largePersonGroupId)"),
        }
    }
}

/// `POST /identify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentifyRequest {
    /// 1 to 10 faceIds.
    #[schema(required)]
    pub face_ids: Option<Vec<String>>,
    pub person_group_id: Option<String>,
    pub large_person_group_id: Option<String>,
    /// 1 to 5; default 1.
    pub max_num_of_candidates_returned: Option<i64>,
    /// 0 to 1.
    pub confidence_threshold: Option<f64>,
}

/// `POST /findsimilars`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindSimilarRequest {
    #[schema(required)]
    pub face_id: Option<String>,
    pub face_list_id: Option<String>,
    pub large_face_list_id: Option<String>,
    /// At most 1000 faceIds.
    pub face_ids: Option<Vec<String>>,
    /// 1 to 1000; default 20.
    pub max_num_of_candidates_returned: Option<i64>,
    /// matchPerson (default) or matchFace.
    pub mode: Option<String>,
}

/// `POST /group`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRequest {
    /// 2 to 1000 faceIds.
    #[schema(required)]
    pub face_ids: Option<Vec<String>>,
}

/// `PATCH .../persistedfaces/{persistedFaceId}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFaceRequest {
    /// At most 1 KB.
    pub user_data: Option<String>,
}

/// `POST /snapshots`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TakeSnapshotRequest {
    /// FaceList, LargeFaceList, LargePersonGroup or PersonGroup.
    #[serde(rename = "type")]
    #[schema(required)]
    pub kind: Option<String>,
    #[schema(required)]
    pub object_id: Option<String>,
    /// The subscription ids (UUIDs) that may apply the snapshot.
    #[schema(required)]
    pub apply_scope: Option<Vec<String>>,
    pub user_data: Option<String>,
}

/// `PATCH /snapshots/{snapshotId}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSnapshotRequest {
    pub apply_scope: Option<Vec<String>>,
    pub user_data: Option<String>,
}

/// `POST /snapshots/{snapshotId}/apply`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplySnapshotRequest {
    #[schema(required)]
    pub object_id: Option<String>,
    /// CreateNew, the only mode.
    pub mode: Option<String>,
}

/// A PersonGroup, as get and list answer it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonGroup {
    pub person_group_id: String,
    pub name: String,
    pub user_data: Option<String>,
    /// Only with `returnRecognitionModel=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_model: Option<String>,
}

/// A LargePersonGroup, as get and list answer it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LargePersonGroup {
    pub large_person_group_id: String,
    pub name: String,
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_model: Option<String>,
}

/// A FaceList; get answers it with its faces, list without.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaceList {
    pub face_list_id: String,
    pub name: String,
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persisted_faces: Option<Vec<PersistedFace>>,
}

/// A LargeFaceList, as get and list answer it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LargeFaceList {
    pub large_face_list_id: String,
    pub name: String,
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_model: Option<String>,
}

/// A collection of any kind, as its kind's get and list answer it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Collection {
    PersonGroup(PersonGroup),
    LargePersonGroup(LargePersonGroup),
    FaceList(FaceList),
    LargeFaceList(LargeFaceList),
}

/// A person: get and list answer it whole, create with its id alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub person_id: String,
    pub name: String,
    pub user_data: Option<String>,
    pub persisted_face_ids: Vec<String>,
}

/// A person's create: the new person's id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonCreated {
    pub person_id: String,
}

/// A persisted face: get and list answer it whole, add with its id alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistedFace {
    pub persisted_face_id: String,
    pub user_data: Option<String>,
}

/// A face's add: the new face's id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistedFaceAdded {
    pub persisted_face_id: String,
}

/// `POST /verify`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    pub is_identical: bool,
    /// 0 to 1.
    pub confidence: f64,
}

/// One face of `POST /identify`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentifyResult {
    pub face_id: String,
    pub candidates: Vec<IdentifyCandidate>,
}

/// A person like an identified face.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentifyCandidate {
    pub person_id: String,
    pub confidence: f64,
}

/// One face of `POST /findsimilars`'s answer: a faceId (among `faceIds`) or a persistedFaceId
/// (of a list).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilarFace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persisted_face_id: Option<String>,
    pub confidence: f64,
}

/// `POST /group`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupResult {
    pub groups: Vec<Vec<String>>,
    /// The faces like no other; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messy_group: Option<Vec<String>>,
}

/// A collection's training status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingStatus {
    /// nonstarted, running, succeeded or failed.
    pub status: String,
    pub created_date_time: String,
    pub last_action_date_time: String,
    pub last_successful_training_date_time: Option<String>,
    pub message: Option<String>,
}

/// A snapshot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: String,
    pub account: String,
    /// FaceList, LargeFaceList, LargePersonGroup or PersonGroup.
    #[serde(rename = "type")]
    pub kind: String,
    pub apply_scope: Vec<String>,
    pub user_data: Option<String>,
    pub created_time: String,
    pub last_update_time: String,
}

/// A snapshot operation's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// notstarted, running, succeeded or failed.
    pub status: String,
    pub created_time: String,
    pub last_action_time: String,
    pub resource_location: Option<String>,
    pub message: Option<String>,
}
