//! face-core's integration tests: real models, real photos, natively and on wasm32-wasip1.
//!
//! Models come from `cargo xtask models` (models/), photos from `cargo xtask testdata`
//! (the test images in the face_recognition 1.3.0 sdist, in $FACE_CACHE/testdata). Anything
//! else a test needs it makes itself: composed, re-encoded, rotated, truncated, corrupted.

mod attributes;
mod common;
mod compare;
mod decode;
mod pipeline;
mod robustness;
