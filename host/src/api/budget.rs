//! One memory budget for the bytes requests hold (`Server:MemoryBudgetMiB`): request bodies as
//! they arrive, images fetched from URLs, and each image's decoded pixels from its admission to
//! the engine queue until its engine call ends. A request that would pass the budget is refused
//! at once with 429 and `Retry-After`, before it holds the memory, instead of queueing behind
//! the others until the process runs out.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::error::{ApiError, ApiResult};

/// Bytes a decoded pixel takes at the peak of a decode: the decoder's frame (up to 4 bytes a
/// pixel) and the upright RGB copy (3).
pub const DECODED_BYTES_PER_PIXEL: usize = 7;

#[derive(Debug)]
pub struct MemoryBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes held within the budget, given back on drop.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

/// An image's bytes, with what of the budget they hold (a fetched image's bytes; nothing for a
/// body's, which the body's reading holds).
#[derive(Debug)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub held: Held,
}

impl MemoryBudget {
    pub fn new(total: usize) -> MemoryBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget { bytes: Arc::new(Semaphore::new(total)), total }
    }

    /// The budget, bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    /// Adds `bytes` to what `held` holds, or 429 when the budget has not that much left.
    pub fn grow(&self, held: &mut Held, bytes: usize) -> ApiResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        let refused = || ApiError::MemoryBudget { needed: bytes, held: self.held(), budget: self.total };
        let n = u32::try_from(bytes).map_err(|_| refused())?;
        let more = match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(refused()),
            Err(TryAcquireError::Closed) => return Err(ApiError::internal("the memory budget is closed")),
        };
        match &mut held.0 {
            Some(p) => p.merge(more),
            None => held.0 = Some(more),
        }
        Ok(())
    }

    /// `bytes` held on their own.
    pub fn hold(&self, bytes: usize) -> ApiResult<Held> {
        let mut held = Held::default();
        self.grow(&mut held, bytes)?;
        Ok(held)
    }
}

/// The bytes an image's pixels take decoded, from the size its header declares; 0 when the
/// header cannot be read (the engine then refuses the image without decoding it).
pub fn decoded_bytes(image: &[u8]) -> usize {
    let Ok(format) = image::guess_format(image) else { return 0 };
    let reader = image::ImageReader::with_format(std::io::Cursor::new(image), format);
    match reader.into_dimensions() {
        Ok((w, h)) => (w as usize).saturating_mul(h as usize).saturating_mul(DECODED_BYTES_PER_PIXEL),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_given_back_and_the_budget_refuses_past_its_total() {
        let budget = MemoryBudget::new(1000);
        let mut a = budget.hold(600).unwrap();
        budget.grow(&mut a, 300).unwrap();
        assert_eq!((a.bytes(), budget.held()), (900, 900));
        let refused = budget.hold(200).unwrap_err();
        assert!(matches!(refused, ApiError::MemoryBudget { needed: 200, held: 900, budget: 1000 }), "{refused:?}");
        drop(a);
        assert_eq!(budget.held(), 0);
        assert!(budget.hold(1000).is_ok());
        assert!(budget.hold(usize::MAX).is_err(), "more than a u32 of bytes is refused, not truncated");
    }

    #[test]
    fn decoded_bytes_come_from_the_header() {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(300, 200).write_to(&mut png, image::ImageFormat::Png).unwrap();
        assert_eq!(decoded_bytes(png.get_ref()), 300 * 200 * DECODED_BYTES_PER_PIXEL);
        assert_eq!(decoded_bytes(b"not an image at all"), 0);
    }
}
