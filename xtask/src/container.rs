//! `cargo xtask image [--offline-bases] [--package DIR] [--tag NAME]`: the container image, built
//! from the Dockerfile with the container engine found here (podman, or docker where its engine
//! runs). Without `--package`, the whole Dockerfile: the build stage compiles everything
//! (`cargo xtask package --release`) and the runtime stage takes its folder. With `--package DIR`
//! (a folder `cargo xtask package` made), only the runtime stage, over that folder
//! (`--build-arg PACKAGE=prebuilt`), which is how the test command builds it.
//!
//! Base images are pulled where a registry answers. Where none can be pulled (`--offline-bases`,
//! or when a pull fails, said in the output), they are made from Debian's packages under the
//! Dockerfile's own `FROM` names: `debian:<release>-slim` with mmdebstrap, and `rust:<x.y>-<release>`
//! from the same release plus this machine's Rust toolchain (the Dockerfile's version, with its
//! wasm targets) and this machine's extra certificate authorities (a site's TLS proxy).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{Flags, cache_dir, repo_root, run};

/// The container engine: podman (preferred), or docker where its daemon answers.
#[derive(Debug, Clone)]
pub struct Engine {
    pub program: &'static str,
}

impl Engine {
    pub fn find() -> Result<Engine> {
        let works =
            |program: &str, arg: &str| Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success());
        if works("podman", "--version") {
            return Ok(Engine { program: "podman" });
        }
        if works("docker", "info") {
            return Ok(Engine { program: "docker" });
        }
        bail!(
            "no container engine: install podman (Debian: apt-get install podman runc; scripts/setup.sh --test does) \
             or run a Docker daemon"
        )
    }

    /// A command of the engine. podman reads the project's containers.conf (runc, cgroupfs, no
    /// default ulimits: what runs as root on these machines) unless CONTAINERS_CONF names another.
    pub fn command(&self) -> Command {
        let mut c = Command::new(self.program);
        c.envs(self.env());
        c
    }

    /// The environment the engine's commands need, for other programs that run it (the Python
    /// client's container mode).
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut env = vec![("FACE_CONTAINER_ENGINE", PathBuf::from(self.program))];
        if self.program == "podman" && std::env::var_os("CONTAINERS_CONF").is_none() {
            env.push(("CONTAINERS_CONF", repo_root().join("scripts/containers.conf")));
        }
        env
    }

    /// Runs the engine with `args`; its output, whatever the exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        self.command().args(args).output().with_context(|| format!("running {} {}", self.program, args.join(" ")))
    }

    /// Runs the engine with `args`, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!(
                "{} {} failed ({}): {}",
                self.program,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn image_exists(&self, name: &str) -> bool {
        self.output(&["image", "inspect", "--format", "{{.Id}}", name]).is_ok_and(|o| o.status.success())
    }

    /// The image's size in bytes, as the engine reports it.
    pub fn image_size(&self, name: &str) -> Result<u64> {
        let text = self.ok(&["image", "inspect", "--format", "{{.Size}}", name])?;
        text.trim().parse().with_context(|| format!("the size of {name}: {text:?}"))
    }
}

/// The base images the Dockerfile's stages start `FROM` (not its own stages, not `scratch`, not
/// a name made of build arguments).
pub fn base_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut bases = Vec::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [from, image, rest @ ..] = words.as_slice() else { continue };
        if !from.eq_ignore_ascii_case("FROM") {
            continue;
        }
        let image = image.to_string();
        if image != "scratch" && !image.contains('$') && !stages.contains(&image) && !bases.contains(&image) {
            bases.push(image);
        }
        if let [as_, name] = rest
            && as_.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_string());
        }
    }
    bases
}

/// What `name` is, for making it from Debian's packages: a Debian slim image or a Rust image of a
/// Debian release.
#[derive(Debug, PartialEq)]
enum Base {
    DebianSlim { release: String },
    Rust { version: String, release: String },
}

