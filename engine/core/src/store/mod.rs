//! The store: everything Squall must remember, in one embedded sled database.
//!
//! Layout (one `Db` in `<data>/db`):
//! - tree `executions`: every record about executions, under prefixed keys, so that one
//!   state change — the record, its index entries, a workflow's state, its secrets — is
//!   written as one ordered group on one tree (see [`SledStore::commit`]):
//!   `e:<id>` record · `s:<status>:<id>` status index · `a:<action>\0<id>` action index ·
//!   `p:<id>` parameters with secrets (encrypted) · `w:<id>` workflow state ·
//!   `o:<id>:<seq>` output chunks · `t:<trigger instance>\0<rule>` the execution a rule
//!   requested for a trigger · `c:<workflow>\0<child>` a workflow's child (its task, action
//!   and item; the status is read from the child's own record) · `w:<id>\0t:<task>` one
//!   task's entry of a workflow's state · `w:<id>\0i:<pass>` the items of a `with` task and
//!   `w:<id>\0u:<pass>\0<unit>` each finished item (see `workflows.rs`).
//!   A workflow's record does not hold its children and its state does not hold its tasks:
//!   both are separate entries, so each transition writes what changed, not everything so
//!   far (a long chain costs the same per task as a short one).
//!   `x:<id>\0<pid>` a process group started for execution `id` (see `processes.rs`).
//!   Ids are ULIDs, so key order is creation order.
//! - trees `triggers`, `enforcements`, `audit` (ULID keys), `sensors` (checkpoints).
//! - tree `meta`: `schema_version`.
//!
//! Durability: writes land in sled's memory first; [`SledStore::durable`] makes them durable
//! with group commit — concurrent callers share one flush.

mod audit;
mod check;
mod crypto;
mod lock;
mod processes;
mod reading;
mod records;
mod seam;
mod sync;
mod workflows;

use crate::model::{ChildRef, Enforcement, Execution, Json, OutputChunk, Status, TriggerInstance};
pub use audit::{audit_entry, FinishedExecution, FinishedHook};
pub use check::{CheckReport, TreeReport};
pub use crypto::{Cipher, KeyError};
pub use processes::ProcessRecord;
pub use reading::{skipped_warning, Listing};
pub use records::check_trigger;
pub use seam::Store;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
pub use workflows::PassEntries;

/// Scheduler turns a flush waits for concurrent writers to join it.
const COMMIT_DELAY_TURNS: usize = 8;

