//! face-server and the guest it runs, built for the subcommands that start it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::util::{Killed, free_port, run, target_dir};

/// face-server and the guest it runs, built; returns their paths.
pub fn build_server() -> Result<(PathBuf, PathBuf)> {
    crate::wasm::guest(&[])?;
    run(Command::new(env!("CARGO")).args(["build", "--package", "face-host", "--bins"]))?;
    let target = target_dir();
    Ok((target.join("debug/face-server"), target.join("wasm32-wasip2/debug/face_wasm.wasm")))
}

/// face-meter (beside `server`) on a free loopback port, accepting `key`, its data and log in
/// `dir`; returns it and its port.
pub fn start_meter(server: &Path, dir: &Path, key: &str) -> Result<(Killed, u16)> {
    let port = free_port()?;
    let meter = Killed(
        Command::new(server.with_file_name("face-meter"))
            .arg(format!("Keys={key}"))
            .arg(format!("Address=127.0.0.1:{port}"))
            .arg(format!("DataDirectory={}", dir.join("meter").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("meter.log"))?)
            .spawn()?,
    );
    Ok((meter, port))
}

/// Waits until the face-server at `base` answers `/ready`, 180 s at most.
pub fn wait_ready(agent: &ureq::Agent, base: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while agent.get(format!("{base}/ready")).call().map(|r| r.status() != 200).unwrap_or(true) {
        if Instant::now() > deadline {
            bail!("{what} was not ready within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
