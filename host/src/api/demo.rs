//! `/demo`: the in-browser demo (`cargo xtask web` builds it into `web/dist`), served as static
//! files. Everything runs in the visitor's browser; the server only hands out the page, the npm
//! package and the models.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Shared;

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ts" | "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// GET /demo: to the folder, so the page's relative URLs resolve.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/demo/")
}

/// GET /demo/
pub async fn index(state: State<Shared>) -> Response {
    file(state, Path("index.html".to_owned())).await
}

/// GET /demo/{*path}: a file of the demo folder. Paths with `..`, absolute parts or hidden
/// names are refused.
pub async fn file(State(state): State<Shared>, Path(path): Path<String>) -> Response {
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
    match tokio::fs::read(dir.join(&path)).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, content_type(&path)), (header::CACHE_CONTROL, "no-cache")], bytes).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
