//! The Face API's size limits on what a request carries.

/// Image files must be at least this many bytes.
pub const MIN_IMAGE_BYTES: usize = 1024;
/// ... and at most this many (6 MB), as bytes in the body or behind a URL.
pub const MAX_IMAGE_BYTES: usize = 6 * 1024 * 1024;
/// JSON request bodies larger than this are refused.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
