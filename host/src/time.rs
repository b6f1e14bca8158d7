//! Wall-clock time as the API and the usage journal write it: milliseconds since the Unix epoch
//! in the store, ISO 8601 with milliseconds in JSON (jiff formats it).

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `2026-11-24T21:03:08.123Z` from milliseconds since the epoch (the epoch itself if out of range).
pub fn iso8601(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{t:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_795_547_988_123), "2026-11-24T19:19:48.123Z");
        assert!(now_ms() > 1_795_547_988_123);
    }
}
