//! face-server and the guest it runs, built for the subcommands that start it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::util::{run, target_dir};

/// face-server and the guest it runs, built; returns their paths.
pub fn build_server() -> Result<(PathBuf, PathBuf)> {
    crate::wasm::guest(&[])?;
    run(Command::new(env!("CARGO")).args(["build", "--package", "face-host", "--bins"]))?;
    let target = target_dir();
    Ok((target.join("debug/face-server"), target.join("wasm32-wasip2/debug/face_wasm.wasm")))
}
