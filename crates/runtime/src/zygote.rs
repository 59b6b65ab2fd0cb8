//! berth's side of the monitor zygote (`monitor::zygote`): one zygote per monitor command,
//! started at the first container start and asked for every monitor after it. A zygote that
//! is gone is started again once; when that fails too, or when the zygote is behind on its
//! requests, the monitor is started as its own executable, as before zygotes existed. The
//! zygote ends by itself when this process closes its end of the socket (at exit or kill).

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use nix::errno::Errno;

use crate::monitor::{send_request, socket_pair, MAX_SHARE_KEY, TITLE_ROOM, ZYGOTE_ARG};

/// The longest container directory path a request may carry (the zygote's buffer).
const MAX_PATH: usize = 4096;

struct Zygote {
    sock: OwnedFd,
    child: Child,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zygotes of this process, by monitor command (executable and arguments).
type Zygotes = HashMap<(PathBuf, Vec<String>), Zygote>;

static ZYGOTES: Mutex<Option<Zygotes>> = Mutex::new(None);

/// Why a zygote did not take a request.
#[derive(Debug)]
pub(crate) enum Refused {
    /// It is behind on its requests: start this monitor another way, keep the zygote.
    Busy,
    /// It could not be started, or the request cannot be sent.
    Failed(std::io::Error),
}

/// Asks the zygote of `exe args` to start the monitor of `dir`, reporting on `sync` (the
/// write end of the start's sync pipe, which the caller closes afterwards): a monitor of its
/// own for an empty `share`, else one it may share with the containers asked for with the
/// same key (ADR 0018). Blocking, briefly.
pub(crate) fn ask(
    exe: &Path,
    args: &[String],
    dir: &Path,
    share: &str,
    sync: BorrowedFd<'_>,
) -> Result<(), Refused> {
    let path = dir.as_os_str().as_bytes();
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(Refused::Failed(std::io::Error::other(
            "container directory path too long for the zygote",
        )));
    }
    if share.len() > MAX_SHARE_KEY || share.contains('\0') {
        return Err(Refused::Failed(std::io::Error::other(
            "a share key of the monitor is at most 256 bytes without NUL",
        )));
    }
    let mut request = Vec::with_capacity(share.len() + 1 + path.len());
    request.extend_from_slice(share.as_bytes());
    request.push(0);
    request.extend_from_slice(path);
    let path = request.as_slice();
    let mut all = ZYGOTES.lock().unwrap_or_else(|p| p.into_inner());
    let zygotes = all.get_or_insert_with(HashMap::new);
    let key = (exe.to_path_buf(), args.to_vec());
    let mut restarted = false;
    loop {
        let zygote = match zygotes.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(start(exe, args).map_err(Refused::Failed)?)
            }
        };
        match send_request(&zygote.sock, path, sync) {
            Ok(()) => return Ok(()),
            Err(Errno::EAGAIN) => return Err(Refused::Busy),
            Err(e) => {
                // Gone (killed, or exited): reaped by the drop, started again once.
                zygotes.remove(&key);
                if restarted {
                    return Err(Refused::Failed(e.into()));
                }
                restarted = true;
                tracing::warn!(monitor = %exe.display(), error = %e, "the monitor zygote is gone; starting another");
            }
        }
    }
}

/// Starts `exe args --zygote` with one end of a new socket pair as its stdin.
fn start(exe: &Path, args: &[String]) -> std::io::Result<Zygote> {
    let (ours, theirs) = socket_pair()?;
    // No pre_exec hook: std spawns this with posix_spawn, as the monitors themselves.
    let child = Command::new(exe)
        .args(args)
        .arg(ZYGOTE_ARG)
        // Room for each monitor's own command line (`monitor::zygote`).
        .arg(" ".repeat(TITLE_ROOM))
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    tracing::debug!(pid = child.id(), monitor = %exe.display(), "monitor zygote started");
    Ok(Zygote { sock: ours, child })
}