fn base_kind(name: &str) -> Option<Base> {
    let (repo, tag) = name.rsplit_once(':')?;
    let repo = repo.trim_start_matches("docker.io/").trim_start_matches("library/");
    match repo {
        "debian" => Some(Base::DebianSlim { release: tag.strip_suffix("-slim")?.to_owned() }),
        "rust" => {
            let (version, release) = tag.split_once('-')?;
            Some(Base::Rust { version: version.to_owned(), release: release.to_owned() })
        }
        _ => None,
    }
}

/// The name an image made here is stored under, so that the Dockerfile's short name finds it.
fn full_name(name: &str) -> String {
    match name.matches('/').count() {
        0 => format!("docker.io/library/{name}"),
        1 if !name.split('/').next().unwrap_or("").contains('.') => format!("docker.io/{name}"),
        _ => name.to_owned(),
    }
}

/// Debian's container images' apt settings (their /etc/apt/apt.conf.d/docker-clean): the
/// package caches are neither written nor kept.
const APT_CLEAN: &str = r#"DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";"#;

/// mmdebstrap's options for a small image: minbase, merged /usr, no documentation or locales.
fn mmdebstrap(release: &str, include: &[&str], hooks: &[String], out: &Path) -> Command {
    let mut c = Command::new("mmdebstrap");
    c.args(["--variant=minbase", "--quiet", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]);
    for path in ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*"] {
        c.arg(format!("--dpkgopt=path-exclude={path}"));
    }
    c.arg("--dpkgopt=path-include=/usr/share/doc/*/copyright");
    if !include.is_empty() {
        c.arg(format!("--include={}", include.join(",")));
    }
    for hook in hooks {
        c.arg(format!("--customize-hook={hook}"));
    }
    // apt as in Debian's own container images: no package caches kept after an install.
    c.arg(format!(r#"--customize-hook=printf '%s\n' '{APT_CLEAN}' > "$1/etc/apt/apt.conf.d/docker-clean""#));
    c.arg(r#"--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*"#);
    c.arg(release).arg(out);
    if let Ok(mirror) = std::env::var("FACE_DEBIAN_MIRROR") {
        c.arg(mirror);
    }
    c
}

/// This machine's extra certificate authorities (a site's TLS-inspecting proxy, say), which the
/// build stage needs to reach the registries the way this machine does.
fn extra_authorities() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/local/share/ca-certificates")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "crt")).collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Makes base image `name` from Debian's packages.
fn make_base(engine: &Engine, name: &str) -> Result<()> {
    let Some(kind) = base_kind(name) else {
        bail!("{name} cannot be made from Debian's packages here (only debian:<release>-slim and rust:<x.y>-<release>)")
    };
    if Command::new("mmdebstrap").arg("--version").output().is_err() {
        bail!("making {name} needs mmdebstrap (Debian: apt-get install mmdebstrap)");
    }
    let work = cache_dir().join("image-bases");
    std::fs::create_dir_all(&work)?;
    let tar = work.join("rootfs.tar");
    let started = Instant::now();
    let mut changes: Vec<String> = Vec::new();
    match &kind {
        Base::DebianSlim { release } => {
            eprintln!("image: making {name} from Debian {release}'s packages (mmdebstrap, minbase)");
            run(&mut mmdebstrap(release, &[], &[], &tar))?;
        }
        Base::Rust { version, release } => {
            // This machine's toolchain of the Dockerfile's version, with its targets.
            let toolchain = format!("{version}.0");
            let sysroot = rust_sysroot(&toolchain).with_context(|| {
                format!("making {name} needs Rust {toolchain} on this machine (rustup toolchain install {toolchain})")
            })?;
            let rustup = which("rustup").context("making the Rust image needs rustup on this machine")?;
            eprintln!(
                "image: making {name} from Debian {release}'s packages and this machine's Rust {toolchain} ({})",
                sysroot.display()
            );
            let dir = format!("{toolchain}-x86_64-unknown-linux-gnu");
            let mut hooks = vec![
                r#"mkdir -p "$1/usr/local/rustup/toolchains" "$1/usr/local/cargo/bin""#.to_owned(),
                format!(
                    r#"tar -C '{}' --exclude=./share/doc -c . | tar -C "$1/usr/local/rustup/toolchains" --one-top-level={dir} -x"#,
                    sysroot.display()
                ),
                format!(
                    r#"cp '{}' "$1/usr/local/cargo/bin/rustup" && for p in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do ln -s rustup "$1/usr/local/cargo/bin/$p"; done"#,
                    rustup.display()
                ),
                format!(
                    r#"printf 'version = "12"\ndefault_toolchain = "{dir}"\nprofile = "minimal"\n' > "$1/usr/local/rustup/settings.toml""#
                ),
            ];
            let authorities = extra_authorities();
            if !authorities.is_empty() {
                let files: Vec<String> = authorities.iter().map(|p| format!("'{}'", p.display())).collect();
                hooks.push(format!(
                    r#"cp {} "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates"#,
                    files.join(" ")
                ));
                eprintln!("image: with this machine's certificate authorities {}", files.join(", "));
            }
            let include = [
                "ca-certificates",
                "curl",
                "git",
                "gcc",
                "g++",
                "libc6-dev",
                "make",
                "pkg-config",
                "procps",
                "xz-utils",
            ];
            run(&mut mmdebstrap(release, &include, &hooks, &tar))?;
            let bundle = "/etc/ssl/certs/ca-certificates.crt";
            changes.extend([
                "ENV RUSTUP_HOME=/usr/local/rustup".to_owned(),
                "ENV CARGO_HOME=/usr/local/cargo".to_owned(),
                "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
                // pip and Node read their own certificate lists unless told: the system's.
                format!("ENV PIP_CERT={bundle}"),
                format!("ENV NODE_EXTRA_CA_CERTS={bundle}"),
                format!("ENV SSL_CERT_FILE={bundle}"),
            ]);
        }
    }
    let mut import = engine.command();
    import.arg("import");
    for change in &changes {
        import.args(["--change", change]);
    }
    run(import.arg(&tar).arg(full_name(name)))?;
    let _ = std::fs::remove_file(&tar);
    eprintln!("image: made {name} in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The sysroot of this machine's Rust `version` (x.y.z): the toolchain of that name, or the
/// default one when it is that version.
fn rust_sysroot(version: &str) -> Option<PathBuf> {
    let rustc = |args: &[&str]| {
        Command::new("rustc")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let pinned = format!("+{version}");
    if let Some(root) = rustc(&[&pinned, "--print", "sysroot"]) {
        return Some(PathBuf::from(root));
    }
    let current = rustc(&["--version"])?;
    current.starts_with(&format!("rustc {version} ")).then(|| rustc(&["--print", "sysroot"]).map(PathBuf::from))?
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// Every image of `bases` is there afterwards: already present, pulled, or made from Debian's packages.
pub fn ensure_bases(engine: &Engine, bases: &[String], offline: bool) -> Result<()> {
    for name in bases {
        if engine.image_exists(name) || engine.image_exists(&full_name(name)) {
            continue;
        }
        if !offline {
            eprintln!("image: pulling {name}");
            let pulled = engine.output(&["pull", &full_name(name)])?;
            if pulled.status.success() {
                continue;
            }
            eprintln!(
                "image: {name} could not be pulled ({}); making it from Debian's packages instead (what --offline-bases does)",
                String::from_utf8_lossy(&pulled.stderr).lines().last().unwrap_or("").trim()
            );
        }
        make_base(engine, name)?;
    }
    Ok(())
}

#[derive(Debug)]
pub struct Built {
    pub tag: String,
    pub seconds: f64,
    pub size: u64,
}

/// Builds the image: the whole Dockerfile, or (with `package`) the runtime stage over that folder.
pub fn build(engine: &Engine, package: Option<&Path>, tag: &str, offline: bool) -> Result<Built> {
    let root = repo_root();
    let dockerfile = root.join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile)?;
    let bases: Vec<String> =
        base_images(&text).into_iter().filter(|b| package.is_none() || !b.starts_with("rust:")).collect();
    ensure_bases(engine, &bases, offline)?;
    let version = workspace_value("version")?;
    let source = workspace_value("repository")?;
    let started = Instant::now();
    let mut cmd = engine.command();
    cmd.arg("build");
    if engine.program == "podman" {
        // Docker's format keeps HEALTHCHECK, which OCI images drop.
        cmd.args(["--format", "docker"]);
    }
    cmd.args(["--network", "host", "-f"]).arg(&dockerfile);
    cmd.args(["--build-arg", &format!("VERSION={version}"), "--build-arg", &format!("SOURCE={source}")]);
    cmd.args(["-t", tag]);
    match package {
        None => {
            cmd.arg(&root);
        }
        Some(dir) => {
            // A context of its own: the package folder as `package/`, hard-linked where it can be.
            let context = cache_dir().join("image-context");
            let _ = std::fs::remove_dir_all(&context);
            std::fs::create_dir_all(&context)?;
            let copied = Command::new("cp").arg("-al").arg(dir).arg(context.join("package")).status();
            if !copied.is_ok_and(|s| s.success()) {
                // Another file system: a copy, into a clean folder.
                let _ = std::fs::remove_dir_all(context.join("package"));
                run(Command::new("cp").arg("-a").arg(dir).arg(context.join("package")))?;
            }
            cmd.args(["--build-arg", "PACKAGE=prebuilt"]).arg(&context);
        }
    }
    run(&mut cmd)?;
    let seconds = started.elapsed().as_secs_f64();
    let size = engine.image_size(tag)?;
    Ok(Built { tag: tag.to_owned(), seconds, size })
}

/// `version` or `repository` of `[workspace.package]` in Cargo.toml.
fn workspace_value(key: &str) -> Result<String> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml"))?;
    let value: toml::Value = toml::from_str(&text)?;
    value["workspace"]["package"][key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("Cargo.toml has no workspace.package.{key}"))
}

/// What takes the space in the image: its layers' total, the base's, and /opt/face's largest parts.
pub fn report(engine: &Engine, built: &Built) -> Result<()> {
    eprintln!(
        "image: {} built in {:.0} s; {:.0} MB ({} bytes)",
        built.tag,
        built.seconds,
        built.size as f64 / 1e6,
        built.size
    );
    let du = engine.ok(&["run", "--rm", "--entrypoint", "du", &built.tag, "-a", "-k", "-d", "2", "/opt/face"])?;
    let mut rows: Vec<(u64, &str)> =
        du.lines().filter_map(|l| l.split_once('\t')).filter_map(|(k, p)| Some((k.parse().ok()?, p))).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    eprintln!("image: the largest parts of /opt/face (MB):");
    for (kb, path) in rows.iter().take(12) {
        eprintln!("  {:>7.1}  {path}", *kb as f64 / 1024.0);
    }
    Ok(())
}

pub fn image(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask image [--offline-bases] [--package DIR] [--tag NAME]";
    let flags = Flags::parse(args, USAGE, &["--package", "--tag"], &["--offline-bases"])?;
    let offline = flags.on("--offline-bases");
    let package: Option<PathBuf> = flags.text("--package").map(PathBuf::from);
    let tag = flags.text("--tag").unwrap_or("face-server:latest").to_owned();
    let engine = Engine::find()?;
    let built = build(&engine, package.as_deref(), &tag, offline)?;
    report(&engine, &built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_bases_are_found_and_known() {
        let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
        let bases = base_images(&text);
        assert_eq!(bases, ["rust:1.95-bookworm", "debian:bookworm-slim"]);
        assert_eq!(base_kind(&bases[0]), Some(Base::Rust { version: "1.95".into(), release: "bookworm".into() }));
        assert_eq!(base_kind(&bases[1]), Some(Base::DebianSlim { release: "bookworm".into() }));
        assert_eq!(full_name("debian:bookworm-slim"), "docker.io/library/debian:bookworm-slim");
        assert_eq!(full_name("quay.io/x/y:1"), "quay.io/x/y:1");
    }
}
