//! The lifetime of the processes Squall starts (the `shell` runner's commands): none may go
//! on running once the engine no longer tracks it.
//!
//! * Each command leads a process group of its own, so the whole group can be signalled.
//! * It is started by one of a few long-lived spawner threads, with `PR_SET_PDEATHSIG =
//!   SIGKILL`: the kernel sends that signal when the *thread* that forked the child exits,
//!   so the threads are never let go, and the signal arrives when the engine dies (also by
//!   `kill -9`).
//! * Before the command is executed, its pid, group and start time are recorded in the
//!   store and made durable: the child waits for that between `fork` and `exec` (it reads
//!   one byte from a pipe), so no command runs without its record on disk. Should the
//!   engine die in that window, the waiting child dies with it (the death signal) without
//!   having run anything.
//! * At start-up, before any execution is run again or abandoned, recovery ends every
//!   recorded group that is still alive ([`end_recorded`]): `SIGKILL` to the group, then it
//!   waits until no member is left. The start time (and the boot id) tell a recorded group
//!   from a later one given the same number.
//!
//! Linux only (the death signal and `/proc`); elsewhere only the group is signalled.

use squall_core::locks::MutexExt;
use squall_core::store::{ProcessRecord, Store, StoreError};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Spawner threads: each is busy from `fork` until the child's record is durable, so a few
/// let concurrent starts share one disk flush.
const SPAWNERS: usize = 8;
/// The byte that lets a waiting child go on to `exec`.
const GO: u8 = b'g';
/// The byte that tells it not to (its record could not be written).
const STOP: u8 = b'n';
/// How long recovery waits for a killed group to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The operating system refused (`fork`/`exec` failed, e.g. no such program).
    #[error("{0}")]
    Os(#[from] io::Error),
    /// Its record could not be made durable, so it was not started.
    #[error("the process could not be recorded in the store, so it was not started: {0}")]
    Record(#[from] StoreError),
    /// The spawner threads are gone (cannot happen while the process lives).
    #[error("no spawner thread is available")]
    NoSpawner,
}

/// Where a runner records the processes it starts: the engine's store (none in unit tests
/// of runners, where nothing is recorded but the rest holds).
#[derive(Clone, Default)]
pub struct ProcessBook {
    store: Option<Arc<dyn Store>>,
}

impl ProcessBook {
    /// A book writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ProcessBook { store: Some(store) }
    }
}

/// A started command.
pub struct Started {
    /// The child.
    pub child: Child,
    /// Its process group (and record), ended when dropped.
    pub group: Group,
}

/// The process group of a started command, and its record in the store.
///
/// Dropped, it is [ended](Group::end): no member outlives the run that started it, even when
/// that run is dropped half-way.
pub struct Group {
    pgid: Option<libc::pid_t>,
    /// The leader's start time: once the leader has been collected its number may be
    /// reused, and a process with that pid but another start time is not ours.
    start_time: u64,
    record: Option<(Arc<dyn Store>, String)>,
}

impl Group {
    /// The group id (the leader's pid), while the group has not been ended.
    pub fn id(&self) -> Option<libc::pid_t> {
        self.pgid
    }

