//! The data directory's lock file: one Squall process per data directory.

use super::StoreError;
use fs2::FileExt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// How long opening the store waits for another process's lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Take the data directory's lock file, recording who holds it.
pub(super) fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    // A process killed a moment ago may hold the lock for a few milliseconds more (until
    // the kernel has closed all its files): wait a little before calling the dir busy.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut locked = f.try_lock_exclusive().is_ok();
    while !locked && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        locked = f.try_lock_exclusive().is_ok();
    }
    if !locked {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = if holder.trim().is_empty() {
            "unknown holder".to_string()
        } else {
            holder.trim().to_string()
        };
        return Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            holder,
        });
    }
    let cmd: Vec<String> = std::env::args().take(3).collect();
    f.set_len(0)?;
    f.rewind()?;
    write!(
        f,
        "pid {} `{}` since {}",
        std::process::id(),
        cmd.join(" "),
        crate::model::now_rfc3339()
    )?;
    f.sync_all()?;
    Ok(f)
}
