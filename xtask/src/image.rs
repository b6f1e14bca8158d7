//! `cargo xtask image-test`: checks the container image without a container engine (none runs
//! on these machines): hadolint lints the Dockerfile; `cargo xtask package` (the command the
//! Dockerfile's build stage runs) fills a folder as the image's /opt/face; then the packaged
//! face-server is started the way the image's ENTRYPOINT starts it, with the Dockerfile's ENV
//! and only `Eula=accept Billing=<url> ApiKey=<key>` as arguments, next to the packaged
//! face-meter; its HEALTHCHECK command, the API, /swagger and /demo are checked. Where podman is
//! installed, `cargo xtask image-test --build` also builds the image.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{Killed, cache_dir, free_port, python, repo_root, run, testdata_dir};

/// `ENV` pairs of the Dockerfile's last stage.
fn dockerfile_env(text: &str) -> Vec<(String, String)> {
    let last_stage = text.rsplit("\nFROM ").next().unwrap_or(text);
    last_stage
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|rest| {
            rest.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn get(url: &str, key: Option<&str>) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(k) = key {
        req = req.header("Ocp-Apim-Subscription-Key", k);
    }
    let r = req.call().ok()?;
    let status = r.status().as_u16();
    Some((status, r.into_body().read_to_string().unwrap_or_default()))
}

pub fn image_test(args: &[String]) -> Result<()> {
    let build = match args {
        [] => false,
        [flag] if flag == "--build" => true,
        _ => bail!("usage: cargo xtask image-test [--build]"),
    };
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;

    // Lint.
    let hadolint = python()?.with_file_name("hadolint");
    run(Command::new(&hadolint).arg("--config").arg(root.join(".hadolint.yaml")).arg(root.join("Dockerfile")))?;
    for needed in [
        "EXPOSE 5000",
        "VOLUME [\"/data\"]",
        "HEALTHCHECK",
        "USER 10001:10001",
        "ENTRYPOINT [\"/opt/face/face-server\"]",
    ] {
        if !dockerfile.contains(needed) {
            bail!("the Dockerfile lacks {needed}");
        }
    }

    // The image's /opt/face, made by the build stage's command.
    let work = cache_dir().join("image-test");
    let _ = std::fs::remove_dir_all(&work);
    let opt = work.join("opt-face");
    crate::package::package(&[opt.display().to_string()])?;

    // The entrypoint: the Dockerfile's ENV, /data and /output mapped into the work folder.
    let port = free_port()?;
    let meter_port = free_port()?;
    let map = |v: &str| -> String {
        for (inside, outside) in [("/data", work.join("data")), ("/output", work.join("output"))] {
            if let Some(rest) = v.strip_prefix(inside) {
                return format!("{}{rest}", outside.display());
            }
        }
        v.to_owned()
    };
    let key = "image-test-key";
    let _meter = Killed(
        Command::new(opt.join("face-meter"))
            .arg(format!("Keys={key}"))
            .arg(format!("Address=127.0.0.1:{meter_port}"))
            .arg(format!("DataDirectory={}", work.join("meter").display()))
            .spawn()?,
    );
    std::fs::create_dir_all(work.join("data"))?;
    let mut server = Command::new(opt.join("face-server"));
    server.current_dir(work.join("data")).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in dockerfile_env(&dockerfile) {
        server.env(&k, map(&v));
    }
    // The differences from the image: a free loopback port, and the guest cache shared with the
    // other tests (a cold compile of the guest takes a while on two cores).
    server.env("Server__Address", format!("127.0.0.1:{port}"));
    server.env("Engine__Cache", cache_dir().join("guest-cache"));
    server.args(["Eula=accept", &format!("Billing=http://127.0.0.1:{meter_port}/"), &format!("ApiKey={key}")]);
    let _server = Killed(server.spawn().context("starting the packaged face-server")?);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    while get(&format!("{base}/ready"), None).is_none_or(|(s, _)| s != 200) {
        if Instant::now() > deadline {
            bail!("the packaged face-server was not ready in 180 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The image's HEALTHCHECK command exactly, with the server's address in the environment.
    let health = Command::new(opt.join("face-server"))
        .arg("healthcheck")
        .env("Server__Address", format!("127.0.0.1:{port}"))
        .status()?;
    if !health.success() {
        bail!("the HEALTHCHECK command failed");
    }
    check(&base, key, &testdata_dir().join("obama.jpg"))?;
    if build {
        podman_build(&root)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("image-test: Dockerfile linted; the packaged service answered as the image's entrypoint would run it");
    Ok(())
}

fn check(base: &str, key: &str, photo: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let body = std::fs::read(photo)?;
    let response = agent
        .post(format!("{base}/face/v1.0/detect?returnFaceAttributes=age,gender"))
        .header("Ocp-Apim-Subscription-Key", key)
        .header("Content-Type", "application/octet-stream")
        .send(&body[..])?;
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string()?;
    let faces: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("detect answered {status}: {text}"))?;
    if status != 200 || faces.as_array().is_none_or(|f| f.len() != 1) {
        bail!("detect from the packaged server answered {status}: {text}");
    }
    for (path, wanted) in [("/status", "\"Valid\""), ("/swagger", "swagger-ui-bundle.js"), ("/demo/", "<html")] {
        match get(&format!("{base}{path}"), None) {
            Some((200, text)) if text.contains(wanted) => {}
            other => bail!("{path} from the packaged server: {other:?}"),
        }
    }
    Ok(())
}

fn podman_build(root: &Path) -> Result<()> {
    if Command::new("podman").arg("--version").output().is_err() {
        bail!(
            "--build needs podman (apt-get install podman) and local base images rust:1.95-bookworm and debian:bookworm-slim"
        );
    }
    run(Command::new("podman").args(["build", "--isolation=chroot", "-t", "face-server"]).arg(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_stage_env() {
        let text = "FROM a AS b\nENV X=1\nFROM c\nENV A=/data B=2\nRUN x\nENV C=3\n";
        assert_eq!(
            dockerfile_env(text),
            vec![("A".into(), "/data".into()), ("B".into(), "2".into()), ("C".into(), "3".into())]
        );
    }
}
