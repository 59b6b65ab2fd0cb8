//! Size-based rotation, applied by the monitor as it writes: before a write would take the log
//! past `max_bytes`, `<log>.<keep-1>` becomes `<log>.<keep>` (the oldest is dropped) ...,
//! `<log>` becomes `<log>.1`, and a new `<log>` is started. Writes are split only between
//! entries, so every file holds whole entries and a log holds at most about
//! `max_bytes * (keep + 1)` bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::rotated;

/// How large a container's log may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// The size at which the current file is rotated.
    pub max_bytes: u64,
    /// How many rotated files are kept besides the current one.
    pub keep: u32,
}

impl Default for LogRotation {
    /// 10 MiB per file and 4 rotated files, as kubelet does by default (50 MiB in all).
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            keep: 4,
        }
    }
}

/// The monitor's log file, rotated as it grows.
pub(crate) struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<LogRotation>,
}

impl RotatingLog {
    /// Opens (appends to) the log at `path`; `None` never rotates.
    pub fn open(path: &Path, rotation: Option<LogRotation>) -> io::Result<Self> {
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            rotation: rotation.filter(|r| r.max_bytes > 0),
        })
    }

    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        if keep == 0 {
            remove_if_there(&self.path)?;
        } else {
            remove_if_there(&rotated(&self.path, keep))?;
            for n in (1..keep).rev() {
                rename_if_there(&rotated(&self.path, n), &rotated(&self.path, n + 1))?;
            }
            rename_if_there(&self.path, &rotated(&self.path, 1))?;
        }
        self.file = open_log(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingLog {
    /// Writes as many whole entries as fit, rotating first when not even one does.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut len = buf.len();
        if let Some(r) = self.rotation {
            let room = r.max_bytes.saturating_sub(self.size);
            if len as u64 > room {
                let fit = &buf[..(room as usize).min(len)];
                match fit.iter().rposition(|b| *b == b'\n') {
                    Some(i) => len = i + 1,
                    None if self.size > 0 => {
                        self.rotate(r.keep)?;
                        return self.write(buf);
                    }
                    // One entry larger than a whole file: it gets a file of its own.
                    None => {
                        len = buf.iter().position(|b| *b == b'\n').map_or(len, |i| i + 1);
                    }
                }
            }
        }
        let n = self.file.write(&buf[..len])?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

fn remove_if_there(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> String {
        format!("2024-01-01T00:00:00.000000000Z stdout F line {i:04}\n")
    }

    #[test]
    fn rotates_between_entries_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let rot = LogRotation {
            max_bytes: 500,
            keep: 2,
        };
        let mut log = RotatingLog::open(&p, Some(rot)).unwrap();
        for chunk in (0..100).collect::<Vec<_>>().chunks(3) {
            let text: String = chunk.iter().map(|i| entry(*i)).collect();
            log.write_all(text.as_bytes()).unwrap();
        }
        let mut total = 0;
        for name in ["0.log", "0.log.1", "0.log.2"] {
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(
                text.len() <= 500 && text.ends_with('\n'),
                "{name}: {}",
                text.len()
            );
            total += text.len();
        }
        assert!(!dir.path().join("0.log.3").exists());
        assert!(total > 1000);
        let read = super::super::read(&p, &Default::default()).unwrap();
        assert!(read.ends_with("line 0099\n"), "{read}");
        let first: usize = read[5..9].parse().unwrap();
        assert_eq!(read.lines().count(), 100 - first);
    }

    #[test]
    fn oversized_entry_and_no_keep() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let rot = LogRotation {
            max_bytes: 10,
            keep: 0,
        };
        let mut log = RotatingLog::open(&p, Some(rot)).unwrap();
        log.write_all(entry(1).as_bytes()).unwrap();
        log.write_all(entry(2).as_bytes()).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), entry(2));
        assert!(!dir.path().join("0.log.1").exists());
        let mut plain = RotatingLog::open(&p, None).unwrap();
        plain.write_all(entry(3).repeat(10).as_bytes()).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap().lines().count(), 11);
    }
}