    /// Send `signal` to every member.
    pub fn signal(&self, signal: libc::c_int) {
        let Some(pgid) = self.pgid.filter(|p| *p > 1) else {
            return;
        };
        if let Some(leader) = proc_stat(pgid) {
            if leader.start_time != self.start_time {
                // Our leader was collected and its number given to another process.
                return;
            }
        }
        // SAFETY: killpg has no memory-safety preconditions; ESRCH (group gone) is fine.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }

    /// SIGKILL whatever is left of the group and forget its record. The record's removal
    /// is not flushed: a stale record names a group that is gone, which recovery checks.
    pub fn end(&mut self) {
        self.signal(libc::SIGKILL);
        if let (Some(pgid), Some((store, execution))) = (self.pgid.take(), self.record.take()) {
            if let Err(e) = store.forget_process(&execution, pgid) {
                tracing::warn!(execution = %execution, error = %e, "cannot forget a process record");
            }
        }
        self.pgid = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.end();
    }
}

/// Start `command` (already given its pipes and `process_group(0)`) for `execution`: the
/// child leads its own group, dies with the engine, and runs only once `book` holds its
/// record durably.
pub async fn spawn(
    mut command: Command,
    execution: &str,
    book: &ProcessBook,
) -> Result<Started, SpawnError> {
    let (pid_r, pid_w) = pipe(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
    let (go_r, go_w) = pipe(libc::O_CLOEXEC)?;
    let go_w = Arc::new(go_w);
    // SAFETY: the closure runs in the forked child before `exec` and only makes
    // async-signal-safe system calls (prctl, getppid, getpid, close, write, read), without
    // allocating.
    unsafe {
        command.pre_exec(gate(
            std::process::id() as libc::pid_t,
            pid_w.as_raw_fd(),
            go_r.as_raw_fd(),
            go_w.as_raw_fd(),
        ));
    }
    let (tx, mut rx) = oneshot::channel();
    let job = Job {
        command,
        handle: tokio::runtime::Handle::current(),
        reply: tx,
        // The child's ends stay open until the fork has happened, whatever becomes of this
        // future: the child refers to them by number.
        child_ends: (pid_w, go_r, go_w.clone()),
    };
    spawners().send(job).map_err(|_| SpawnError::NoSpawner)?;
    // From here on, dropping this future (or any early return) tells the child to stop.
    let mut gate = Gate { fd: Some(go_w) };
    // SAFETY: `pid_r` is an open descriptor owned by the AsyncFd for its whole life.
    let pid_fd = unsafe { AsyncFd::register(pid_r) }.map_err(io::Error::from)?;
    let pid = tokio::select! {
        pid = read_pid(&pid_fd) => pid?,
        // The child failed before it got to the gate (e.g. its working directory).
        spawned = &mut rx => return Err(match spawned {
            Ok(Ok(_)) => SpawnError::Os(io::Error::other("the child passed its gate unopened")),
            Ok(Err(e)) => SpawnError::Os(e),
            Err(_) => SpawnError::NoSpawner,
        }),
    };
    let Some(start_time) = proc_stat(pid).map(|s| s.start_time) else {
        return Err(SpawnError::Os(io::Error::other(format!(
            "cannot read /proc/{pid}/stat of the child just started"
        ))));
    };
    let mut group = Group {
        pgid: Some(pid),
        start_time,
        record: None,
    };
    if let Some(store) = &book.store {
        if let Err(e) = record(store, execution, pid, start_time).await {
            gate.close(STOP);
            let _ = rx.await;
            return Err(SpawnError::Record(e));
        }
        group.record = Some((store.clone(), execution.to_string()));
    }
    gate.close(GO);
    let child = match rx.await {
        Ok(Ok(child)) => child,
        // `exec` failed (e.g. ENOEXEC): nothing runs under this record, which `group`
        // forgets as it is dropped.
        Ok(Err(e)) => return Err(SpawnError::Os(e)),
        Err(_) => return Err(SpawnError::NoSpawner),
    };
    if child.id().map(|p| p as libc::pid_t) != Some(pid) {
        // Cannot happen: the pid came from the child itself.
        return Err(SpawnError::Os(io::Error::other(
            "the child reported another pid",
        )));
    }
    Ok(Started { child, group })
}

/// Write the record of `pid` and make it durable.
async fn record(
    store: &Arc<dyn Store>,
    execution: &str,
    pid: libc::pid_t,
    start_time: u64,
) -> Result<(), StoreError> {
    let r = ProcessRecord {
        execution: execution.to_string(),
        pid,
        pgid: pid,
        start_time,
        boot_id: boot_id(),
    };
    let t = store.record_process(&r)?;
    store.durable(t).await
}

/// The parent's end of the gate; tells the child to stop if dropped undecided.
struct Gate {
    fd: Option<Arc<OwnedFd>>,
}

impl Gate {
    fn close(&mut self, byte: u8) {
        if let Some(fd) = self.fd.take() {
            // SAFETY: writing one byte from a valid buffer to an open fd; the pipe is
            // empty, so this does not block.
            unsafe {
                libc::write(fd.as_raw_fd(), (&byte as *const u8).cast(), 1);
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.close(STOP);
    }
}

/// The child's side of the gate, run between `fork` and `exec`.
fn gate(
    parent: libc::pid_t,
    pid_w: RawFd,
    go_r: RawFd,
    go_w: RawFd,
) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
    move || {
        // SAFETY: plain system calls on integers and stack buffers (see `spawn`).
        unsafe {
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The engine died before the death signal was armed.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            // Our copy of the parent's end must not keep the pipe open.
            libc::close(go_w);
            let me = libc::getpid().to_ne_bytes();
            loop {
                let n = libc::write(pid_w, me.as_ptr().cast(), me.len());
                if n == me.len() as isize {
                    break;
                }
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(io::Error::from_raw_os_error(libc::EPIPE));
            }
            let mut b = [0u8; 1];
            loop {
                let n = libc::read(go_r, b.as_mut_ptr().cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(io::Error::from_raw_os_error(libc::ECANCELED));
            }
            if b[0] != GO {
                return Err(io::Error::from_raw_os_error(libc::ECANCELED));
            }
            Ok(())
        }
    }
}

async fn read_pid(fd: &AsyncFd<OwnedFd>) -> io::Result<libc::pid_t> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        let mut guard = fd.readable().await?;
        let r = guard.try_io(|inner| {
            // SAFETY: reading into the unfilled tail of a stack buffer.
            let n = unsafe {
                libc::read(
                    inner.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    buf.len() - got,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the child ended before it reported its pid",
                ))
            }
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(libc::pid_t::from_ne_bytes(buf))
}

fn pipe(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

struct Job {
    command: Command,
    handle: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
    child_ends: (OwnedFd, OwnedFd, Arc<OwnedFd>),
}

/// The queue of the spawner threads, started on first use. They never exit: a child's
/// death signal is tied to the thread that forked it.
fn spawners() -> &'static mpsc::Sender<Job> {
    static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..SPAWNERS {
            let rx = rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("squall-spawner-{i}"))
                .spawn(move || loop {
                    let next = rx.locked().recv();
                    let Ok(job) = next else {
                        // No sender left (cannot happen: the queue is static). Stay alive.
                        std::thread::park();
                        continue;
                    };
                    run_job(job);
                });
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start a spawner thread");
            }
        }
        tx
    })
}

