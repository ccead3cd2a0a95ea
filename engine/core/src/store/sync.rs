//! The real durability point under sled 0.34: `fdatasync` of the files sled wrote.
//!
//! sled's `flush` writes its log buffers with `pwrite` and then calls `sync_file_range`
//! (sled issues #1351 and #1452). That starts and waits for write-back of the page cache
//! but flushes neither the disk's volatile write cache nor the file's metadata (its size,
//! for a log that grew), so after a power loss or a VM crash a flushed write can be gone
//! although every `kill -9` test passes. Large values sled keeps as separate blob files are
//! not synced at all. After each flush [`Syncer::sync`] therefore calls `fdatasync` on the
//! log file, `fdatasync` on every blob file it has not synced yet, and `fsync` on a
//! directory whose entries changed (new segment, snapshot or blob files), so the names of
//! new files survive too. The store calls it inside its group commit: concurrent writers
//! share one sync.

use crate::locks::MutexExt;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Syncs the files of one sled database directory. Cheap to clone.
#[derive(Clone)]
pub(super) struct Syncer {
    inner: Arc<Inner>,
}

struct Inner {
    /// sled's log file (`<db>/db`).
    log: File,
    /// The database directory.
    dir: PathBuf,
    /// Names seen in the database directory and in `blobs/` at the last sync.
    seen: Mutex<(BTreeSet<OsString>, BTreeSet<OsString>)>,
}

fn names(dir: &Path) -> io::Result<BTreeSet<OsString>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.file_name())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Syncer {
    /// A syncer for the sled database in `dir` (already opened by sled). Syncs the
    /// directory and its parent once, so the files sled just created are durable by name.
    pub(super) fn open(dir: &Path) -> io::Result<Syncer> {
        let log = File::open(dir.join("db"))?;
        log.sync_all()?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let seen = (names(dir)?, names(&dir.join("blobs"))?);
        Ok(Syncer {
            inner: Arc::new(Inner {
                log,
                dir: dir.to_path_buf(),
                seen: Mutex::new(seen),
            }),
        })
    }

    /// Make everything sled has written so far durable: `fdatasync` of the log and of new
    /// blob files, `fsync` of a directory whose entries changed.
    pub(super) fn sync(&self) -> io::Result<()> {
        let i = &self.inner;
        // Held for the whole sync: two syncs never race over the sets of names.
        let mut seen = i.seen.locked();
        i.log.sync_data()?;
        let blobs_dir = i.dir.join("blobs");
        let blobs = names(&blobs_dir)?;
        let mut new_blob = false;
        for name in blobs.difference(&seen.1) {
            match File::open(blobs_dir.join(name)) {
                Ok(f) => f.sync_data()?,
                // Collected by sled between the listing and now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            new_blob = true;
        }
        if new_blob || blobs.len() != seen.1.len() {
            sync_dir(&blobs_dir).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })?;
        }
        let top = names(&i.dir)?;
        if top != seen.0 {
            sync_dir(&i.dir)?;
        }
        *seen = (top, blobs);
        Ok(())
    }
}
