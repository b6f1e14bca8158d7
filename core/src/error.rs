//! The one error type of the engine. Every variant says what was wrong and, where it helps,
//! what the caller can do about it.

use std::fmt;

/// What went wrong in the engine. New variants may be added: match with a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The image is smaller than the smallest file accepted.
    FileTooSmall { bytes: usize, min: usize },
    /// The image is larger than the largest file accepted.
    FileTooLarge { bytes: usize, max: usize },
    /// The bytes are not JPEG, PNG, GIF or BMP.
    UnsupportedFormat { detected: Option<String> },
    /// The bytes claim a supported format but cannot be decoded.
    CorruptImage { reason: String },
    /// Width or height is under the minimum.
    ImageTooSmall { width: u32, height: u32, min: u32 },
    /// Width or height is over the maximum.
    ImageTooLarge { width: u32, height: u32, max: u32 },
    /// Decoding would need more memory than allowed for an image of the accepted size.
    DecompressionBomb { reason: String },
    /// No face where one was required (in the image, or in a given rectangle).
    NoFace { reason: String },
    /// A model could not be loaded or run.
    Model { model: &'static str, reason: String },
    /// A caller-supplied argument is out of range.
    InvalidArgument { reason: String },
}

impl Error {
    /// The variant's name, stable for logs and for mapping to API error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::FileTooSmall { .. } => "FileTooSmall",
            Error::FileTooLarge { .. } => "FileTooLarge",
            Error::UnsupportedFormat { .. } => "UnsupportedFormat",
            Error::CorruptImage { .. } => "CorruptImage",
            Error::ImageTooSmall { .. } => "ImageTooSmall",
            Error::ImageTooLarge { .. } => "ImageTooLarge",
            Error::DecompressionBomb { .. } => "DecompressionBomb",
            Error::NoFace { .. } => "NoFace",
            Error::Model { .. } => "Model",
            Error::InvalidArgument { .. } => "InvalidArgument",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FileTooSmall { bytes, min } => write!(
                f,
                "image file is {bytes} bytes; at least {min} bytes are needed for a JPEG, PNG, GIF or BMP photo"
            ),
            Error::FileTooLarge { bytes, max } => write!(
                f,
                "image file is {bytes} bytes; the limit is {max} bytes: send a smaller or more compressed image"
            ),
            Error::UnsupportedFormat { detected: Some(fmt_name) } => {
                write!(f, "image format {fmt_name} is not supported: send JPEG, PNG, GIF or BMP")
            }
            Error::UnsupportedFormat { detected: None } => {
                write!(f, "the bytes are not a recognised image: send JPEG, PNG, GIF or BMP")
            }
            Error::CorruptImage { reason } => write!(f, "the image could not be decoded: {reason}"),
            Error::ImageTooSmall { width, height, min } => {
                write!(f, "image is {width}x{height} pixels; both sides must be at least {min} pixels")
            }
            Error::ImageTooLarge { width, height, max } => write!(
                f,
                "image is {width}x{height} pixels; both sides must be at most {max} pixels: downscale it first"
            ),
            Error::DecompressionBomb { reason } => {
                write!(f, "image refused before decoding, it would expand too far: {reason}")
            }
            Error::NoFace { reason } => write!(f, "no face found: {reason}"),
            Error::Model { model, reason } => write!(f, "model {model} failed: {reason}"),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
