//! The HTTP service: the Face API under `/face/v1.0` (its routes from the operation table in
//! [`routes`]), and the container's own endpoints.

pub mod budget;
pub mod collections;
pub mod demo;
pub mod detect;
pub mod error;
pub mod face;
pub mod input;
pub mod limits;
pub mod middleware;
pub mod openapi;
pub mod persisted_faces;
pub mod persons;
pub mod reply;
pub mod routes;
pub mod service;
pub mod snapshots;
pub mod state;
pub mod timing;
pub mod training;
pub mod wire;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;

use error::ApiError;
pub use state::{AppState, QueueSlot, Shared};

/// The whole HTTP service: the Face API under `/face/v1.0`, and the container's own endpoints.
pub fn router(state: Shared) -> Router {
    let api = routes::face_api()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), input::buffer_body))
        .layer(from_fn_with_state(state.clone(), middleware::bill))
        .layer(from_fn_with_state(state.clone(), middleware::check_key))
        .layer(from_fn_with_state(state.clone(), middleware::run_to_completion));

    Router::new()
        .nest("/face/v1.0", api)
        .route("/", get(service::home))
        .route("/status", get(service::status))
        .route("/ready", get(service::ready))
        .route("/metrics", get(service::metrics))
        .route("/swagger", get(openapi::swagger_ui))
        .route("/swagger/v1/swagger.json", get(openapi::document))
        .route("/swagger/ui/{file}", get(openapi::swagger_asset))
        .route("/demo", get(demo::redirect))
        .route("/demo/", get(demo::index))
        .route("/demo/{*path}", get(demo::file))
        .fallback(not_found)
        .route_layer(from_fn(middleware::label_route))
        .layer(from_fn_with_state(state.clone(), middleware::log_request))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
