//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary folder (as the `postgres`
//! user when the tests run as root, since PostgreSQL refuses to run as root), the server on a
//! free loopback port, stopped and removed when the value drops. No mock: Debian's PostgreSQL,
//! which `scripts/setup.sh` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The folder of PostgreSQL's server programs: `FACE_PG_BIN`, or the newest under
/// /usr/lib/postgresql, or `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").is_file()).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    if let Some(newest) = versions.pop() {
        return newest;
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: run scripts/setup.sh, which installs \
             Debian's postgresql, or set FACE_PG_BIN to their folder"
        ),
    }
}

/// The certificates of a cluster started with TLS: its certificate authority, and a client
/// certificate for the role `certuser` (whose connections must present one).
pub(crate) struct Certificates {
    pub(crate) ca: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
}

/// `openssl` with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        Self::start_with(false).0
    }

    /// A cluster with `ssl=on`: a certificate authority made here, a server certificate for
    /// `localhost` only, and the role `certuser` admitted only over TLS with a client certificate.
    pub(crate) fn start_tls() -> (Cluster, Certificates) {
        let (cluster, certs) = Self::start_with(true);
        (cluster, certs.expect("certificates"))
    }

    fn start_with(tls: bool) -> (Cluster, Option<Certificates>) {
        let bin = bin_dir();
        let as_postgres = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let dir = std::env::temp_dir().join(format!("face-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary folder for the cluster");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let cluster = Cluster { dir, bin, port, as_postgres };
        if as_postgres {
            let status = Command::new("chown").arg("postgres:").arg(&cluster.dir).status();
            assert!(status.is_ok_and(|s| s.success()), "chown postgres: {}", cluster.dir.display());
        }
        let data = cluster.dir.join("data");
        cluster.run("initdb", &["-D", path(&data), "-U", "face", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let mut options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            cluster.dir.display(),
            port
        );
        let certs = tls.then(|| {
            let dir = cluster.dir.join("tls");
            std::fs::create_dir_all(&dir).unwrap();
            let days = ["-days", "2"];
            openssl(
                &dir,
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
                    days[0],
                    days[1],
                    "-subj",
                    "/CN=face test CA",
                ],
            );
            for (name, subject, ext) in [
                ("server", "/CN=localhost", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"),
                ("client", "/CN=certuser", "basicConstraints=CA:FALSE\n"),
            ] {
                std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
                openssl(
                    &dir,
                    &[
                        "req",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        subject,
                    ],
                );
                openssl(
                    &dir,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        &format!("{name}.csr"),
                        "-CA",
                        "ca.crt",
                        "-CAkey",
                        "ca.key",
                        "-CAcreateserial",
                        "-out",
                        &format!("{name}.crt"),
                        days[0],
                        days[1],
                        "-extfile",
                        &format!("{name}.ext"),
                    ],
                );
            }
            if cluster.as_postgres {
                let status = Command::new("chown").arg("-R").arg("postgres:").arg(&dir).status();
                assert!(status.is_ok_and(|s| s.success()));
            }
            std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            // certuser: TLS and a client certificate naming it, or nothing.
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(
                &hba,
                format!("hostssl all certuser 127.0.0.1/32 cert\nhost all certuser all reject\n{rest}"),
            )
            .unwrap();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key -c ssl_ca_file={0}/ca.crt",
                dir.display()
            ));
            Certificates {
                ca: dir.join("ca.crt"),
                client_cert: dir.join("client.crt"),
                client_key: dir.join("client.key"),
            }
        });
        let log = cluster.dir.join("log");
        cluster.run("pg_ctl", &["-D", path(&data), "-o", &options, "-l", path(&log), "-w", "start"]);
        (cluster, certs)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("{} did not run: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The connection string of a new, empty database of the cluster.
    pub(crate) fn database(&self) -> String {
        let name = format!("face_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            ::postgres::Client::connect(&self.url("postgres"), ::postgres::NoTls).expect("the cluster answers");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("a new database");
        self.url(&name)
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgresql://face@127.0.0.1:{}/{db}", self.port)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(["-D", path(&data), "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
