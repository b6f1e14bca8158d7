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
    port: u16,
    tls: bool,
    /// `pg_ctl start`'s server options, for a restart.
    options: String,
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
        let cluster = Cluster { dir, bin, as_postgres, port, tls, options: String::new(), url };
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
        cluster.options = options;
        cluster.run(
            "createdb",
            &["-h", &cluster.dir.display().to_string(), "-p", &port.to_string(), "-U", "face", "face"],
        )?;
        let how = if tls { "TLS only, verify-full" } else { "no TLS" };
        eprintln!("postgres: a throwaway cluster on 127.0.0.1:{port}, {how} ({})", cluster.dir.display());
        Ok(cluster)
    }

    /// Stops the server as an operator's restart or a failover does (`pg_ctl -m fast stop`:
    /// connections cut, transactions in flight rolled back), keeps it down for `down`, and starts
    /// it again on the same data; returns when it accepts connections.
    pub fn restart(&self, down: std::time::Duration) -> Result<()> {
        let data = self.dir.join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])?;
        std::thread::sleep(down);
        let log = self.dir.join("log").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-o", &self.options, "-l", &log, "-w", "start"])
    }

    /// Brings the database to a steady state after a bulk fill, as an operator would after an
    /// import: statistics and visibility map (`VACUUM ANALYZE`), and the fill's dirty pages
    /// written out (`CHECKPOINT`), so that what is measured next does not wait behind them.
    pub fn settle(&self) -> Result<()> {
        self.psql("VACUUM ANALYZE")?;
        self.psql("CHECKPOINT").map(drop)
    }

    /// The database's size on disk, MB (`pg_database_size`).
    pub fn database_mb(&self) -> Result<f64> {
        Ok(self.psql("SELECT pg_database_size(current_database())")?.trim().parse::<f64>()? / 1e6)
    }

    /// What psql prints for `sql` on the database, unaligned and without headers.
    fn psql(&self, sql: &str) -> Result<String> {
        let out =
            Command::new(self.bin.join("psql")).args([&self.url, "-qtAc", sql]).output().context("running psql")?;
        if !out.status.success() {
            bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Debian's PgBouncer in front of a [`Cluster`], in transaction mode: each transaction of a
/// client on any server connection, no prepared statement and no `LISTEN` carried between them.
/// With a TLS cluster it takes TLS from its clients with the cluster's certificate (`url` asks
/// for `verify-full`) and checks the cluster's (`verify-ca`). Stopped when the value drops.
pub struct Pooler {
    child: std::process::Child,
    dir: PathBuf,
    pub url: String,
}

impl Cluster {
    pub fn pgbouncer(&self) -> Result<Pooler> {
        let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("PgBouncer was not found: run scripts/setup.sh --test, which installs Debian's pgbouncer")?;
        let dir = self.dir.join("pgbouncer");
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let certs = self.dir.join("tls");
        let tls = if self.tls {
            format!(
                "server_tls_sslmode = verify-ca\nserver_tls_ca_file = {0}/ca.crt\n\
                 client_tls_sslmode = require\nclient_tls_cert_file = {0}/server.crt\nclient_tls_key_file = {0}/server.key\n",
                certs.display()
            )
        } else {
            String::new()
        };
        std::fs::write(dir.join("users.txt"), "\"face\" \"\"\n")?;
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\nface = host=127.0.0.1 port={cluster} dbname=face\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {dir}/users.txt\n\
                 pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n\
                 ignore_startup_parameters = extra_float_digits\nquery_wait_timeout = 10\nserver_login_retry = 1\n{tls}",
                cluster = self.port,
                dir = dir.display(),
            ),
        )?;
        if self.as_postgres && !Command::new("chown").arg("-R").arg("postgres:").arg(&dir).status()?.success() {
            bail!("chown postgres: {} failed", dir.display());
        }
        // PgBouncer refuses to run as root: as the cluster's user, like the cluster.
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let log = std::fs::File::create(dir.join("log"))?;
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let url = if self.tls {
            format!(
                "postgresql://face@localhost:{port}/face?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                certs.join("ca.crt").display()
            )
        } else {
            format!("postgresql://face@127.0.0.1:{port}/face")
        };
        let pooler = Pooler { child, dir, url };
        crate::util::wait_until(
            &format!("PgBouncer listening on 127.0.0.1:{port}"),
            std::time::Duration::from_secs(30),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        )
        .with_context(|| format!("its log: {}", std::fs::read_to_string(pooler.dir.join("log")).unwrap_or_default()))?;
        eprintln!("postgres: PgBouncer in transaction mode on 127.0.0.1:{port} before the cluster");
        Ok(pooler)
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        // runuser passes the signal on to PgBouncer.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
