//! Reading requests: query parameters, JSON bodies, image bodies and ids, each checked with the
//! Face API's error for a bad value.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::budget::{Held, Image, MemoryBudget};
use super::error::{ApiError, ApiResult};
use super::state::{AppState, Shared};
use crate::faces::recognition_name;

pub use super::limits::{MAX_IMAGE_BYTES, MAX_JSON_BYTES, MIN_IMAGE_BYTES};

/// Query parameters; names compare case-insensitively, as on Azure.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// The parameters of a query string (`application/x-www-form-urlencoded`); a name given
    /// twice keeps its last value.
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_argument(format!("The query string is invalid: {e}.")))?;
        Ok(Query(pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn bool(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_argument(format!("'{name}' is invalid: {v:?} is not true or false."))),
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_argument(format!(
                    "'{name}' is invalid: {v:?} is not an integer from {min} to {max}."
                ))),
            },
        }
    }

    /// `start` for paging: an exclusive lower bound, at most 64 characters.
    pub fn start(&self) -> ApiResult<Option<String>> {
        match self.get("start") {
            None | Some("") => Ok(None),
            Some(s) if s.chars().count() > 64 => Err(ApiError::bad_argument("'start' is too long.")),
            Some(s) => Ok(Some(s.to_owned())),
        }
    }

    /// `top` for paging, 1..=1000.
    pub fn top(&self) -> ApiResult<usize> {
        match self.get("top") {
            None | Some("") => Ok(1000),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_argument("'top' is invalid: it must be an integer from 1 to 1000.")),
            },
        }
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A body longer than its limit is still read (and dropped) up to this many bytes, so that the
/// client, still sending, receives the error instead of a broken connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads at most `limit` bytes; `None` when the body is longer.
async fn read_body(body: Body, limit: usize) -> ApiResult<Option<Vec<u8>>> {
    read_body_within(body, limit, None).await
}

