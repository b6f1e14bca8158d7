//! Runs the engine over image files and prints one line per file: the faces found or the typed
//! error. Built natively and for wasm32-wasip1, so `cargo xtask eval` can check that both
//! targets give the same outcome on every file (and that none panics).
//!
//!     cargo run --example detect_files -- [--models DIR] FILE...

use std::path::PathBuf;

use face_core::{DetectOptions, Engine, ModelSet, RecognitionModel};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    if args.first().map(String::as_str) == Some("--models") && args.len() >= 2 {
        models = PathBuf::from(args.remove(1));
        args.remove(0);
    }
    let set = ModelSet::read_with(|name| std::fs::read(models.join(name)))
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask models`", models.display()));
    let engine = Engine::new(&set.bytes()).expect("models load");
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    for path in args {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let outcome = match engine.detect(&bytes, &options) {
            Ok(faces) => {
                let rects: Vec<String> = faces
                    .iter()
                    .map(|f| {
                        let r = f.rectangle;
                        let e = f
                            .embedding
                            .as_ref()
                            .map(|e| e.vector[..4].iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(","));
                        format!("{}x{}+{}+{} [{}]", r.width, r.height, r.left, r.top, e.unwrap_or_default())
                    })
                    .collect();
                format!("faces {} {}", faces.len(), rects.join(" "))
            }
            Err(e) => format!("error {}: {e}", e.kind()),
        };
        let line = format!("{path}\t{outcome}\n");
        std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes()).expect("stdout");
    }
}
