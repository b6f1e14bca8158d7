//! A throwaway PostgreSQL cluster for `cargo xtask e2e --hosts N`: `initdb` in a temporary
//! folder (as the `postgres` user when run as root, since PostgreSQL refuses root), the server
//! on a free loopback port, one database `face`; stopped and removed when the value drops.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pub url: String,
}

/// The folder of PostgreSQL's programs: `FACE_PG_BIN`, or the newest under /usr/lib/postgresql.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FACE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").is_file()).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    versions.pop().context(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: run scripts/setup.sh --test, which installs \
         Debian's postgresql, or set FACE_PG_BIN to their folder",
    )
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Cluster {
    pub fn start() -> Result<Cluster> {
        Self::start_with(false)
    }

    /// A cluster that takes TLS only (`hostnossl ... reject`): a certificate authority and a
    /// server certificate for `localhost` made here with openssl; `url` asks for `verify-full`.
    pub fn start_tls() -> Result<Cluster> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Cluster> {
        let bin = bin_dir()?;
        let as_postgres = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("face-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("postgresql://face@127.0.0.1:{port}/face");
        let cluster = Cluster { dir, bin, as_postgres, url };
        if as_postgres && !Command::new("chown").arg("postgres:").arg(&cluster.dir).status()?.success() {
            bail!("chown postgres: {} failed", cluster.dir.display());
        }
        let data = cluster.dir.join("data");
        let (data, log, sockets) = (data.display().to_string(), cluster.dir.join("log"), cluster.dir.display());
        cluster.run("initdb", &["-D", &data, "-U", "face", "--auth=trust", "-E", "UTF8", "--no-sync"])?;
        let mut options = format!("-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200");
        let mut cluster = cluster;
        if tls {
            let certs = cluster.dir.join("tls");
            std::fs::create_dir_all(&certs)?;
            openssl(
                &certs,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=face e2e CA",
                ],
            )?;
            std::fs::write(certs.join("server.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")?;
            openssl(
                &certs,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            )?;
            openssl(
                &certs,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "server.crt",
                    "-days",
                    "2",
                    "-extfile",
                    "server.ext",
                ],
            )?;
            if cluster.as_postgres && !Command::new("chown").arg("-R").arg("postgres:").arg(&certs).status()?.success()
            {
                bail!("chown postgres: {} failed", certs.display());
            }
            std::fs::set_permissions(certs.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            // Connections in the clear over the network are refused (the local socket stays, for createdb).
            let hba = std::path::Path::new(&data).join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba)?;
            std::fs::write(&hba, format!("hostnossl all all all reject\n{rest}"))?;
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                certs.display()
            ));
            cluster.url = format!(
                "postgresql://face@localhost:{port}/face?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                certs.join("ca.crt").display()
            );
        }
        cluster.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log.display().to_string(), "-w", "start"])?;
        cluster.run(
            "createdb",
            &["-h", &cluster.dir.display().to_string(), "-p", &port.to_string(), "-U", "face", "face"],
        )?;
        let how = if tls { "TLS only, verify-full" } else { "no TLS" };
        eprintln!("postgres: a throwaway cluster on 127.0.0.1:{port}, {how} ({})", cluster.dir.display());
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let out = self.command(program).args(args).output().with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
