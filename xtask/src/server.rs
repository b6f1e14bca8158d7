//! face-server and the guest it runs, built for the subcommands that start it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::util::{Killed, cache_dir, free_port, models_dir, run, target_dir};

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

/// face-server on loopback for a subcommand: its binary and guest, its folder (data in
/// `dir/data`, logs beside), its port, the face-meter's port and the key both accept.
pub struct Served<'a> {
    pub server: &'a Path,
    pub guest: &'a Path,
    pub dir: &'a Path,
    pub port: u16,
    pub meter: u16,
    pub key: &'a str,
}

impl Served<'_> {
    /// Starts it with the settings every subcommand gives, then `extra`; its log goes to `dir/log`.
    pub fn start(&self, extra: &[&str], log: &str) -> Result<Killed> {
        let log = std::fs::File::create(self.dir.join(log))?;
        Ok(Killed(
            Command::new(self.server)
                .args([
                    "Eula=accept",
                    &format!("Billing=http://127.0.0.1:{}/", self.meter),
                    &format!("ApiKey={}", self.key),
                ])
                .arg(format!("Server:Address=127.0.0.1:{}", self.port))
                .arg(format!("Storage:DataDirectory={}", self.dir.join("data").display()))
                .arg(format!("Engine:Guest={}", self.guest.display()))
                .arg(format!("Engine:Models={}", models_dir().display()))
                .arg(format!("Engine:Cache={}", cache_dir().join("guest-cache").display()))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        ))
    }
}
