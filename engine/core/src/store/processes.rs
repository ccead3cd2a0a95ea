//! Processes started for executions (the `shell` runner's process groups), recorded so that
//! a restarted engine can end whatever an earlier process left running before it runs or
//! abandons anything (see `runners/process.rs`).
//!
//! Keys: `x:<execution id>\0<pid, 10 digits>` in the `executions` tree, beside the
//! execution's record, so one flush covers both in log order.

use super::{corrupt, SledStore, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// A process group started for an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The execution it runs for.
    pub execution: String,
    /// Pid of the process Squall started (the group's leader).
    pub pid: i32,
    /// Its process group id (equal to `pid`: it leads a group of its own).
    pub pgid: i32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22), which tells
    /// it apart from a later process given the same pid.
    pub start_time: u64,
    /// The kernel's boot id when it started: after a reboot none of it can be running.
    pub boot_id: String,
}

fn process_key(execution: &str, pid: i32) -> Vec<u8> {
    format!("x:{execution}\0{pid:010}").into_bytes()
}

impl SledStore {
    /// Record a started process; returns a ticket for [`SledStore::durable`].
    pub fn record_process(&self, r: &ProcessRecord) -> Result<u64, StoreError> {
        let value = serde_json::to_vec(r).map_err(|e| corrupt("process record", e))?;
        self.exec.insert(process_key(&r.execution, r.pid), value)?;
        Ok(self.written.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Forget a process (it has ended, and its group with it). Need not be durable: a
    /// record left by a crash names a process that is gone, which recovery checks.
    pub fn forget_process(&self, execution: &str, pid: i32) -> Result<u64, StoreError> {
        self.exec.remove(process_key(execution, pid))?;
        Ok(self.written.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Every recorded process, oldest execution first. A record that does not decode is
    /// returned as an error in its place (recovery reports it and carries on).
    pub fn recorded_processes(&self) -> Result<Vec<Result<ProcessRecord, StoreError>>, StoreError> {
        let mut out = Vec::new();
        for item in self.exec.scan_prefix("x:") {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).replace('\0', "/");
            out.push(serde_json::from_slice(&v).map_err(|e| corrupt(&key, e)));
        }
        Ok(out)
    }

    /// Remove every process record (after recovery has ended them all).
    pub fn forget_all_processes(&self) -> Result<u64, StoreError> {
        for item in self.exec.scan_prefix("x:") {
            let (k, _) = item?;
            self.exec.remove(k)?;
        }
        Ok(self.written.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(execution: &str, pid: i32) -> ProcessRecord {
        ProcessRecord {
            execution: execution.into(),
            pid,
            pgid: pid,
            start_time: 42,
            boot_id: "b".into(),
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_until_forgotten() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(d.path(), None).unwrap();
            s.record_process(&rec("01A", 10)).unwrap();
            s.record_process(&rec("01A", 11)).unwrap();
            s.record_process(&rec("01B", 12)).unwrap();
            s.forget_process("01A", 11).unwrap();
            s.flush().await.unwrap();
        }
        let s = SledStore::open(d.path(), None).unwrap();
        let got: Vec<ProcessRecord> = s
            .recorded_processes()
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, vec![rec("01A", 10), rec("01B", 12)]);
        s.forget_all_processes().unwrap();
        assert!(s.recorded_processes().unwrap().is_empty());
    }

    #[test]
    fn an_undecodable_record_is_reported_in_its_place() {
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path(), None).unwrap();
        s.exec
            .insert("x:01C\u{0}0000000001", b"not json".to_vec())
            .unwrap();
        s.record_process(&rec("01D", 2)).unwrap();
        let got = s.recorded_processes().unwrap();
        assert_eq!(got.len(), 2);
        let err = got[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("x:01C/0000000001"), "{err}");
        assert_eq!(got[1].as_ref().unwrap(), &rec("01D", 2));
    }
}
