//! `Server-Timing` (W3C): where a detect request's time went, on its answer. The handler writes
//! its parts (the image, the wait for an engine instance, the guest's steps, the sandbox's own
//! cost, the faceId write, the JSON), the layers around it theirs (the body's read, the usage
//! journal's write, the total), each as its own header line, so a client, a browser's network
//! panel or `cargo xtask bench` can see them and what is left of the total.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// One `name;dur=ms` entry, milliseconds to 0.01.
pub fn entry(name: &str, d: Duration) -> String {
    format!("{name};dur={:.2}", d.as_secs_f64() * 1000.0)
}

/// Appends `entries` as one more `Server-Timing` line.
pub fn append(response: &mut Response, entries: &[String]) {
    if entries.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&entries.join(", ")) {
        response.headers_mut().append(SERVER_TIMING, v);
    }
}

/// Whether the handler timed this response (the layers add their parts only then).
pub fn timed(response: &Response) -> bool {
    response.headers().contains_key(SERVER_TIMING)
}

/// Reads `Server-Timing` lines back into (name, ms) pairs, in order; entries without a
/// duration are skipped.
pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, f64)> {
    lines
        .into_iter()
        .flat_map(|line| line.split(','))
        .filter_map(|entry| {
            let mut parts = entry.trim().split(';');
            let name = parts.next()?.trim();
            let ms = parts.find_map(|p| p.trim().strip_prefix("dur="))?.parse().ok()?;
            (!name.is_empty()).then(|| (name.to_owned(), ms))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_written_and_read_back() {
        let mut r = Response::new(axum::body::Body::empty());
        assert!(!timed(&r));
        append(&mut r, &[entry("decode", Duration::from_micros(12_345)), entry("detector", Duration::from_millis(40))]);
        append(&mut r, &[]);
        append(&mut r, &[entry("total", Duration::from_secs(1))]);
        assert!(timed(&r));
        let lines: Vec<&str> = r.headers().get_all(SERVER_TIMING).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(lines, ["decode;dur=12.35, detector;dur=40.00", "total;dur=1000.00"]);
        let parsed = parse(lines);
        assert_eq!(parsed, [("decode".into(), 12.35), ("detector".into(), 40.0), ("total".into(), 1000.0)]);
        assert_eq!(parse(["a;desc=x, b;dur=1.5;desc=y, ;dur=3, c;dur=nope"]), [("b".into(), 1.5)]);
    }
}
