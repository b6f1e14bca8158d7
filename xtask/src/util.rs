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

/// The photo sizes the bench and load measure: a 640x480 photo, a 1920x1080 frame and a
/// 12-megapixel phone photo (4032x3024).
pub const PHOTO_SIZES: [(u32, u32); 3] = [(640, 480), (1920, 1080), (4032, 3024)];

/// A `width x height` JPEG with one face, made from the registry photo obama.jpg: scaled to fill
/// the frame (cropped across the middle, from the top, where the face is), with sensor-like
/// noise (seeded, so every run sends the same bytes), at JPEG quality 90; cached in
/// `$FACE_CACHE/bench` (delete a file to make it again).
pub fn photo_sized(width: u32, height: u32) -> Result<PathBuf> {
    let out = cache_dir().join(format!("bench/photo_{width}x{height}.jpg"));
    if out.exists() {
        return Ok(out);
    }
    let path = testdata_dir().join("obama.jpg");
    let bytes = std::fs::read(&path).with_context(|| format!("{}: run `cargo xtask testdata`", path.display()))?;
    let img = face_core::decode(&bytes, &Default::default())?;
    let scale = (width as f32 / img.width() as f32).max(height as f32 / img.height() as f32);
    let (w, h) = ((img.width() as f32 * scale).ceil() as u32, (img.height() as f32 * scale).ceil() as u32);
    let filled = imageops::resize(&img, w.max(width), h.max(height), imageops::FilterType::Triangle);
    // Cropped across the middle and from the top, where the face is.
    let mut frame = imageops::crop_imm(&filled, (w - width) / 2, 0, width, height).to_image();
    // Noise like a phone sensor's at indoor light: about 4 levels (sum of three uniform draws),
    // stronger in the blue channel.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((u64::from(width) << 32) | u64::from(height)));
    for p in frame.pixels_mut() {
        for (c, v) in p.0.iter_mut().enumerate() {
            let spread = if c == 2 { 11 } else { 9 };
            let n: i16 = (0..3).map(|_| (rng.next() % spread) as i16 - (spread / 2) as i16).sum();
            *v = (*v as i16 + n).clamp(0, 255) as u8;
        }
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&frame)?;
    if jpeg.len() > 6 * 1024 * 1024 {
        bail!("the {width}x{height} photo came out at {} bytes, over the Face API's 6 MB", jpeg.len());
    }
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    let part = out.with_extension("jpg.part");
    std::fs::write(&part, &jpeg)?;
    std::fs::rename(&part, &out)?;
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

/// An HTTP agent for the project's own servers: statuses as answers, not errors; 60 s a call.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// A metric's value from the face-server at `base` (its `/metrics`); `None` when absent.
pub fn metric(base: &str, name: &str) -> Option<f64> {
    let text = agent().get(format!("{base}/metrics")).call().ok()?.into_body().read_to_string().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `ready` until it holds; fails naming `what` after `within`.
pub fn wait_until(what: &str, within: std::time::Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + within;
    while !ready() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{what}: not so after {} s", within.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// An xtask command's flags, read one way by the commands that take `--name` flags: `--name
/// value` options and `--name` switches, each at most once; an unknown or repeated flag, or an
/// option without its value, is refused with the command's usage.
#[derive(Debug)]
pub struct Flags {
    values: std::collections::HashMap<String, String>,
    switches: std::collections::HashSet<String>,
    usage: &'static str,
}

impl Flags {
    /// `options` take a value; `switches` take none.
    pub fn parse(args: &[String], usage: &'static str, options: &[&str], switches: &[&str]) -> Result<Flags> {
        let mut flags = Flags { values: Default::default(), switches: Default::default(), usage };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if options.contains(&a.as_str()) {
                let value = it.next().with_context(|| format!("{a} needs a value; {usage}"))?;
                if flags.values.insert(a.clone(), value.clone()).is_some() {
                    bail!("{a} is given twice; {usage}");
                }
            } else if switches.contains(&a.as_str()) {
                if !flags.switches.insert(a.clone()) {
                    bail!("{a} is given twice; {usage}");
                }
            } else {
                bail!("unknown argument {a:?}; {usage}");
            }
        }
        Ok(flags)
    }

    /// The option's value as a `T`, or `default` when it is not given.
    pub fn value<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{name} {v:?}: {e}; {}", self.usage)),
        }
    }

    /// The option's value as given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the switch is given.
    pub fn on(&self, name: &str) -> bool {
        self.switches.contains(name)
    }

    /// An error that says what is wrong, with the usage.
    pub fn refuse(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!("{what}; {}", self.usage)
    }
}

#[cfg(test)]
mod flag_tests {
    use super::Flags;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_read_options_and_switches_and_refuse_the_rest() {
        let f = Flags::parse(&args(&["--runs", "3", "--tls"]), "usage: x", &["--runs", "--data"], &["--tls"]).unwrap();
        assert_eq!(f.value("--runs", 7usize).unwrap(), 3);
        assert_eq!(f.value("--data", 9u8).unwrap(), 9);
        assert!(f.on("--tls") && f.text("--data").is_none());
        let unknown = Flags::parse(&args(&["--rnus", "3"]), "usage: x", &["--runs"], &[]).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown argument \"--rnus\"; usage: x");
        let missing = Flags::parse(&args(&["--runs"]), "usage: x", &["--runs"], &[]).unwrap_err();
        assert_eq!(missing.to_string(), "--runs needs a value; usage: x");
        let f = Flags::parse(&args(&["--runs", "many"]), "usage: x", &["--runs"], &[]).unwrap();
        assert!(f.value("--runs", 1usize).unwrap_err().to_string().starts_with("--runs \"many\": invalid digit"));
        assert_eq!(f.refuse("--runs takes 1 or more").to_string(), "--runs takes 1 or more; usage: x");
        for twice in [&["--runs", "1", "--runs", "2"][..], &["--tls", "--tls"]] {
            let err = Flags::parse(&args(twice), "usage: x", &["--runs"], &["--tls"]).unwrap_err();
            assert_eq!(err.to_string(), format!("{} is given twice; usage: x", twice[0]));
        }
    }
}