/// `read_body`, the bytes kept held within `budget` as they arrive (beyond what `held` holds
/// already): 429 as soon as the budget runs out.
async fn read_body_within(
    mut body: Body,
    limit: usize,
    mut budget: Option<(&MemoryBudget, &mut Held)>,
) -> ApiResult<Option<Vec<u8>>> {
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    let mut total = 0usize;
    let mut over = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_argument(format!("The request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        total = total.saturating_add(data.len());
        if total > limit {
            over = true;
            buf = Vec::new();
        }
        if over {
            if total > DRAIN_LIMIT {
                break;
            }
        } else {
            if let Some((budget, held)) = budget.as_mut() {
                let short = total.saturating_sub(held.bytes());
                budget.grow(held, short)?;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(if over { None } else { Some(buf) })
}

/// Middleware: reads the whole request body before the handler runs, so that an answer given
/// before the handler looks at the body (a bad parameter, an unknown id) never cuts off a
/// client that is still sending. Bodies over 6 MB are answered here: from the Content-Length
/// header when there is one, else at the 6 MB mark (the rest read and dropped).
///
/// A body's bytes are held within the memory budget (its declared length before a byte is read,
/// else as it arrives), until the answer is ready: past the budget, 429 with Retry-After. A body
/// must arrive within `BODY_TIMEOUT`.
pub async fn buffer_body(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    // A body declared too large is refused from its header, without an upload place and without
    // keeping any of it: at once when the client waits for `100 Continue` or declares more than
    // DRAIN_LIMIT, else after reading and dropping it for at most DECLARED_DRAIN_TIME (so a
    // client still sending receives the error rather than a reset).
    if let Some(declared) = declared_too_long(&parts.headers) {
        let waits =
            parts.headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits && declared <= DRAIN_LIMIT as u64 {
            let _ = tokio::time::timeout(DECLARED_DRAIN_TIME, read_body(body, 0)).await;
        }
        let mut response = body_too_big(&parts.headers).into_response();
        response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let mut held = match state.budget.hold(declared.unwrap_or(0)) {
        Ok(h) => h,
        Err(e) => return refuse_unread(e),
    };
    let reading = std::time::Instant::now();
    let read =
        tokio::time::timeout(BODY_TIMEOUT, read_body_within(body, MAX_IMAGE_BYTES, Some((&state.budget, &mut held))));
    let read = match read.await {
        Ok(r) => r,
        Err(_) => {
            return ApiError::body_timeout(BODY_TIMEOUT).into_response();
        }
    };
    let read_time = reading.elapsed();
    let response = match read {
        Ok(Some(bytes)) => {
            let mut response = next.run(axum::extract::Request::from_parts(parts, Body::from(bytes))).await;
            if super::timing::timed(&response) {
                super::timing::append(&mut response, &[super::timing::entry("body", read_time)]);
            }
            response
        }
        Ok(None) => body_too_big(&parts.headers).into_response(),
        Err(e @ ApiError::MemoryBudget { .. }) => refuse_unread(e),
        Err(e) => e.into_response(),
    };
    drop(held);
    response
}

/// A refusal sent before the body was read (or while it was): the connection closes after it,
/// since the unread rest of the body cannot be told from the next request.
fn refuse_unread(e: ApiError) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = e.into_response();
    response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

/// The error for a body over the limit: an image's, or a JSON body's.
fn body_too_big(headers: &HeaderMap) -> ApiError {
    let image = content_type(headers).is_none_or(|ct| ct == "application/octet-stream" || ct.starts_with("image/"));
    if image {
        too_big()
    } else {
        ApiError::bad_argument(format!("Request body is invalid: it is larger than {MAX_IMAGE_BYTES} bytes."))
    }
}

/// How long a body declared too large is read and dropped, so the client still sending it
/// receives the error rather than a reset.
const DECLARED_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The Content-Length a request declares, when it passes the 6 MB limit.
fn declared_too_long(headers: &HeaderMap) -> Option<u64> {
    let declared: u64 = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()?;
    (declared > MAX_IMAGE_BYTES as u64).then_some(declared)
}

/// Answers `error` to a request refused before its body was read (a wrong key, billing): the
/// body is first read and dropped, for at most DECLARED_DRAIN_TIME, when it declares at most the
/// Face API's 6 MB and the client does not wait for `100 Continue`, so a client still sending it
/// receives the error rather than a reset; the connection is then closed.
pub async fn refuse_before_body(request: Request, error: ApiError) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let waits = parts.headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let chunked = parts.headers.get(header::TRANSFER_ENCODING).is_some();
    if !waits && (chunked || declared.is_some_and(|d| d > 0 && d <= MAX_IMAGE_BYTES as u64)) {
        let _ = tokio::time::timeout(DECLARED_DRAIN_TIME, read_body(body, 0)).await;
    }
    refuse_unread(error)
}

/// Reads the whole body of an operation that takes none, ignoring it.
pub async fn drain(body: Body) {
    let _ = axum::body::to_bytes(body, 64 * 1024).await;
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Query> {
        Query::parse(parts.uri.query())
    }
}

/// The one parameter of a route (`{id}`, `{*path}`), percent-decoded. A parameter that does not
/// decode to UTF-8 (`%80`) is a 400 `BadArgument`, not axum's plain-text refusal.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<PathParam> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParam(p))
            .map_err(|e| ApiError::bad_argument(format!("The request's path is invalid: {}.", e.body_text())))
    }
}

/// A JSON request body of type `T`, read with [`json`]'s checks.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> ApiResult<Json<T>> {
        let (parts, body) = request.into_parts();
        json(&parts.headers, body).await.map(Json)
    }
}

/// The body of an operation that takes none, read and ignored.
#[derive(Debug)]
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> ApiResult<NoBody> {
        drain(request.into_body()).await;
        Ok(NoBody)
    }
}

/// A JSON request body of type `T`. A missing or empty body reads as `{}`.
pub async fn json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> ApiResult<T> {
    if let Some(ct) = content_type(headers)
        && ct != "application/json"
        && !ct.ends_with("+json")
    {
        return Err(ApiError::UnsupportedMediaType(ct));
    }
    let Some(bytes) = read_body(body, MAX_JSON_BYTES).await? else {
        return Err(ApiError::bad_argument(format!(
            "Request body is invalid: it is larger than {MAX_JSON_BYTES} bytes."
        )));
    };
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_argument(format!("JSON parsing error. {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_argument("Request body is invalid: a JSON object is expected."));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_argument(format!("Request body is invalid: {e}.")))
}

/// `{"url": ...}`: the picture an image operation fetches.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ImageUrl {
    /// Publicly reachable URL of an image (JPEG, PNG, GIF's first frame, BMP).
    #[schema(required)]
    pub url: Option<String>,
}

/// The image of an image operation: the body's bytes (`application/octet-stream`), or the
/// picture at `{"url": ...}` (`application/json`), within the Face API's size limits.
pub async fn image(state: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Image> {
    let ct = content_type(headers);
    let image = match ct.as_deref() {
        Some("application/json") => {
            let req: ImageUrl = json(headers, body).await?;
            let url = req.url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                ApiError::bad_argument("Request body is invalid: give the image as {\"url\": \"https://...\"}.")
            })?;
            let bytes = state.fetcher.fetch(url.trim()).await?;
            let held = state.budget.hold(bytes.len())?;
            Image { bytes, held }
        }
        None | Some("application/octet-stream") => Image { bytes: read_image(body).await?, held: Held::default() },
        Some(ct) if ct.starts_with("image/") => Image { bytes: read_image(body).await?, held: Held::default() },
        Some(ct) => return Err(ApiError::UnsupportedMediaType(ct.to_owned())),
    };
    check_image_size(image.bytes.len())?;
    Ok(image)
}

