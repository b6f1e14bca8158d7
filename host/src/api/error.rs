//! The Face API error: one closed enum whose variants are the Face error codes, each with its
//! HTTP status; the response is `{"error": {"code", "message"}}`. Store and engine failures are
//! mapped here once. An internal failure's detail goes to the log with the request id, and the
//! client gets the id, never the detail.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::billing::ApiStatus;
use crate::engine::{CallError, guest};
use crate::store::{Kind, StoreError};

/// Where the request named the thing it refers to: a missing one in the route is 404, a missing
/// one named in the body or query is 400 (the Face API's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Route,
    Body,
}

impl At {
    fn status(self) -> StatusCode {
        match self {
            At::Route => StatusCode::NOT_FOUND,
            At::Body => StatusCode::BAD_REQUEST,
        }
    }
}

/// Every error this API answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400 `BadArgument`: a parameter or body field is missing, malformed or out of range.
    BadArgument(String),
    /// 415 `BadArgument`: a media type the operation does not take.
    UnsupportedMediaType(String),
    /// 400 `InvalidImage`: undecodable, or no usable face.
    InvalidImage(String),
    /// 400 `InvalidImageSize`: bytes or dimensions out of the limits.
    InvalidImageSize(String),
    /// 400 `InvalidURL`: the image URL is bad or its download failed.
    InvalidUrl(String),
    /// `FaceNotFound`: a faceId unknown or expired.
    FaceNotFound { id: String, at: At },
    /// `PersonGroupNotFound`, `LargeFaceListNotFound`, ...
    CollectionNotFound { kind: Kind, id: String, at: At },
    /// `PersonNotFound`.
    PersonNotFound { id: String, at: At },
    /// 404 `PersistedFaceNotFound`.
    PersistedFaceNotFound(String),
    /// 404 `SnapshotNotFound`.
    SnapshotNotFound(String),
    /// 404 `OperationNotFound`.
    OperationNotFound(String),
    /// `PersonGroupNotTrained`, ...: no successful training yet.
    NotTrained { kind: Kind, id: String, at: At },
    /// 400 `FaceListNotReady`: find-similar on an empty face list.
    FaceListNotReady,
    /// 400: both or neither of personGroupId and largePersonGroupId.
    GroupReference { both: bool },
    /// 409 `PersonGroupExists`, ...
    Exists { kind: Kind, id: String },
    /// 403 `QuotaExceeded`: a collection is full.
    QuotaExceeded(String),
    /// 401: no or a wrong subscription key.
    Unauthorized,
    /// Billing refuses queries (the meter said so, or has been unreachable past the grace period).
    Billing { status: ApiStatus, message: String, retry_after: u64 },
    /// 404 `NotFound`: no operation has this route.
    RouteNotFound,
    /// 405 `MethodNotAllowed`.
    MethodNotAllowed,
    /// 429 `RateLimitExceeded`: this many requests already hold or wait for the face engine.
    RateLimitExceeded { waiting: usize },
    /// 429 `RateLimitExceeded`: the request needs more bytes than the memory budget has left.
    MemoryBudget { needed: usize, held: usize, budget: usize },
    /// 408 `OperationTimeOut`.
    Timeout(String),
    /// 503 `ServiceUnavailable`, with Retry-After: the face engine is away.
    Unavailable { detail: String, retry_after: u64 },
    /// 503 `ServiceUnavailable`, with Retry-After: the face database cannot be reached (it is
    /// restarting, failing over, or the network to it is down).
    DatabaseUnavailable { detail: String, retry_after: u64 },
    /// 500 `InternalServerError`: the detail is logged with the request id, never sent.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_argument(message: impl Into<String>) -> ApiError {
        ApiError::BadArgument(message.into())
    }

    pub fn invalid_image(message: impl Into<String>) -> ApiError {
        ApiError::InvalidImage(message.into())
    }

    pub fn invalid_image_size(message: impl Into<String>) -> ApiError {
        ApiError::InvalidImageSize(message.into())
    }

    pub fn invalid_url(message: impl Into<String>) -> ApiError {
        ApiError::InvalidUrl(message.into())
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::Internal(detail.into())
    }

    /// A body-read deadline passed.
    pub fn body_timeout(limit: Duration) -> ApiError {
        ApiError::Timeout(format!("Request Timeout: the request body did not arrive within {} s.", limit.as_secs()))
    }

    pub fn status(&self) -> StatusCode {
        use ApiError as E;
        match self {
            E::BadArgument(_)
            | E::InvalidImage(_)
            | E::InvalidImageSize(_)
            | E::InvalidUrl(_)
            | E::FaceListNotReady
            | E::GroupReference { .. } => StatusCode::BAD_REQUEST,
            E::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::FaceNotFound { at, .. }
            | E::CollectionNotFound { at, .. }
            | E::PersonNotFound { at, .. }
            | E::NotTrained { at, .. } => at.status(),
            E::PersistedFaceNotFound(_) | E::SnapshotNotFound(_) | E::OperationNotFound(_) | E::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            E::Exists { .. } => StatusCode::CONFLICT,
            E::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            E::Unauthorized => StatusCode::UNAUTHORIZED,
            E::Billing { status: ApiStatus::Invalid, .. } => StatusCode::UNAUTHORIZED,
            E::Billing { status: ApiStatus::OutOfQuota, .. } => StatusCode::FORBIDDEN,
            E::Billing { .. } | E::Unavailable { .. } | E::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            E::RateLimitExceeded { .. } | E::MemoryBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Face API's `error.code`.
    pub fn code(&self) -> String {
        use ApiError as E;
        let code = match self {
            E::BadArgument(_) | E::UnsupportedMediaType(_) => "BadArgument",
            E::InvalidImage(_) => "InvalidImage",
            E::InvalidImageSize(_) => "InvalidImageSize",
            E::InvalidUrl(_) => "InvalidURL",
            E::FaceNotFound { .. } => "FaceNotFound",
            E::CollectionNotFound { kind, .. } => return format!("{}NotFound", kind.name()),
            E::PersonNotFound { .. } => "PersonNotFound",
            E::PersistedFaceNotFound(_) => "PersistedFaceNotFound",
            E::SnapshotNotFound(_) => "SnapshotNotFound",
            E::OperationNotFound(_) => "OperationNotFound",
            E::NotTrained { kind, .. } => return format!("{}NotTrained", kind.name()),
            E::FaceListNotReady => "FaceListNotReady",
            E::GroupReference { both: true } => "PersonGroupIdAndLargePersonGroupIdBothNotNull",
            E::GroupReference { both: false } => "PersonGroupIdAndLargePersonGroupIdBothNull",
            E::Exists { kind, .. } => return format!("{}Exists", kind.name()),
            E::QuotaExceeded(_) | E::Billing { status: ApiStatus::OutOfQuota, .. } => "QuotaExceeded",
            E::Unauthorized | E::Billing { status: ApiStatus::Invalid, .. } => "401",
            E::Billing { status: ApiStatus::BillingEndpointBusy, .. } => "BillingEndpointBusy",
            E::Billing { .. } => "BillingEndpointUnreachable",
            E::RouteNotFound => "NotFound",
            E::MethodNotAllowed => "MethodNotAllowed",
            E::RateLimitExceeded { .. } | E::MemoryBudget { .. } => "RateLimitExceeded",
            E::Timeout(_) => "OperationTimeOut",
            E::Unavailable { .. } | E::DatabaseUnavailable { .. } => "ServiceUnavailable",
            E::Internal(_) => "InternalServerError",
        };
        code.to_owned()
    }

    /// The message sent: what went wrong and what to do.
    pub fn message(&self, request_id: Option<&str>) -> String {
        use ApiError as E;
        match self {
            E::BadArgument(m)
            | E::InvalidImage(m)
            | E::InvalidImageSize(m)
            | E::InvalidUrl(m)
            | E::QuotaExceeded(m)
            | E::Timeout(m)
            | E::Billing { message: m, .. } => m.clone(),
            E::UnsupportedMediaType(got) => format!(
                "Invalid Media Type: {got:?}; send application/json, or application/octet-stream for image bytes."
            ),
            E::FaceNotFound { id, .. } => {
                format!("Face {id} is not found (faceIds expire after their faceIdTimeToLive); detect the face again.")
            }
            E::CollectionNotFound { kind, id, .. } => format!("{} '{id}' is not found.", kind.label()),
            E::PersonNotFound { id, .. } => format!("Person {id} is not found."),
            E::PersistedFaceNotFound(id) => format!("Persisted face {id} is not found."),
            E::SnapshotNotFound(id) => format!("Snapshot {id} is not found."),
            E::OperationNotFound(id) => format!("Operation {id} is not found."),
            E::NotTrained { kind, id, .. } => format!(
                "{} '{id}' is not trained; call train and wait for its training status to be succeeded.",
                kind.name()
            ),
            E::FaceListNotReady => "Face list is empty.".into(),
            E::GroupReference { both: true } => "Give personGroupId or largePersonGroupId, not both.".into(),
            E::GroupReference { both: false } => "Give personGroupId or largePersonGroupId.".into(),
            E::Exists { kind, id } => {
                format!("{} '{id}' already exists; choose another id or delete it first.", kind.name())
            }
            E::Unauthorized => "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
                provide a valid key in the Ocp-Apim-Subscription-Key header (the ApiKey this service was started with)."
                .into(),
            E::RouteNotFound => {
                "Resource not found: no Face API operation has this route; see /swagger for the list.".into()
            }
            E::MethodNotAllowed => "This route does not take this HTTP method; see /swagger for the operations.".into(),
            E::RateLimitExceeded { waiting } => format!(
                "Rate limit is exceeded: {waiting} images are already waiting for the face engine. Try again in 1 second."
            ),
            E::MemoryBudget { needed, held, budget } => format!(
                "Rate limit is exceeded: this request needs {} MiB and requests in progress hold {} of the server's {} \
                 MiB memory budget (Server:MemoryBudgetMiB). Try again in 1 second.",
                needed.div_ceil(1 << 20),
                held.div_ceil(1 << 20),
                budget >> 20
            ),
            E::Unavailable { .. } => {
                "The face engine is unavailable for the moment; try again after the Retry-After seconds.".into()
            }
            E::DatabaseUnavailable { .. } => "The face database cannot be reached for the moment (it may be \
                                              restarting); try again after the Retry-After seconds."
                .into(),
            E::Internal(_) => match request_id {
                Some(id) => format!(
                    "The service failed on this request (request id {id}); try again, and if it persists give the \
                     id to the operator, whose log has the cause."
                ),
                None => "The service failed on this request; try again.".into(),
            },
        }
    }

    /// Seconds for the Retry-After header.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimitExceeded { .. } | ApiError::MemoryBudget { .. } => Some(1),
            ApiError::Billing { retry_after, .. }
            | ApiError::Unavailable { retry_after, .. }
            | ApiError::DatabaseUnavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Maps a store failure about collection `id` of `kind` (and `person`, when there is one)
    /// that the route names: one gone meanwhile is its 404, not a 500.
    pub fn from_store(e: StoreError, kind: Kind, id: &str, person: Option<&str>) -> ApiError {
        ApiError::from_store_at(e, kind, id, person, At::Route)
    }

    /// [`ApiError::from_store`] for a collection named where `at` says (the body: 400).
    pub fn from_store_at(e: StoreError, kind: Kind, id: &str, person: Option<&str>, at: At) -> ApiError {
        match e {
            StoreError::NoCollection => ApiError::CollectionNotFound { kind, id: id.into(), at },
            StoreError::NoPerson => ApiError::PersonNotFound { id: person.unwrap_or("").into(), at },
            StoreError::Exists => ApiError::Exists { kind, id: id.into() },
            other => ApiError::store(other),
        }
    }

    /// Maps the failure of a store call that names no collection (a listing, the faceId cache, a
    /// snapshot's or an operation's row): a quota (403), the database out of reach (503), else a
    /// failure (500; the detail is logged, never answered). There is no `From<StoreError>`: each
    /// call says which of the two it is, so a not-found never becomes a 500 by default.
    pub fn store(e: StoreError) -> ApiError {
        match e {
            StoreError::Quota(m) => ApiError::QuotaExceeded(m),
            StoreError::Unavailable(m) => ApiError::DatabaseUnavailable { detail: m, retry_after: 2 },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Maps an engine call's failure to the Face API error.
impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        use guest::Error as G;
        match e {
            CallError::Guest(g) => match g {
                G::FileTooSmall(m) => ApiError::InvalidImageSize(format!("Image size is too small. {m}")),
                G::FileTooLarge(m) => ApiError::InvalidImageSize(format!("Image size is too big. {m}")),
                G::UnsupportedFormat(m) => {
                    ApiError::InvalidImage(format!("Decoding error, image format unsupported. {m}"))
                }
                G::CorruptImage(m) => ApiError::InvalidImage(format!("Decoding error, image is corrupt. {m}")),
                G::ImageTooSmall(m) => ApiError::InvalidImageSize(format!("Image dimensions are too small. {m}")),
                G::ImageTooLarge(m) | G::DecompressionBomb(m) => {
                    ApiError::InvalidImageSize(format!("Image dimensions are too big. {m}"))
                }
                G::NoFace(m) => ApiError::InvalidImage(format!("No face detected in the image. {m}")),
                G::InvalidArgument(m) => ApiError::BadArgument(m),
                G::Model(m) | G::NotInitialised(m) => ApiError::Internal(format!("the face engine failed: {m}")),
            },
            CallError::Timeout { deadline } => ApiError::Timeout(format!(
                "Request Timeout: the face engine did not finish within {deadline:?}; send a smaller image."
            )),
            CallError::MemoryLimit { limit } => ApiError::InvalidImageSize(format!(
                "Image is too big to process: it needed more than the engine's {} MiB of memory.",
                limit >> 20
            )),
            CallError::Trap(m) => ApiError::Internal(format!("the face engine trapped on this image: {m}")),
            CallError::Unavailable(m) => ApiError::Unavailable { detail: m, retry_after: 5 },
            CallError::Broken(m) => ApiError::Internal(format!("the face engine's answer was refused: {m}")),
        }
    }
}

tokio::task_local! {
    /// The id of the request being answered (the `apim-request-id` response header), set by the
    /// request-log middleware for the whole of the request's handling.
    pub static REQUEST_ID: String;
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct APIError {
    pub error: ErrorDetail,
}

/// An error's code (`BadArgument`, `PersonGroupNotFound`, ...) and what went wrong.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).ok();
        match &self {
            ApiError::Internal(detail)
            | ApiError::Unavailable { detail, .. }
            | ApiError::DatabaseUnavailable { detail, .. } => {
                tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), code = %self.code(), %detail,
                    "request failed");
            }
            _ => {}
        }
        let body = APIError { error: ErrorDetail { code: self.code(), message: self.message(request_id.as_deref()) } };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after()
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_failure_sends_the_request_id_and_never_the_detail() {
        let response = REQUEST_ID
            .scope("req-1".into(), async {
                ApiError::store(StoreError::Internal("disk I/O error at /var/lib/face/face.db".into())).into_response()
            })
            .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("req-1"), "{text}");
        assert!(!text.contains("disk I/O") && !text.contains("/var/lib"), "{text}");
        let trap = ApiError::from(CallError::Trap("wasm trap: out of bounds memory access".into()));
        assert!(!trap.message(None).contains("wasm"));
    }

    #[test]
    fn codes_and_statuses_follow_the_face_api() {
        let cases = [
            (
                ApiError::CollectionNotFound { kind: Kind::LargeFaceList, id: "x".into(), at: At::Body },
                400,
                "LargeFaceListNotFound",
            ),
            (
                ApiError::CollectionNotFound { kind: Kind::PersonGroup, id: "x".into(), at: At::Route },
                404,
                "PersonGroupNotFound",
            ),
            (ApiError::from_store(StoreError::Exists, Kind::FaceList, "x", None), 409, "FaceListExists"),
            (ApiError::store(StoreError::Quota("full".into())), 403, "QuotaExceeded"),
            (ApiError::store(StoreError::Unavailable("refused".into())), 503, "ServiceUnavailable"),
            (ApiError::from_store(StoreError::NoPerson, Kind::PersonGroup, "g", Some("p")), 404, "PersonNotFound"),
            (
                ApiError::from_store_at(StoreError::NoCollection, Kind::LargePersonGroup, "g", None, At::Body),
                400,
                "LargePersonGroupNotFound",
            ),
            (ApiError::from_store(StoreError::NoCollection, Kind::PersonGroup, "g", None), 404, "PersonGroupNotFound"),
            (ApiError::UnsupportedMediaType("text/plain".into()), 415, "BadArgument"),
            (ApiError::RateLimitExceeded { waiting: 3 }, 429, "RateLimitExceeded"),
            (ApiError::MemoryBudget { needed: 1, held: 2, budget: 3 }, 429, "RateLimitExceeded"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code().as_str()), (status, code), "{e:?}");
        }
    }
}
