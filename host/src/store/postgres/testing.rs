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

impl Cluster {
    pub(crate) fn start() -> Cluster {
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
        let options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            cluster.dir.display(),
            port
        );
        let log = cluster.dir.join("log");
        cluster.run("pg_ctl", &["-D", path(&data), "-o", &options, "-l", path(&log), "-w", "start"]);
        cluster
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
