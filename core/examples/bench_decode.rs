//! Times decoding one photo: in full (the image crate's zune-jpeg) and at the DCT scale the
//! engine picks for detection (jpeg-decoder), natively or on wasm32-wasip1, for `cargo xtask
//! bench`. Prints one JSON object: {"full": median_ms, "scaled": median_ms, "scale": k}.
//!
//!     cargo run --example bench_decode -- PHOTO RUNS

#[path = "common/median.rs"]
mod median;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [photo, runs] = args.as_slice() else {
        panic!("usage: bench_decode PHOTO RUNS");
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let bytes = std::fs::read(photo).expect("photo");
    let limits = face_core::DecodeLimits::default();
    let full = median::median_ms(1, runs, || {
        face_core::decode(&bytes, &limits).expect("decode");
    });
    let scale = face_core::decode_at_least(&bytes, &limits, face_core::DETECT_SIDE).expect("decode").scale;
    let scaled = median::median_ms(1, runs, || {
        face_core::decode_at_least(&bytes, &limits, face_core::DETECT_SIDE).expect("decode");
    });
    let out = format!("{{\"full\": {full:.3}, \"scaled\": {scaled:.3}, \"scale\": {scale}}}\n");
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
