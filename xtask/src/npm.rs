//! `cargo xtask npm`: the npm package (face-wasm's wasm-bindgen API for wasm32-unknown-unknown,
//! wasm-bindgen-cli at exactly the crate's version, the JS entry points and types) in wasm/pkg.
//! `cargo xtask npm-test`: builds it, then runs Node's test runner on wasm/npm-test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{models_dir, repo_root, run, target_dir, testdata_dir};

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

pub fn npm(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask npm");
    }
    ensure_wasm_bindgen()?;
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
    let pkg = pkg_dir();
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("clearing {}", pkg.display()))?;
    }
    let dist = pkg.join("dist");
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-name", "face_engine", "--out-dir"])
        .arg(&dist)
        .arg(&wasm))?;
    let template = repo_root().join("wasm/npm");
    for file in ["package.json", "README.md", "engine.js", "index.js", "node.js", "index.d.ts"] {
        copy(&template.join(file), &pkg.join(file))?;
    }
    eprintln!("npm: package in {}", pkg.display());
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// wasm/npm-test with its npm tools (playwright-core, binaryen) installed; returns the folder.
pub fn test_tools() -> Result<PathBuf> {
    let tests = repo_root().join("wasm/npm-test");
    if !["playwright-core", "binaryen"].iter().all(|p| tests.join("node_modules").join(p).exists()) {
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
        .env("FACE_NPM_PKG", pkg_dir())
        .env("FACE_MODELS_DIR", models_dir())
        .env("FACE_TESTDATA", testdata_dir());
    run(&mut cmd)
}