fn run_job(job: Job) {
    let Job {
        mut command,
        handle,
        reply,
        child_ends,
    } = job;
    let _rt = handle.enter();
    let spawned = command.spawn();
    drop(child_ends);
    if let Err(Ok(child)) = reply.send(spawned) {
        // Nobody waits for it any more (its run was dropped): end its group now.
        if let Some(pid) = child.id() {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state (`R`, `S`, `Z` for a zombie...).
    pub state: char,
    /// Process group id.
    pub pgid: libc::pid_t,
    /// Start time, clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether it still runs (a zombie has ended; only its parent has not collected it).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The stat of `pid`, `None` when there is no such process.
pub fn proc_stat(pid: libc::pid_t) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parse a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so the fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgid: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// The kernel's boot id (empty when it cannot be read).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Live members of process group `pgid` that started no earlier than `since`.
pub fn group_members(pgid: libc::pid_t, since: u64) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|s| s.alive() && s.pgid == pgid && s.start_time >= since)
        })
        .collect()
}

/// What recovery did about one recorded group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Nothing of it was left.
    Gone,
    /// The number now belongs to another process (the group ended, its id was reused).
    Reused,
    /// Its members were killed: how many.
    Killed(usize),
    /// Killed, but these were still there after the wait (stuck in the kernel).
    Stuck(Vec<libc::pid_t>),
}

/// End the group of `r` if any of it is still running, and wait until it is gone.
pub async fn end_recorded(r: &ProcessRecord) -> Ended {
    if r.pgid <= 1 || (!r.boot_id.is_empty() && r.boot_id != boot_id()) {
        return Ended::Gone;
    }
    // A leader with another start time: the group id was free and has been reused.
    if let Some(leader) = proc_stat(r.pgid) {
        if leader.pgid == r.pgid && leader.start_time != r.start_time {
            return Ended::Reused;
        }
    }
    let members = group_members(r.pgid, r.start_time);
    if members.is_empty() {
        return Ended::Gone;
    }
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(r.pgid, libc::SIGKILL);
    }
    let deadline = tokio::time::Instant::now() + GONE_WITHIN;
    loop {
        let left = group_members(r.pgid, r.start_time);
        if left.is_empty() {
            return Ended::Killed(members.len());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ended::Stuck(left);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
