//! Running face-core on wasm32-wasip1 (with simd128) inside wasmtime, reading the same models
//! and photos as the native run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{cache_dir, python, repo_root, run};

/// Makes `cmd` (a cargo command with `--target wasm32-wasip1`) run its output in wasmtime through
/// `xtask/wasi_runner.py`, with the repo, the cache and `extra` folders visible at their host paths.
pub fn wasip1_runner(cmd: &mut Command, extra: &[&Path]) -> Result<()> {
    let python = python()?;
    let runner = format!("{} {}", python.display(), repo_root().join("xtask/wasi_runner.py").display());
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)?;
    let mut dirs = vec![repo_root().canonicalize()?, cache.canonicalize()?];
    for dir in extra {
        dirs.push(dir.canonicalize()?);
    }
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    cmd.env("CARGO_TARGET_WASM32_WASIP1_RUNNER", runner)
        .env("FACE_WASI_DIRS", dirs.join(":"))
        .env("FACE_CACHE", cache.canonicalize()?);
    Ok(())
}

/// `cargo xtask wasm-test`: face-core's tests on wasm32-wasip1 in wasmtime.
pub fn wasm_test(args: &[String]) -> Result<()> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--package", "face-core", "--target", "wasm32-wasip1", "--lib", "--test", "tests"]).args(args);
    wasip1_runner(&mut cmd, &[])?;
    if let Err(e) = run(&mut cmd) {
        bail!("face-core's tests failed on wasm32-wasip1: {e}");
    }
    Ok(())
}

/// `cargo xtask guest`: face-wasm as a wasm32-wasip2 component, the guest face-server runs, and
/// face-server (dev profile) to precompile it beside itself with its sha256 record (the only
/// compiled guest face-server trusts; redone when the guest or face-server changed).
pub fn guest(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask guest");
    }
    run(Command::new(env!("CARGO")).args([
        "build",
        "--package",
        "face-wasm",
        "--features",
        "component",
        "--target",
        "wasm32-wasip2",
    ]))?;
    run(Command::new(env!("CARGO")).args(["build", "--package", "face-host", "--bin", "face-server"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    precompile(&target.join("debug/face-server"), &target.join("wasm32-wasip2/debug/face_wasm.wasm"))
}

/// Runs `server compile-guest wasm` unless the record beside `wasm` is newer than both.
pub fn precompile(server: &Path, wasm: &Path) -> Result<()> {
    let record = wasm.with_extension("cwasm.sha256");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match (modified(&record), modified(wasm), modified(server)) {
        (Some(r), Some(w), Some(s)) => r >= w && r >= s,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    eprintln!("guest: precompiling {} (Cranelift, once per build)", wasm.display());
    run(Command::new(server).arg("compile-guest").arg(wasm))
}
