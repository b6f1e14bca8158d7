use std::path::PathBuf;
use std::sync::OnceLock;

use face_core::{Engine, ModelSet, RgbImage};

fn models_dir() -> PathBuf {
    // At run time (cargo test sets it): clones share one target folder.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("..")
        .join("models")
}

fn testdata_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACE_CACHE") {
        return PathBuf::from(dir).join("testdata");
    }
    let home = std::env::var_os("HOME").expect("HOME or FACE_CACHE must be set to find the test photos");
    PathBuf::from(home).join(".cache").join("face").join("testdata")
}

fn read(path: PathBuf, hint: &str) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `{hint}` first", path.display()))
}

pub fn model(name: &str) -> Vec<u8> {
    read(models_dir().join(name), "cargo xtask models")
}

/// A test photo by file name (obama.jpg, obama2.jpg, obama3.jpg, biden.jpg, ...).
pub fn photo(name: &str) -> Vec<u8> {
    read(testdata_dir().join(name), "cargo xtask testdata")
}

pub fn decoded(name: &str) -> RgbImage {
    face_core::decode(&photo(name), &Default::default()).expect("test photo decodes")
}

/// One engine for the whole test binary: loading and optimising the models takes seconds.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let models = ModelSet::read_with(|name| Ok::<_, ()>(model(name))).unwrap();
        Engine::new(&models.bytes()).expect("models load")
    })
}

pub fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}
