//! face-host: the native server around the engine.
//!
//! - `settings`: the start-up contract the Azure Face container defines (shared/DESIGN.md,
//!   decision 5): `Eula=accept`, `Billing=<url>` and `ApiKey=<key>`, as arguments or environment.
//! - `engine`: face-core compiled to a wasm32-wasip2 component, run in a pool of sandboxed
//!   wasmtime instances with a memory cap and a deadline per call.

pub mod engine;
pub mod settings;
