//! The files of one log: the current `<name>` and the rotated `<name>.1` (newest) to
//! `<name>.<keep>` (oldest), and scanning them for entries.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::parse::{Assembler, Line};

/// `<path>.<n>`: the n-th newest rotated file.
pub(crate) fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The numbers of the rotated files of `path` that exist, ascending (newest first).
fn rotated_numbers(path: &Path) -> Vec<u32> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut nums: Vec<u32> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_string_lossy()
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            (n > 0).then_some(n)
        })
        .collect();
    nums.sort_unstable();
    nums
}

/// An open log file and its identity.
pub(crate) struct LogFile {
    pub file: File,
    pub id: (u64, u64),
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        match File::open(path) {
            Ok(file) => {
                let m = file.metadata()?;
                Ok(Some(Self {
                    file,
                    id: (m.dev(), m.ino()),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The identity of the file at `path` now, if any.
pub(crate) fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens every file of the log, oldest first. They are opened newest first and each file is
/// kept once, so a rotation in between neither skips nor repeats a file.
pub(crate) fn open_all(path: &Path) -> io::Result<Vec<LogFile>> {
    let mut files: Vec<LogFile> = Vec::new();
    let mut add = |p: &Path| -> io::Result<()> {
        if let Some(f) = LogFile::open(p)? {
            if !files.iter().any(|g| g.id == f.id) {
                files.push(f);
            }
        }
        Ok(())
    };
    add(path)?;
    for n in rotated_numbers(path) {
        add(&rotated(path, n))?;
    }
    files.reverse();
    Ok(files)
}

/// Reads entries from the file's position, handing each completed line to `each` until it
/// returns `false`. An unfinished last entry (still being written) is left unread. Returns
/// the position after the last entry read, where the file is left.
pub(crate) fn scan(
    file: &mut File,
    asm: &mut Assembler,
    mut each: impl FnMut(Line) -> bool,
) -> io::Result<u64> {
    let mut pos = file.stream_position()?;
    let mut reader = BufReader::with_capacity(64 * 1024, &mut *file);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 || raw.last() != Some(&b'\n') {
            break;
        }
        pos += n as u64;
        raw.pop();
        if let Some(line) = asm.feed(&raw) {
            if !each(line) {
                break;
            }
        }
    }
    drop(reader);
    file.seek(SeekFrom::Start(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rotated_files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        for (name, text) in [
            ("0.log", "c"),
            ("0.log.1", "b"),
            ("0.log.2", "a"),
            ("0.log.x", ""),
        ] {
            fs::write(dir.path().join(name), text).unwrap();
        }
        fs::write(dir.path().join("1.log.1"), "other").unwrap();
        assert_eq!(rotated_numbers(&p), [1, 2]);
        let texts: Vec<String> = open_all(&p)
            .unwrap()
            .into_iter()
            .map(|f| io::read_to_string(f.file).unwrap())
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert!(open_all(&dir.path().join("none.log")).unwrap().is_empty());
        assert_eq!(rotated(&p, 3), dir.path().join("0.log.3"));
    }
}
