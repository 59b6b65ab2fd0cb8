//! A PostgreSQL server for tests and benchmarks, started from Debian's binaries in a
//! temporary directory, listening on 127.0.0.1 on a free port and on a socket in that
//! directory. PostgreSQL refuses to run as root: as root, the server runs as the `postgres`
//! system user. A missing PostgreSQL is a panic, never a skip. The server goes when the
//! process ends: stopped at exit, and sent SIGQUIT by the kernel should the process die
//! without exiting.

#![allow(dead_code)]

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The PostgreSQL server of this process.
pub struct Server {
    pub port: u16,
    /// Holds the data directory and the server's socket.
    pub dir: PathBuf,
    pub bin: PathBuf,
}

/// The server's pid and directory, for the stop at exit.
static RUNNING: Mutex<Option<(i32, PathBuf)>> = Mutex::new(None);
static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The user connected as (the server's superuser).
pub const USER: &str = "berth";

/// The server, started at the first call.
pub fn server() -> &'static Server {
    SERVER.get_or_init(start)
}

/// A URL of a new, empty database on the server.
pub async fn new_database() -> String {
    let s = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&s.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    s.url(&name)
}

/// One row of `sql` on the database at `url`, on a connection of its own.
pub async fn query_one(url: &str, sql: &str) -> tokio_postgres::Row {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let row = client.query_one(sql, &[]).await.unwrap();
    drop(client);
    let _ = task.await;
    row
}

impl Server {
    /// The URL of database `db` over TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The key=value form of the URL of database `db` over the Unix socket.
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "host={} port={} user={USER} dbname={db}",
            self.dir.display(),
            self.port
        )
    }
}

/// The directory of the newest PostgreSQL installed the Debian way.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!("PostgreSQL is missing: no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")
    })
}

/// uid and gid of the `postgres` system user.
fn postgres_user() -> (u32, u32) {
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "PostgreSQL refuses to run as root and there is no postgres user to run it as"
    );
    // SAFETY: pw is not null.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// A command that runs as the `postgres` user when this process is root.
fn as_server_user(program: PathBuf) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = postgres_user();
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn start() -> Server {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("berth-pg-")
        .tempdir()
        .unwrap()
        .keep();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = postgres_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let data = dir.join("data");
    let out = as_server_user(bin.join("initdb"))
        .args([
            "-N",
            "-A",
            "trust",
            "-U",
            USER,
            "--locale=C",
            "-E",
            "UTF8",
            "-D",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: the handler only reads a mutex-guarded static and calls async-signal-safe
    // functions or plain library code at exit.
    unsafe { libc::atexit(stop_at_exit) };
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if run(&bin, &dir, &data, port) {
            return Server { port, dir, bin };
        }
    }
    panic!(
        "PostgreSQL did not start; see {}",
        dir.join("log").display()
    );
}

/// Starts the server on `port` and waits until it takes connections; false when it ended
/// first (the port was taken meanwhile).
fn run(bin: &Path, dir: &Path, data: &Path, port: u16) -> bool {
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut cmd = as_server_user(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        // Test data need not survive a crash of the machine.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; it runs in the child after the change of user, so
    // the kernel keeps the setting through exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The parent-death signal follows the thread that spawned the server: a thread that lives
    // as long as the server does (it waits for it), not the test's.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = cmd.spawn().unwrap();
        let _ = tx.send(child.id() as i32);
        let _ = child.wait();
    });
    let pid = rx.recv().unwrap();
    *RUNNING.lock().unwrap() = Some((pid, dir.to_path_buf()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return true;
        }
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stops the server (immediate shutdown) and removes its directory.
extern "C" fn stop_at_exit() {
    let Some((pid, dir)) = RUNNING.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    // SAFETY: plain signals to the server's pid, which its waiting thread reaps.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(dir);
}