/// Version of the on-disk layout this build writes.
///
/// 2: workflow children and task entries are separate keys (`c:`, `w:<id>\0t:`); data of
/// version 1 (children in the record, tasks in the state) is still read as it is.
pub const SCHEMA_VERSION: u64 = 2;

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("data dir {dir} is in use by another Squall process ({holder}); stop it or use another --data directory")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// The data was written by a newer Squall.
    #[error("data dir {dir} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade squall")]
    NewerSchema {
        /// The data directory.
        dir: PathBuf,
        /// Version found on disk.
        found: u64,
    },
    /// Problem with the encryption key.
    #[error(transparent)]
    Key(#[from] crypto::KeyError),
    /// sled failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// File system problem around the store.
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    /// The database files cannot be opened: damaged or truncated.
    #[error("data dir {dir}: the database in {dir}/db is damaged or truncated ({message}). Squall will not run on it, so that nothing is lost silently: stop every Squall process, copy the data dir aside, then restore it from a backup or salvage it as docs/operations.md, \"A damaged data directory\", explains")]
    Damaged {
        /// The data directory.
        dir: PathBuf,
        /// What sled reported.
        message: String,
    },
    /// A document would nest too deep to be read back; nothing was written.
    #[error("store: {0}")]
    TooDeep(crate::limits::TooDeep),
    /// A stored record does not decode.
    #[error("store: record {key} cannot be read ({source}); other records are not affected: `squall store check` lists every unreadable record (see docs/operations.md, \"A damaged data directory\")")]
    Corrupt {
        /// Key of the record.
        key: String,
        /// What failed (the decoder's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A filter for listing executions.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this action.
    pub action: Option<String>,
    /// Only top-level executions (no workflow children).
    pub top_level_only: bool,
    /// At most this many (newest first).
    pub limit: usize,
}

/// Writes that must land together.
#[derive(Default)]
pub struct Batch {
    /// Index entries and auxiliary records (workflow state, sealed parameters): written
    /// first, so a record never exists without what points at it or what it needs.
    before: Vec<(Vec<u8>, Vec<u8>)>,
    /// The execution records themselves.
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Stale index entries: removed last.
    after: Vec<Vec<u8>>,
    /// Executions this batch makes terminal: their audit entries (id, bytes) are written
    /// right after the records (see `store/audit.rs`).
    finished: Vec<(String, Vec<u8>, FinishedExecution)>,
    /// Enforcements (tree `enforcements`), written after the records they name.
    enforcements: Vec<(String, Vec<u8>)>,
    /// Trigger instances (tree `triggers`), written after the records and enforcements: a
    /// trigger that reads `processed` after a crash had everything it caused recorded.
    triggers: Vec<(String, Vec<u8>)>,
    /// Audit entries of requests (tree `audit`), after the trigger they accepted.
    audit: Vec<(String, Vec<u8>)>,
}

impl Batch {
    /// Write `e` and move its index entries from `prev` status to its current one.
    pub fn execution(&mut self, prev: Option<Status>, e: &Execution) {
        if let Some(p) = prev {
            if p != e.status {
                self.after.push(status_key(p, &e.id));
            }
        } else {
            self.before.push((action_key(&e.action, &e.id), Vec::new()));
            if let (Some(t), Some(r), None) = (&e.trigger_instance, &e.rule, &e.parent) {
                self.before
                    .push((trigger_rule_key(t, r), e.id.as_bytes().to_vec()));
            }
            if let Some(parent) = &e.parent {
                let child = ChildRef {
                    id: e.id.clone(),
                    task: e.task.clone().unwrap_or_default(),
                    action: e.action.clone(),
                    status: e.status,
                    item: e.item.clone(),
                };
                self.before.push((
                    child_key(parent, &e.id),
                    serde_json::to_vec(&child).unwrap_or_default(),
                ));
            }
        }
        self.before.push((status_key(e.status, &e.id), Vec::new()));
        if e.status.is_terminal() && prev.is_none_or(|p| !p.is_terminal()) {
            let audit_id = ulid::Ulid::new().to_string();
            let done = FinishedExecution::of(e);
            self.before
                .push((audit::marker_key(&e.id), audit_id.as_bytes().to_vec()));
            self.after.push(audit::marker_key(&e.id));
            let entry = serde_json::to_vec(&done.entry).unwrap_or_default();
            self.finished.push((audit_id, entry, done));
        }
        // Children are their own entries (`c:`), never part of the stored record.
        let value = if e.children.is_empty() {
            serde_json::to_vec(e)
        } else {
            serde_json::to_vec(&Execution {
                children: Vec::new(),
                ..e.clone()
            })
        };
        self.records.push((
            format!("e:{}", e.id).into_bytes(),
            value.unwrap_or_default(),
        ));
    }

    /// Write trigger instance `t` (its payload's depth is checked when it is accepted,
    /// see [`check_trigger`]).
    pub fn trigger(&mut self, t: &TriggerInstance) {
        self.triggers
            .push((t.id.clone(), serde_json::to_vec(t).unwrap_or_default()));
    }

    /// Write enforcement `e`.
    pub fn enforcement(&mut self, e: &Enforcement) {
        self.enforcements
            .push((e.id.clone(), serde_json::to_vec(e).unwrap_or_default()));
    }

    /// Append audit entry `entry` (already masked) under `id` (a ULID).
    pub fn audit(&mut self, id: String, entry: &Json) {
        self.audit
            .push((id, serde_json::to_vec(entry).unwrap_or_default()));
    }

    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty()
            && self.records.is_empty()
            && self.after.is_empty()
            && self.enforcements.is_empty()
            && self.triggers.is_empty()
            && self.audit.is_empty()
    }

    fn raw(&mut self, key: String, value: Vec<u8>) {
        self.before.push((key.into_bytes(), value));
    }

    fn remove(&mut self, key: String) {
        self.after.push(key.into_bytes());
    }
}

