//! The success answers handlers share.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiResult;

/// A 200 with an empty body, as Azure answers creates, updates and deletes.
pub fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

/// A JSON 200 of one of the wire types.
pub fn ok_json<T: serde::Serialize>(value: T) -> ApiResult<Response> {
    Ok(axum::Json(value).into_response())
}
