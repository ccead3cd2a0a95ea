//! The data directory's lock file: one Squall process per data directory.

use super::StoreError;
use fs2::FileExt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// How long opening the store waits for the lock of a process that has just ended.
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
    let mut locked = f.try_lock_exclusive().is_ok();
    // A process killed a moment ago may hold the lock a few milliseconds more (until the
    // kernel has closed all its files). Wait a little then — but not when the holder named
    // in the file is alive: that is a running Squall, and the answer is "busy" at once.
    if !locked && !holder_alive(&read_holder(&mut f)) {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        while !locked && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            locked = f.try_lock_exclusive().is_ok();
        }
    }
    if !locked {
        let holder = read_holder(&mut f);
        let holder = if holder.is_empty() {
            "unknown holder".to_string()
        } else {
            holder
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

/// What the lock file says about its holder (`pid N `command` since TIME`), trimmed.
fn read_holder(f: &mut File) -> String {
    let mut holder = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut holder);
    holder.trim().to_string()
}

/// True when the holder's pid is a live process (or the text names no pid).
fn holder_alive(holder: &str) -> bool {
    let Some(pid) = holder
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::{holder_alive, lock_dir};

    #[test]
    fn a_lock_still_held_for_a_dead_process_is_waited_for() {
        let d = tempfile::tempdir().expect("temp dir");
        let first = lock_dir(d.path()).expect("first lock");
        // The file now names a process that no longer exists, as after a kill -9 whose
        // files the kernel has not closed yet.
        std::fs::write(
            d.path().join("LOCK"),
            "pid 2147483000 `squall serve` since then",
        )
        .expect("write");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let second = lock_dir(d.path());
        release.join().expect("thread");
        assert!(second.is_ok(), "{:?}", second.err());
    }

    #[test]
    fn the_holder_is_alive_only_when_its_pid_is() {
        let me = format!("pid {} `squall serve` since now", std::process::id());
        assert!(holder_alive(&me));
        assert!(holder_alive("unknown text"), "no pid: assume a live holder");
        // Past the default pid_max (4,194,304 at most): no such process.
        assert!(!holder_alive("pid 2147483000 `squall serve` since then"));
    }
}
