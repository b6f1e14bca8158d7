//! The Face API error: `{"error": {"code", "message"}}` with the HTTP status Azure uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::{CallError, guest};
use crate::store::{Kind, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.into(), message: message.into(), retry_after: None }
    }

    pub fn bad_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadArgument", message)
    }

    pub fn invalid_image(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidImage", message)
    }

    pub fn invalid_image_size(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidImageSize", message)
    }

    pub fn invalid_url(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidURL", message)
    }

    pub fn unsupported_media_type(got: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BadArgument",
            format!("Invalid Media Type: {got:?}; send application/json, or application/octet-stream for image bytes."),
        )
    }

    pub fn face_not_found(status: StatusCode, id: &str) -> ApiError {
        ApiError::new(
            status,
            "FaceNotFound",
            format!("Face {id} is not found (faceIds expire after their faceIdTimeToLive); detect the face again."),
        )
    }

    /// `PersonGroupNotFound`, `LargeFaceListNotFound`, ...
    pub fn collection_not_found(status: StatusCode, kind: Kind, id: &str) -> ApiError {
        let what = match kind {
            Kind::PersonGroup => "Person group",
            Kind::LargePersonGroup => "Large person group",
            Kind::FaceList => "Face list",
            Kind::LargeFaceList => "Large face list",
        };
        ApiError::new(status, format!("{}NotFound", kind.name()), format!("{what} '{id}' is not found."))
    }

    pub fn person_not_found(status: StatusCode, id: &str) -> ApiError {
        ApiError::new(status, "PersonNotFound", format!("Person {id} is not found."))
    }

    pub fn persisted_face_not_found(id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "PersistedFaceNotFound", format!("Persisted face {id} is not found."))
    }

    pub fn not_trained(status: StatusCode, kind: Kind, id: &str) -> ApiError {
        ApiError::new(
            status,
            format!("{}NotTrained", kind.name()),
            format!(
                "{} '{id}' is not trained; call train and wait for its training status to be succeeded.",
                kind.name()
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key \
             in the Ocp-Apim-Subscription-Key header (the ApiKey this service was started with).",
        )
    }

    /// Maps a store failure for `kind`/`id`; not-found answers use `status`.
    pub fn from_store(e: StoreError, status: StatusCode, kind: Kind, id: &str, person: Option<&str>) -> ApiError {
        match e {
            StoreError::NoCollection => ApiError::collection_not_found(status, kind, id),
            StoreError::NoPerson => ApiError::person_not_found(status, person.unwrap_or("")),
            StoreError::Exists => ApiError::new(
                StatusCode::CONFLICT,
                format!("{}Exists", kind.name()),
                format!("{} '{id}' already exists; choose another id or delete it first.", kind.name()),
            ),
            StoreError::Quota(m) => ApiError::new(StatusCode::FORBIDDEN, "QuotaExceeded", m),
            StoreError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Quota(m) => ApiError::new(StatusCode::FORBIDDEN, "QuotaExceeded", m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Maps an engine call's failure to the Face API error.
impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        use guest::Error as G;
        match e {
            CallError::Guest(g) => match g {
                G::FileTooSmall(m) => ApiError::invalid_image_size(format!("Image size is too small. {m}")),
                G::FileTooLarge(m) => ApiError::invalid_image_size(format!("Image size is too big. {m}")),
                G::UnsupportedFormat(m) => {
                    ApiError::invalid_image(format!("Decoding error, image format unsupported. {m}"))
                }
                G::CorruptImage(m) => ApiError::invalid_image(format!("Decoding error, image is corrupt. {m}")),
                G::ImageTooSmall(m) => ApiError::invalid_image_size(format!("Image dimensions are too small. {m}")),
                G::ImageTooLarge(m) | G::DecompressionBomb(m) => {
                    ApiError::invalid_image_size(format!("Image dimensions are too big. {m}"))
                }
                G::NoFace(m) => ApiError::invalid_image(format!("No face detected in the image. {m}")),
                G::InvalidArgument(m) => ApiError::bad_argument(m),
                G::Model(m) | G::NotInitialised(m) => ApiError::internal(format!("The face engine failed: {m}")),
            },
            CallError::Timeout { deadline } => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "OperationTimeOut",
                format!("Request Timeout: the face engine did not finish within {deadline:?}; send a smaller image."),
            ),
            CallError::MemoryLimit { limit } => ApiError::invalid_image_size(format!(
                "Image is too big to process: it needed more than the engine's {} MiB of memory.",
                limit >> 20
            )),
            CallError::Trap(m) => ApiError::internal(format!("The face engine failed on this image: {m}")),
            CallError::Unavailable(m) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    format!("The face engine is unavailable: {m}"),
                );
                e.retry_after = Some(5);
                e
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
