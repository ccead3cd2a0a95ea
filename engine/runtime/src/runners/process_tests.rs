//! Tests of process groups, their records and their ending at recovery.
use super::*;
use squall_core::store::SledStore;
use std::process::Stdio;

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    let line =
        "4242 (a) b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    let s = parse_stat(line).expect("parses");
    assert_eq!(
        s,
        ProcStat {
            state: 'S',
            pgid: 4240,
            start_time: 987654
        }
    );
    assert!(s.alive());
    assert!(!parse_stat(&line.replace(" S ", " Z ")).unwrap().alive());
    assert_eq!(parse_stat("12 (x) S 1"), None);
}

#[test]
fn our_own_stat_is_read() {
    let me = std::process::id() as libc::pid_t;
    let s = proc_stat(me).expect("own stat");
    assert!(s.alive());
    assert!(s.start_time > 0);
    assert!(!boot_id().is_empty());
}

/// A group of two: `sh` (become `sleep`) leading it, and a background `sleep`.
fn group_command() -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("sleep 1000 & exec sleep 1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    c
}

/// Wait (bounded) until group `pgid` has `n` live members.
async fn members(pgid: libc::pid_t, n: usize) -> Vec<libc::pid_t> {
    for _ in 0..400 {
        let m = group_members(pgid, 0);
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "group {pgid} never had {n} members: {:?}",
        group_members(pgid, 0)
    );
}

fn record_of(s: &Started) -> ProcessRecord {
    let pgid = s.group.id().expect("group");
    ProcessRecord {
        execution: "01TEST".into(),
        pid: pgid,
        pgid,
        start_time: proc_stat(pgid).expect("leader").start_time,
        boot_id: boot_id(),
    }
}

#[tokio::test]
async fn a_spawned_command_leads_its_group_and_is_recorded_before_it_runs() {
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(d.path(), None).unwrap());
    let book = ProcessBook::new(store.clone());
    let flushes = store.flush_count();
    let started = spawn(group_command(), "01EXEC", &book)
        .await
        .expect("spawns");
    let pgid = started.group.id().unwrap();
    assert_eq!(started.child.id(), Some(pgid as u32));
    members(pgid, 2).await;
    let records: Vec<ProcessRecord> = store
        .recorded_processes()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].execution, "01EXEC");
    assert_eq!((records[0].pid, records[0].pgid), (pgid, pgid));
    assert_eq!(records[0].start_time, proc_stat(pgid).unwrap().start_time);
    assert_eq!(records[0].boot_id, boot_id());
    assert!(store.flush_count() > flushes, "the record was not flushed");
    // Ending the group kills every member and forgets the record.
    let Started { child, mut group } = started;
    group.end();
    for _ in 0..400 {
        if group_members(pgid, 0).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(group_members(pgid, 0).is_empty());
    assert!(store.recorded_processes().unwrap().is_empty());
    drop(child);
}

#[tokio::test]
async fn a_command_that_cannot_start_leaves_no_record() {
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(d.path(), None).unwrap());
    let book = ProcessBook::new(store.clone());
    let mut c = Command::new("/nonexistent/program");
    c.process_group(0);
    let err = match spawn(c, "01EXEC", &book).await {
        Err(e) => e,
        Ok(_) => panic!("started a missing program"),
    };
    assert!(
        matches!(&err, SpawnError::Os(e) if e.kind() == io::ErrorKind::NotFound),
        "{err}"
    );
    assert!(store.recorded_processes().unwrap().is_empty());
    // A working directory that is not there fails before the gate.
    let mut c = Command::new("true");
    c.process_group(0).current_dir("/nonexistent/dir");
    assert!(spawn(c, "01EXEC", &book).await.is_err());
    assert!(store.recorded_processes().unwrap().is_empty());
}

#[tokio::test]
async fn recovery_kills_a_live_recorded_group_and_waits_until_it_is_gone() {
    let started = spawn(group_command(), "01TEST", &ProcessBook::default())
        .await
        .expect("spawns");
    let pgid = started.group.id().unwrap();
    members(pgid, 2).await;
    let r = record_of(&started);
    assert_eq!(end_recorded(&r).await, Ended::Killed(2));
    assert!(group_members(pgid, 0).is_empty());
    // Once gone, the same record finds nothing to do.
    assert_eq!(end_recorded(&r).await, Ended::Gone);
}

#[tokio::test]
async fn a_group_whose_id_was_reused_or_from_another_boot_is_left_alone() {
    let started = spawn(group_command(), "01TEST", &ProcessBook::default())
        .await
        .expect("spawns");
    let pgid = started.group.id().unwrap();
    members(pgid, 2).await;
    let mut reused = record_of(&started);
    reused.start_time -= 1;
    assert_eq!(end_recorded(&reused).await, Ended::Reused);
    let mut other_boot = record_of(&started);
    other_boot.boot_id = "another-boot".into();
    assert_eq!(end_recorded(&other_boot).await, Ended::Gone);
    assert_eq!(group_members(pgid, 0).len(), 2, "a live group was touched");
}