async fn read_image(body: Body) -> ApiResult<Vec<u8>> {
    read_body(body, MAX_IMAGE_BYTES).await?.ok_or_else(too_big)
}

fn too_big() -> ApiError {
    ApiError::invalid_image_size(format!("Image size is too big: the limit is {MAX_IMAGE_BYTES} bytes (6 MB)."))
}

pub fn check_image_size(n: usize) -> ApiResult<()> {
    if n < MIN_IMAGE_BYTES {
        Err(ApiError::invalid_image_size(format!(
            "Image size is too small: {n} bytes; images must be from 1 KB to 6 MB."
        )))
    } else if n > MAX_IMAGE_BYTES {
        Err(too_big())
    } else {
        Ok(())
    }
}

/// A group or list id: `^[a-z0-9-_]{1,64}$`.
pub fn collection_id(id: &str, what: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_argument(format!(
            "{what} ID is invalid: {id:?}; use 1 to 64 characters from lower-case letters, digits, '-' and '_'."
        )))
    }
}

/// A personId, persistedFaceId or faceId: a UUID.
pub fn uuid(id: &str, what: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::bad_argument(format!("{what} is invalid: {id:?} is not a UUID.")))
}

/// `name` of a group, list or person: 1..=128 characters.
pub fn name(name: Option<&str>, required: bool) -> ApiResult<Option<String>> {
    match name {
        None if required => Err(ApiError::bad_argument("'name' is empty.")),
        None => Ok(None),
        Some("") => Err(ApiError::bad_argument("'name' is empty.")),
        Some(n) if n.chars().count() > 128 => {
            Err(ApiError::bad_argument("'name' is too long (at most 128 characters)."))
        }
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// `userData`: at most `max` characters.
pub fn user_data(ud: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    match ud {
        Some(u) if u.len() > max => {
            Err(ApiError::bad_argument(format!("'userData' is too long (at most {max} bytes).")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// `targetFace=left,top,width,height`.
pub fn target_face(q: &Query) -> ApiResult<Option<[u32; 4]>> {
    let Some(raw) = q.get("targetFace").filter(|s| !s.is_empty()) else { return Ok(None) };
    let parts: Vec<_> = raw.split(',').map(|p| p.trim().parse::<i64>()).collect();
    if parts.len() != 4 || parts.iter().any(|p| p.is_err()) {
        return Err(ApiError::bad_argument(format!(
            "Invalid argument targetFace: {raw:?}; give left,top,width,height in pixels."
        )));
    }
    let v: Vec<i64> = parts.into_iter().map(|p| p.unwrap_or(0)).collect();
    if v[0] < 0 || v[1] < 0 || v[2] <= 0 || v[3] <= 0 || v.iter().any(|&x| x > 1 << 16) {
        return Err(ApiError::bad_argument("Argument targetFace out of range."));
    }
    Ok(Some([v[0] as u32, v[1] as u32, v[2] as u32, v[3] as u32]))
}

/// Detector score threshold per `detectionModel`. detection_02 is Azure's model for small,
/// side and blurry faces without landmarks or attributes; here it is the same detector at a
/// lower threshold until a second detector lands.
pub fn min_score(detection_model: &str) -> f32 {
    if detection_model == "detection_02" { 0.6 } else { face_core::DEFAULT_MIN_SCORE }
}

/// `detectionModel`, checked; default detection_01.
pub fn detection_model(q: &Query) -> ApiResult<&'static str> {
    match q.get("detectionModel").map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok("detection_01"),
        Some(s) if s.is_empty() || s == "detection_01" => Ok("detection_01"),
        Some(s) if s == "detection_02" => Ok("detection_02"),
        Some(_) => Err(ApiError::bad_argument("'detectionModel' is invalid; use detection_01 or detection_02.")),
    }
}

/// `recognitionModel` as a query parameter or body field; default recognition_01.
pub fn recognition_model(raw: Option<&str>) -> ApiResult<&'static str> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok("recognition_01"),
        Some(s) => recognition_name(s).ok_or_else(|| {
            ApiError::bad_argument(
                "'recognitionModel' is invalid; use recognition_01, recognition_02 or recognition_03.",
            )
        }),
    }
}
