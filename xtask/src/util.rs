//! Paths, commands and checksums shared by the xtask subcommands.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use face_core::RgbImage;
use image::imageops;
use sha2::{Digest, Sha256};

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    manifest_dir().parent().expect("xtask is inside the repo").to_path_buf()
}

/// xtask's folder: as `cargo run` reports it now, else as it was at build time. Clones share
/// one target folder, so a binary built in one clone may run in another; the runtime value
/// names the clone it runs in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Where downloads, the Python environment and test photos are kept across clones:
/// `$FACE_CACHE`, else `$HOME/.cache/face`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("face")
}

pub fn models_dir() -> PathBuf {
    repo_root().join("models")
}

pub fn testdata_dir() -> PathBuf {
    cache_dir().join("testdata")
}

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    repo_root().join("..").join("shared").join("data")
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a command, failing with its command line when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("command failed ({status}): {line}");
    }
    Ok(())
}

/// The project's Python environment (numpy, onnx, onnxruntime...), created on first use from
/// `models/convert/requirements.txt` and `tests/e2e/requirements.txt`, re-created when either changes.
pub fn python() -> Result<PathBuf> {
    let venv = cache_dir().join("venv");
    let python = venv.join("bin").join("python");
    let requirements =
        [repo_root().join("models/convert/requirements.txt"), repo_root().join("tests/e2e/requirements.txt")];
    let wanted = requirements.iter().map(|r| sha256_file(r)).collect::<Result<Vec<_>>>()?.join(" ");
    let stamp = venv.join(".requirements.sha256");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!("setting up the Python environment in {}", venv.display());
    std::fs::create_dir_all(cache_dir())?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install", "--quiet"]);
    for r in &requirements {
        install.arg("-r").arg(r);
    }
    run(&mut install)?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// The cargo target folder (`CARGO_TARGET_DIR`, a cache outside the clone in this project's scripts).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// obama.jpg fitted onto a grey 640x480 canvas, written once to the cache.
pub fn photo_640x480() -> Result<PathBuf> {
    let out = cache_dir().join("bench/photo_640x480.png");
    if out.exists() {
        return Ok(out);
    }
    let path = testdata_dir().join("obama.jpg");
    let bytes = std::fs::read(&path).with_context(|| format!("{}: run `cargo xtask testdata`", path.display()))?;
    let img = face_core::decode(&bytes, &Default::default())?;
    let scale = (640.0 / img.width() as f32).min(480.0 / img.height() as f32);
    let (w, h) = ((img.width() as f32 * scale) as u32, (img.height() as f32 * scale) as u32);
    let fitted = imageops::resize(&img, w, h, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    imageops::replace(&mut canvas, &fitted, ((640 - w) / 2) as i64, ((480 - h) / 2) as i64);
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    canvas.save(&out)?;
    Ok(out)
}

/// A child process killed (and waited for) on drop.
#[derive(Debug)]
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// (resident, peak resident) MB of a process, from /proc.
pub fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// A small seeded xorshift generator, for reproducible test loads and data.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
