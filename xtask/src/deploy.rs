//! The deployment files, checked against a built image: `compose.yaml` (several hosts on one
//! PostgreSQL, with a local meter) and `deploy/kubernetes.yaml`. Every face-server container they
//! describe gets its arguments and environment passed to `IMAGE check-settings`, which accepts
//! them only as a start would; with `--compose`, the stack is started, the official Python
//! client's run goes through both hosts (restarting them with `stop` and `start`), and the stack
//! is taken down with its volumes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::container::Engine;
use crate::util::{free_port, python, repo_root, run, testdata_dir, wait_until};

fn yaml_documents(path: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(repo_root().join(path)).with_context(|| format!("reading {path}"))?;
    serde_saphyr::from_multiple(&text).with_context(|| format!("{path} is not valid YAML"))
}

/// `${NAME}`, `${NAME:-default}` and `${NAME:?message}` in `text`, from `vars`.
fn interpolate(text: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').with_context(|| format!("unclosed ${{ in {text:?}"))? + start;
        let inner = &rest[start + 2..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner.split_once(":?").map_or(inner, |(n, _)| n), None),
        };
        match (vars.get(name), fallback) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => bail!("{name} is not set for {text:?}"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Runs `image check-settings` with `args` and `env`; fails with what it said.
fn check_settings(engine: &Engine, image: &str, what: &str, args: &[String], env: &[(String, String)]) -> Result<()> {
    let mut argv: Vec<String> = vec!["run".into(), "--rm".into()];
    for (k, v) in env {
        argv.extend(["-e".into(), format!("{k}={v}")]);
    }
    argv.extend([image.to_owned(), "check-settings".to_owned()]);
    argv.extend(args.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = engine.output(&argv)?;
    if !out.status.success() {
        bail!("{what}: face-server refuses its settings: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The face-server containers of compose.yaml and deploy/kubernetes.yaml, their settings checked
/// by the image's own `check-settings`.
pub fn check_files(engine: &Engine, image: &str) -> Result<()> {
    let vars: BTreeMap<&str, String> =
        [("FACE_API_KEY", "a-key".to_owned()), ("POSTGRES_PASSWORD", "a-password".to_owned())].into();
    let compose = yaml_documents("compose.yaml")?.pop().context("compose.yaml is empty")?;
    let services = compose["services"].as_object().context("compose.yaml has no services")?;
    let mut servers = 0;
    for (name, service) in services {
        let is_server =
            service["image"].as_str().is_some_and(|i| i.contains("face-server")) && service.get("entrypoint").is_none();
        if !is_server {
            continue;
        }
        let args = strings(&service["command"]).iter().map(|a| interpolate(a, &vars)).collect::<Result<Vec<_>>>()?;
        let mut env = Vec::new();
        for (k, v) in service["environment"].as_object().into_iter().flatten() {
            env.push((k.clone(), interpolate(v.as_str().unwrap_or(""), &vars)?));
        }
        check_settings(engine, image, &format!("compose.yaml service {name}"), &args, &env)?;
        servers += 1;
    }
    if servers < 2 {
        bail!("compose.yaml has {servers} face-server services; the stack is for several hosts");
    }

    let docs = yaml_documents("deploy/kubernetes.yaml")?;
    let secret = docs.iter().find(|d| d["kind"] == "Secret").context("deploy/kubernetes.yaml has no Secret")?;
    let deployment =
        docs.iter().find(|d| d["kind"] == "Deployment").context("deploy/kubernetes.yaml has no Deployment")?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().context("an env entry without a name")?.to_owned();
        let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::Object(r)) => {
                let key = r["key"].as_str().unwrap_or("");
                secret["stringData"][key].as_str().with_context(|| format!("the Secret has no {key}"))?.to_owned()
            }
            _ => bail!("env {name}: neither a value nor a secretKeyRef"),
        };
        env.push((name, value));
    }
    check_settings(engine, image, "deploy/kubernetes.yaml", &strings(&container["args"]), &env)?;
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/status")] {
        if container[probe]["httpGet"]["path"] != path {
            bail!("deploy/kubernetes.yaml: the {probe} should ask {path}");
        }
    }
    eprintln!(
        "image-test: compose.yaml ({servers} hosts) and deploy/kubernetes.yaml: settings accepted by check-settings"
    );
    Ok(())
}

/// The compose tool: podman-compose, or docker compose.
fn compose_tool() -> Result<Vec<&'static str>> {
    let works = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().is_ok_and(|o| o.status.success());
    if works(&["podman-compose", "--version"]) {
        Ok(vec!["podman-compose"])
    } else if works(&["docker", "compose", "version"]) {
        Ok(vec!["docker", "compose"])
    } else {
        bail!("--compose needs podman-compose (Debian: apt-get install podman-compose) or docker compose")
    }
}

