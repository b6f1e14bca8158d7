//! `/demo`: the in-browser demo (`cargo xtask web` builds it into `web/dist`), served as static
//! files streamed from disk. Everything runs in the visitor's browser; the server only hands out
//! the page, the npm package and the models.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower_http::services::ServeFile;

use super::input::PathParam;
use super::state::Shared;

/// One file, streamed from disk (tower-http: ranges, conditional requests, HEAD), never read
/// whole into memory; a successful answer gets `cache_control`, and `content_type` when given
/// (else the type guessed from the file name).
pub async fn serve_file(
    path: &FsPath,
    request: Request,
    content_type: Option<&'static str>,
    cache_control: &'static str,
) -> Response {
    // A folder would open like a file and fail mid-body: only regular files are served.
    if !tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match ServeFile::new(path).try_call(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            if response.status().is_success() {
                let headers = response.headers_mut();
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
                if let Some(content_type) = content_type {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                }
            }
            response
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// GET /demo: to the folder, so the page's relative URLs resolve.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/demo/")
}

/// GET /demo/
pub async fn index(State(state): State<Shared>, request: Request) -> Response {
    demo_file(&state, "index.html", request).await
}

/// GET /demo/{*path}: a file of the demo folder. Paths with `..`, absolute parts or hidden
/// names are refused.
pub async fn file(State(state): State<Shared>, PathParam(path): PathParam, request: Request) -> Response {
    demo_file(&state, &path, request).await
}

async fn demo_file(state: &Shared, path: &str, request: Request) -> Response {
    let Some(dir) = &state.demo else {
        return (
            StatusCode::NOT_FOUND,
            "The demo is not built: run `cargo xtask web` (or set Server:Demo to its folder).",
        )
            .into_response();
    };
    let safe =
        !path.is_empty() && path.split('/').all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains('\\'));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve_file(&dir.join(path), request, None, "no-cache").await
}
