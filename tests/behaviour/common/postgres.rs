//! A PostgreSQL cluster of the tests' own: `initdb` in a temporary directory and
//! `postgres` on a free loopback port, run as the `postgres` user when the tests run as
//! root (both refuse to run as root), killed when the test process ends. One cluster is
//! shared by the tests of a process ([`shared`]), each test in a database of its own
//! ([`database`]); a test that stops and starts the server makes its own ([`Cluster::start`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    _keep: tempfile::TempDir,
}

/// Where Debian's (or any) PostgreSQL programs are: on the `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn bin(program: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .collect::<Vec<_>>()
    });
    let mut found: Vec<PathBuf> = on_path.filter(|p| p.is_file()).collect();
    if found.is_empty() {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path().join("bin").join(program))
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        found = versions.into_iter().rev().filter(|p| p.is_file()).collect();
    }
    found.into_iter().next().unwrap_or_else(|| {
        panic!("`{program}` not found: install PostgreSQL (Debian: apt-get install postgresql)")
    })
}

fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root; with `die` it is killed
/// when the thread that started it ends.
fn as_postgres(program: &Path, die: bool) -> Command {
    if root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
        if die {
            c.arg("--pdeathsig=KILL");
        }
        c.arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Cluster {
    /// A new cluster, serving once this returns.
    pub fn start() -> Self {
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().join("data");
        if root() {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(keep.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let made = as_postgres(&bin("initdb"), false)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            port,
            dir,
            _keep: keep,
        };
        cluster.serve();
        cluster
    }

    /// Start the server (again), from a thread that lives as long as the process: the
    /// server dies with it.
    pub fn serve(&self) {
        let mut server = as_postgres(&bin("postgres"), true);
        server
            .arg("-D")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.parent().unwrap())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let (started, pid) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut child = server.spawn().unwrap();
            started.send(child.id()).unwrap();
            let _ = child.wait();
            // Keep the thread (the server's parent) for the rest of the process.
            loop {
                std::thread::park();
            }
        });
        pid.recv().unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.psql("postgres", "SELECT 1").is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL did not start on port {}", self.port);
    }

    /// Stop the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let stopped = as_postgres(&bin("pg_ctl"), false)
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            stopped.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }

    /// Run `sql` in `db` with psql; its output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
            ])
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            false => Err(String::from_utf8_lossy(&out.stderr).to_string()),
        }
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let name = format!("w{}", uuid::Uuid::new_v4().simple());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// The cluster the tests of this process share.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// A new database in the shared cluster; its URL.
pub fn database() -> String {
    shared().database()
}