fn status_key(s: Status, id: &str) -> Vec<u8> {
    format!("s:{}:{id}", s.as_str()).into_bytes()
}

fn trigger_rule_key(trigger_instance: &str, rule: &str) -> Vec<u8> {
    format!("t:{trigger_instance}\0{rule}").into_bytes()
}

fn child_key(parent: &str, id: &str) -> Vec<u8> {
    format!("c:{parent}\0{id}").into_bytes()
}

fn action_key(action: &str, id: &str) -> Vec<u8> {
    format!("a:{action}\0{id}").into_bytes()
}

/// The embedded store: one sled database in the data directory (the default backend of
/// [`Store`]).
pub struct SledStore {
    db: sled::Db,
    exec: sled::Tree,
    audit: sled::Tree,
    triggers: sled::Tree,
    enforcements: sled::Tree,
    cipher: Cipher,
    sync: sync::Syncer,
    on_finished: std::sync::OnceLock<FinishedHook>,
    dir: PathBuf,
    written: AtomicU64,
    flushed: AtomicU64,
    flushes: AtomicU64,
    flush_lock: tokio::sync::Mutex<()>,
    _lock: File,
}

/// The sled page cache, in bytes, when `SQUALL_STORE_CACHE_MB` does not say otherwise.
pub const DEFAULT_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The bytes sled may keep in its page cache: `SQUALL_STORE_CACHE_MB` (whole MiB, at
/// least 1) or [`DEFAULT_CACHE_BYTES`].
pub fn cache_capacity() -> u64 {
    std::env::var("SQUALL_STORE_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|mb| mb.max(1) * 1024 * 1024)
        .unwrap_or(DEFAULT_CACHE_BYTES)
}

/// sled's log segment size for a new database, in bytes. sled keeps one in-memory log
/// buffer of this size per flush in flight; with sled's default (512 KiB) and a group
/// commit every millisecond under load, those buffers were the largest part of the heap
/// (30 MB at 64 connections; 9 MB with 128 KiB). Values over a quarter of it are stored
/// as blob files (see `store/sync.rs`).
pub const SEGMENT_BYTES: usize = 128 * 1024;

/// The segment size of the sled database in `db_dir`: the one it was created with (sled
/// refuses to open a database with another), else [`SEGMENT_BYTES`] for a new one.
fn segment_size(db_dir: &Path) -> usize {
    // The file is text followed by a binary checksum.
    std::fs::read(db_dir.join("conf"))
        .ok()
        .and_then(|conf| {
            String::from_utf8_lossy(&conf)
                .lines()
                .find_map(|l| l.strip_prefix("segment_size:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(SEGMENT_BYTES)
}

impl SledStore {
    /// Open (creating) the store in `dir`. Only one process may hold it. `key_file`
    /// defaults to `<dir>/secret.key`.
    pub fn open(dir: &Path, key_file: Option<&Path>) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        let lock = lock::lock_dir(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_capacity())
            .segment_size(segment_size(&dir.join("db")))
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| check::open_error(dir, e))?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        dir: dir.to_path_buf(),
                        found,
                    });
                }
                if found < SCHEMA_VERSION {
                    meta.insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
                }
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
            }
        }
        let exec = db.open_tree("executions")?;
        let audit = db.open_tree("audit")?;
        let triggers = db.open_tree("triggers")?;
        let enforcements = db.open_tree("enforcements")?;
        let sync = sync::Syncer::open(&dir.join("db"))?;
        let key_path = key_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("secret.key"));
        let cipher = Cipher::open(&key_path)?;
        let store = SledStore {
            db,
            exec,
            audit,
            triggers,
            enforcements,
            cipher,
            sync,
            on_finished: std::sync::OnceLock::new(),
            dir: dir.to_path_buf(),
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
            _lock: lock,
        };
        if store.settle_audit_markers()? > 0 {
            store.flush_blocking()?;
        }
        Ok(store)
    }

    /// Call `hook` for every execution that becomes terminal, right after the commit that
    /// records it (metrics, the audit trail's echo on stdout). Set once; later calls are
    /// ignored.
    pub fn on_finished(&self, hook: FinishedHook) {
        let _ = self.on_finished.set(hook);
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Apply `batch` atomically; returns a ticket for [`SledStore::durable`].
    pub fn commit(&self, batch: Batch) -> Result<u64, StoreError> {
        // Plain inserts in a safe order rather than `apply_batch`: sled 0.34 seals a log
        // buffer for every atomic batch, which made each commit cost several disk writes
        // (4x fewer executions per second). sled recovers a prefix of its log after a
        // crash, so the order is what matters: pointers and auxiliary records first, the
        // record, its audit entry, the enforcements naming it, the trigger that caused it,
        // request audit entries, then stale index entries. Readers re-check a record's
        // status, so an index entry left behind by a crash is ignored.
        for (k, v) in batch.before.into_iter().chain(batch.records) {
            self.exec.insert(k, v)?;
        }
        for (id, entry, _) in &batch.finished {
            self.audit.insert(id.as_bytes(), entry.as_slice())?;
        }
        for (id, v) in batch.enforcements {
            self.enforcements.insert(id.as_bytes(), v)?;
        }
        for (id, v) in batch.triggers {
            self.triggers.insert(id.as_bytes(), v)?;
        }
        for (id, v) in batch.audit {
            self.audit.insert(id.as_bytes(), v)?;
        }
        for k in batch.after {
            self.exec.remove(k)?;
        }
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(hook) = self.on_finished.get() {
            batch.finished.iter().for_each(|(_, _, f)| hook(f));
        }
        Ok(ticket)
    }

    /// Write one execution record (and its index entries).
    pub fn put_execution(&self, prev: Option<Status>, e: &Execution) -> Result<u64, StoreError> {
        let mut b = Batch::default();
        b.execution(prev, e);
        self.commit(b)
    }

    /// Add the encrypted full parameters of `id` to `batch`.
    pub fn seal_params(&self, batch: &mut Batch, id: &str, params: &Json) {
        let plain = serde_json::to_vec(params).unwrap_or_default();
        batch.raw(format!("p:{id}"), self.cipher.seal(&plain));
    }

    /// The full parameters of `id` when they were sealed (they held secrets).
    pub fn sealed_params(&self, id: &str) -> Result<Option<Json>, StoreError> {
        self.get_sealed(&format!("p:{id}"))
    }

    /// Add the encrypted full result of `id` to `batch` (a workflow child whose result held
    /// secrets: the record shows it masked, a resumed workflow needs it in clear).
    pub fn seal_result(&self, batch: &mut Batch, id: &str, result: &Json) {
        let plain = serde_json::to_vec(result).unwrap_or_default();
        batch.raw(format!("r:{id}"), self.cipher.seal(&plain));
    }

    /// The full result of `id` when it was sealed (it held secrets).
    pub fn sealed_result(&self, id: &str) -> Result<Option<Json>, StoreError> {
        self.get_sealed(&format!("r:{id}"))
    }

    fn get_sealed(&self, key: &str) -> Result<Option<Json>, StoreError> {
        let Some(v) = self.exec.get(key)? else {
            return Ok(None);
        };
        let plain = self.cipher.open_sealed(&v)?;
        Ok(Some(reading::decode(key, &plain)?))
    }

    /// The execution `id`, with its children (for a workflow) in run order.
    pub fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let key = format!("e:{id}");
        match self.exec.get(&key)? {
            Some(v) => Ok(Some(self.decode_execution(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// A stored record with its children attached.
    fn decode_execution(&self, key: &str, v: &[u8]) -> Result<Execution, StoreError> {
        let mut e: Execution = reading::decode(key, v)?;
        let children = self.children(&e.id)?;
        if !children.is_empty() {
            e.children = children;
        }
        Ok(e)
    }

    /// The children of workflow execution `id` in run order, each with the status of its
    /// own record.
    pub fn children(&self, id: &str) -> Result<Vec<ChildRef>, StoreError> {
        let mut out = Vec::new();
        for item in self.exec.scan_prefix(format!("c:{id}\0")) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let mut c: ChildRef = reading::decode(&key, &v)?;
            let record = format!("e:{}", c.id);
            // The entry is written just before the child's record: one without a record was
            // left by a crash between the two (the child never ran), and is no child.
            let Some(rec) = self.exec.get(&record)? else {
                continue;
            };
            #[derive(serde::Deserialize)]
            struct StatusOnly {
                status: Status,
            }
            // A child record that cannot be read keeps the status its entry has; the
            // child's own `get` reports it.
            match reading::decode::<StatusOnly>(&record, &rec) {
                Ok(s) => c.status = s.status,
                Err(e) => {
                    tracing::error!(key = %record, error = %e, "workflow child record cannot be read");
                }
            }
            out.push(c);
        }
        Ok(out)
    }

    /// The execution a rule already requested for a trigger instance (so that evaluating a
    /// trigger again after a crash does not run its actions twice).
    ///
    /// The `t:` entry is written just before the execution's record, in the same commit: an
    /// entry whose record is missing was cut off by a crash between the two, so that
    /// execution never existed and the rule must ask again.
    pub fn execution_for(
        &self,
        trigger_instance: &str,
        rule: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(id) = self.exec.get(trigger_rule_key(trigger_instance, rule))? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        Ok(self.exec.contains_key(format!("e:{id}"))?.then_some(id))
    }

    /// Executions matching `filter`, newest first. Records that cannot be read are left
    /// out and named in [`Listing::skipped`].
    pub fn list_executions(&self, filter: &ListFilter) -> Result<Listing<Execution>, StoreError> {
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        let mut out = Listing::default();
        let push = |e: Execution, out: &mut Listing<Execution>| {
            let ok = filter.status.is_none_or(|s| e.status == s)
                && filter.action.as_deref().is_none_or(|a| e.action == a)
                && (!filter.top_level_only || e.parent.is_none());
            if ok {
                out.items.push(e);
            }
        };
        let ids: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (&filter.status, &filter.action) {
                (Some(s), _) => Box::new(self.exec.scan_prefix(format!("s:{}:", s.as_str())).rev()),
                (None, Some(a)) => Box::new(self.exec.scan_prefix(format!("a:{a}\0")).rev()),
                (None, None) => Box::new(self.exec.scan_prefix("e:").rev()),
            };
        for item in ids {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let read = if key.starts_with("e:") {
                self.decode_execution(&key, &v).map(Some)
            } else {
                let id = key.rsplit([':', '\0']).next().unwrap_or("");
                self.get_execution(id)
            };
            match read {
                Ok(Some(e)) => push(e, &mut out),
                Ok(None) => {}
                Err(e) => out.skip(e)?,
            }
        }
        Ok(out)
    }

    /// Executions not in a terminal status, oldest first (for crash recovery). Records
    /// that cannot be read are left out and named in [`Listing::skipped`].
    pub fn unfinished(&self) -> Result<Listing<Execution>, StoreError> {
        let mut out = Listing::default();
        for s in Status::ALL.into_iter().filter(|s| !s.is_terminal()) {
            for item in self.exec.scan_prefix(format!("s:{}:", s.as_str())) {
                let (k, _) = item?;
                let key = String::from_utf8_lossy(&k).to_string();
                let id = key.rsplit(':').next().unwrap_or("");
                match self.get_execution(id) {
                    // Index entries left by a crash between writes are ignored.
                    Ok(Some(e)) => {
                        if !e.status.is_terminal() && !out.iter().any(|o: &Execution| o.id == e.id)
                        {
                            out.items.push(e);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let key = format!("e:{id}");
                        if !out.skipped.contains(&key) {
                            out.skip(e)?;
                        }
                    }
                }
            }
        }
        out.items.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// SledStore output chunk number `seq` of execution `id` (already masked).
    pub fn put_output(&self, id: &str, seq: u64, chunk: &OutputChunk) -> Result<(), StoreError> {
        self.exec.insert(
            format!("o:{id}:{seq:016x}").into_bytes(),
            serde_json::to_vec(chunk).unwrap_or_default(),
        )?;
        Ok(())
    }

    /// Output chunks of `id` from number `from` on, in order, with their numbers.
    pub fn output(&self, id: &str, from: u64) -> Result<Vec<(u64, OutputChunk)>, StoreError> {
        let start = format!("o:{id}:{from:016x}");
        let end = format!("o:{id};");
        let mut out = Vec::new();
        for item in self.exec.range(start.into_bytes()..end.into_bytes()) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let seq = key
                .rsplit(':')
                .next()
                .map(|s| u64::from_str_radix(s, 16))
                .unwrap_or(Ok(0))
                .map_err(|e| corrupt(&key, e))?;
            out.push((seq, reading::decode(&key, &v)?));
        }
        Ok(out)
    }

    /// Make every write committed before ticket `ticket` durable. Concurrent callers share
    /// one flush (group commit).
    pub async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let _g = self.flush_lock.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Let writers that are about to commit join this flush (commit delay): a few
        // scheduler turns cost microseconds and make each disk sync cover more records.
        for _ in 0..COMMIT_DELAY_TURNS {
            tokio::task::yield_now().await;
        }
        let target = self.written.load(Ordering::SeqCst);
        // sled 0.34's `flush_async` can miss its wake-up and hang when several flushes are in
        // flight (sled issues #1241, #1308); a blocking flush on the blocking pool does not.
        self.flushes.fetch_add(1, Ordering::Relaxed);
        // Blocking: sled's flush writes its buffers, then `fdatasync` puts them on the disk
        // (sled's own flush ends in `sync_file_range`, which neither flushes the disk's
        // write cache nor the file's metadata: see `store/sync.rs`).
        let (db, sync) = (self.db.clone(), self.sync.clone());
        tokio::task::spawn_blocking(move || flush_and_sync(&db, &sync))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))??;
        self.flushed.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// sled's flush, then a real sync of its files.
    fn flush_blocking(&self) -> Result<(), StoreError> {
        flush_and_sync(&self.db, &self.sync)
    }

    /// Disk flushes done so far (each covers every write committed before it).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Make everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let t = self.written.load(Ordering::SeqCst);
        self.durable(t).await
    }

    /// The checkpoint a sensor saved (its own format), if any.
    pub fn sensor_checkpoint(&self, sensor: &str) -> Result<Option<Json>, StoreError> {
        let key = format!("c:{sensor}");
        match self.db.open_tree("sensors")?.get(&key)? {
            Some(v) => Ok(Some(reading::decode(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// Save a sensor's checkpoint and make it durable.
    pub async fn put_sensor_checkpoint(
        &self,
        sensor: &str,
        value: &Json,
    ) -> Result<(), StoreError> {
        self.db.open_tree("sensors")?.insert(
            format!("c:{sensor}").into_bytes(),
            serde_json::to_vec(value).unwrap_or_default(),
        )?;
        let t = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.durable(t).await
    }

    /// Remove a sensor's checkpoint (`squall sensor reset`): it starts afresh next time.
    pub async fn remove_sensor_checkpoint(&self, sensor: &str) -> Result<bool, StoreError> {
        let old = self
            .db
            .open_tree("sensors")?
            .remove(format!("c:{sensor}").into_bytes())?;
        let t = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        self.durable(t).await?;
        Ok(old.is_some())
    }

    /// The underlying database, for other subsystems' trees.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// sled's flush (its buffers written, ending in `sync_file_range`), then `fdatasync` of its
/// files, so the bytes are on the disk and not only in the page cache or the disk's cache.
fn flush_and_sync(db: &sled::Db, sync: &sync::Syncer) -> Result<(), StoreError> {
    db.flush()?;
    sync.sync()?;
    Ok(())
}

impl StoreError {
    /// The record under `key` does not decode, because of `source`.
    pub fn corrupt(
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Corrupt {
            key: key.into(),
            source: source.into(),
        }
    }
}

fn corrupt(key: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::corrupt(key, source)
}

#[cfg(test)]
mod tests;