/// Takes the stack down, volumes included, when dropped.
struct Stack {
    tool: Vec<&'static str>,
    env: Vec<(String, String)>,
    project: String,
}

impl Stack {
    fn command(&self) -> Command {
        let mut c = Command::new(self.tool[0]);
        c.args(&self.tool[1..]).arg("-f").arg(repo_root().join("compose.yaml")).args(["-p", &self.project]);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.command().args(["down", "-v"]).output();
    }
}

/// compose.yaml started with `image`, the Python client's run through both hosts, then down.
pub fn compose(engine: &Engine, image: &str) -> Result<()> {
    let tool = compose_tool()?;
    let ports = [free_port()?, free_port()?];
    let mut env: Vec<(String, String)> =
        engine.env().into_iter().map(|(k, v)| (k.to_owned(), v.display().to_string())).collect();
    env.extend([
        ("FACE_IMAGE".to_owned(), image.to_owned()),
        ("FACE_API_KEY".to_owned(), "e2e-key".to_owned()),
        ("POSTGRES_PASSWORD".to_owned(), format!("pw{}", std::process::id())),
        ("FACE_PORT_1".to_owned(), ports[0].to_string()),
        ("FACE_PORT_2".to_owned(), ports[1].to_string()),
        // The client's photo server, for detect by URL, is on this machine: a private address.
        ("FACE_ALLOW_PRIVATE_URLS".to_owned(), "true".to_owned()),
    ]);
    let stack = Stack { tool, env, project: format!("face-compose-{}", std::process::id()) };
    let started = Instant::now();
    run(stack.command().args(["up", "-d"]))?;
    for port in ports {
        let url = format!("http://127.0.0.1:{port}/ready");
        let ready = wait_until(&format!("the stack's host on port {port} is ready"), Duration::from_secs(300), || {
            ureq::get(&url).call().is_ok_and(|r| r.status() == 200)
        });
        if let Err(e) = ready {
            let _ = stack.command().arg("logs").status();
            return Err(e);
        }
    }
    eprintln!("image-test: compose.yaml up, both hosts ready in {:.0} s", started.elapsed().as_secs_f64());
    // The two face-server containers, by the compose labels.
    let mut hosts = Vec::new();
    for (service, port) in ["face-1", "face-2"].iter().zip(ports) {
        let names = engine.ok(&[
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", stack.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ])?;
        let name = names.lines().next().with_context(|| format!("no running container of service {service}"))?;
        hosts.extend(["--stack-host".to_owned(), format!("{name}={port}")]);
    }
    run(Command::new(python()?)
        .arg(repo_root().join("tests/e2e/python_client.py"))
        .args(&hosts)
        .arg("--photos")
        .arg(testdata_dir())
        .envs(engine.env()))?;
    drop(stack);
    eprintln!("image-test: the Python client's run passed through compose.yaml's two hosts on PostgreSQL");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_interpolated_as_compose_does() {
        let vars: BTreeMap<&str, String> = [("A", "1".to_owned())].into();
        assert_eq!(interpolate("x${A}y${B:-2}z", &vars).unwrap(), "x1y2z");
        assert_eq!(interpolate("${A:?set A}", &vars).unwrap(), "1");
        assert!(interpolate("${B:?set B}", &vars).is_err());
    }

    #[test]
    fn the_deployment_files_are_valid_yaml() {
        assert_eq!(yaml_documents("deploy/kubernetes.yaml").unwrap().len(), 3);
        let compose = &yaml_documents("compose.yaml").unwrap()[0];
        // The hosts share their settings through a merge key.
        assert!(compose["services"]["face-2"]["command"].is_array(), "{compose}");
    }
}
