//! face-host: the native server around the engine.
//!
//! - `settings`: the start-up contract the Azure Face container defines (shared/DESIGN.md,
//!   decision 5): `Eula=accept`, `Billing=<url>` and `ApiKey=<key>`, as arguments or environment.
//! - `engine`: face-core compiled to a wasm32-wasip2 component, run in a pool of sandboxed
//!   wasmtime instances with a memory cap and a deadline per call.
//! - `api`: the Face v1.0 REST routes (axum), their errors and the OpenAPI document.
//! - `store`: the face database (SQLite, on disk or in memory).
//! - `faces`: faceIds with their time to live, recognition model names; `index`: the trained
//!   index identify and find-similar search (int8, exact re-ranking, persisted in parts).
//! - `fetch`: image URLs fetched with SSRF guards.
//! - `expiry`: the sweepers of faceIds, snapshots and stopped hosts' work.
//! - `training`: training rounds in the background, the trained index searches use, and the
//!   changes other hosts make to it (events), beside the API's routes.
//! - `billing`: the usage journal and the heartbeat to the Billing endpoint; `metrics`: the
//!   Prometheus counters of `/metrics`. (face-meter, the reference billing endpoint, is a binary
//!   of its own: `src/bin/face-meter/`.)
//! - `server`: configuration from the settings, and the run loop with graceful shutdown;
//!   `listen`: the connection loop (a cap on open connections, a deadline for request headers).

pub mod api;
pub mod billing;
pub mod engine;
pub mod expiry;
pub mod faces;
pub mod fetch;
pub mod index;
pub mod listen;
pub mod metrics;
pub mod server;
pub mod settings;
pub mod store;
pub mod time;
pub mod training;
