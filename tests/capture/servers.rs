//! Real database servers from Debian's packages, started by hand on
//! loopback in a private directory, stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tempdir;

fn wait_port(port: u16, server: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("server exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never opened: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// mariadbd on 127.0.0.1:`port`, grant tables skipped (any user logs in).
    pub fn mariadb(port: u16) -> Server {
        let dir = tempdir();
        let data = dir.path().join("data");
        run(Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display())));
        let log = dir.path().join("error.log");
        let mut child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg("--skip-grant-tables")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn mariadbd (apt-get install mariadb-server)");
        wait_port(port, &mut child, &log);
        let binary = std::fs::canonicalize(which("mariadbd")).unwrap();
        Server { child, port, binary, _dir: dir }
    }

    /// PostgreSQL's postgres on 127.0.0.1:`port` as user postgres, trust authentication.
    pub fn postgresql(port: u16) -> Server {
        let bindir = postgres_bindir();
        let dir = tempdir();
        run(Command::new("chown").arg("postgres:postgres").arg(dir.path()));
        let data = dir.path().join("data");
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("initdb"))
            .args(["--auth=trust", "-U", "postgres", "-D"])
            .arg(&data));
        let log = dir.path().join("postgres.log");
        let mut child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn postgres");
        wait_port(port, &mut child, &log);
        Server { child, port, binary: bindir.join("postgres"), _dir: dir }
    }
}

fn which(name: &str) -> PathBuf {
    let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(out.status.success(), "{name} is not installed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// /usr/lib/postgresql/<newest>/bin, as Debian installs it.
pub fn postgres_bindir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql-15)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/*/bin/postgres")
}
