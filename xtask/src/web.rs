//! `cargo xtask web`: the in-browser demo as one static folder, `web/dist/`: the page (`web/`),
//! the npm package with its models (`pkg/`, built by `cargo xtask npm`). Any static
//! file server can serve it; face-server serves it at `/demo`.
//! `cargo xtask web-test`: builds it and runs the demo's Playwright test (web/test) in headless
//! Chromium against the page served by the real face-server; with `--data ../shared/data`, also
//! every group photo of the labelled data.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{Flags, models_dir, repo_root, run};

/// The files of the page itself, copied from `web/`.
const PAGE: [&str; 3] = ["index.html", "app.js", "style.css"];
pub fn dist_dir() -> PathBuf {
    repo_root().join("web/dist")
}

pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {} to {}", entry.path().display(), target.display()))?;
        }
    }
    Ok(())
}

/// Builds the npm package and assembles `web/dist`.
pub fn web(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask web");
    }
    crate::npm::npm(&[])?;
    let dist = dist_dir();
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("clearing {}", dist.display()))?;
    }
    std::fs::create_dir_all(&dist)?;
    for file in PAGE {
        std::fs::copy(repo_root().join("web").join(file), dist.join(file))
            .with_context(|| format!("copying web/{file}"))?;
    }
    // The package brings the models (pkg/models), which the page loads with its own progress.
    copy_dir(&crate::npm::pkg_dir(), &dist.join("pkg"))?;
    eprintln!("web: the demo in {} (serve it with any static file server, or face-server at /demo)", dist.display());
    Ok(())
}

/// Builds the demo and face-server, then runs web/test with Node's test runner.
pub fn web_test(args: &[String]) -> Result<()> {
    let flags = Flags::parse(args, "usage: cargo xtask web-test [--data DIR]", &["--data"], &[])?;
    let shared = match flags.text("--data") {
        Some(dir) => Some(PathBuf::from(dir).canonicalize().with_context(|| format!("--data {dir}"))?),
        None => None,
    };
    web(&[])?;
    let (server, guest) = crate::server::build_server()?;
    let tools = crate::npm::test_tools()?;
    let mut node = Command::new("node");
    if let Some(dir) = shared {
        node.env("FACE_SHARED_DATA", dir);
    }
    run(node
        .args(["--test", "--test-reporter=spec"])
        .arg(repo_root().join("web/test/demo.test.mjs"))
        .env("FACE_NPM_TOOLS", &tools)
        .env("FACE_SERVER", server)
        .env("FACE_GUEST", guest)
        .env("FACE_MODELS", models_dir())
        .env("FACE_GUEST_CACHE", crate::util::cache_dir().join("guest-cache"))
        .env("FACE_DEMO", dist_dir())
        .env("FACE_PHOTOS", crate::util::testdata_dir())
        .env("FACE_ARTIFACTS", crate::util::cache_dir().join("artifacts")))
}
