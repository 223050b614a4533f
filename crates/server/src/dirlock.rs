//! `DataDirLock`: the server's claim on its data directory, taken before
//! anything listens — `statecraft.pid` in the directory, locked with
//! `flock(2)` and holding the owner's pid and start time.
//!
//! Invariants: while a server holds the lock, a second server on the same
//! directory fails at start, before printing "listening", with an error that
//! names the directory and the holder (its pid file's contents); the lock is
//! the kernel's (released when the process dies, even by kill -9), the file's
//! contents are only information; a directory that cannot be created or
//! written is named in the error.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use crate::error::ServerError;

/// The pid file's name inside the data directory.
pub const PID_FILE: &str = "statecraft.pid";

/// A held claim on a data directory; released on drop.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

/// Claims `dir` for this process (creating it if missing).
pub(crate) fn claim(dir: &Path) -> Result<DataDirLock, ServerError> {
    let fail = |what: &'static str, path: PathBuf| {
        move |source: std::io::Error| ServerError::DataDir { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail("create", dir.to_path_buf()))?;
    let path = dir.join(PID_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(fail("write in", dir.to_path_buf()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
            return Err(ServerError::DataDirInUse {
                path: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "another process (no pid recorded yet)".to_owned()
                } else {
                    holder
                },
            });
        }
        return Err(fail("lock", path)(err));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = format!(
        "pid={} started_at_unix={now} program=statecraft/{}\n",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(stamp.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(fail("write in", dir.to_path_buf()))?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_and_a_released_one_is_free() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = claim(dir.path()).expect("first claim");
        let err = claim(dir.path()).expect_err("held");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid={}", std::process::id())),
            "{msg}"
        );
        drop(first);
        claim(dir.path()).expect("free again");
    }

    #[test]
    fn an_unusable_directory_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let err = claim(&file.join("data")).expect_err("cannot create under a file");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
