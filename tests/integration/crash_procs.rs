//! Issue 9: no process started by a killed `squall serve` goes on running, nothing it
//! started has a side effect after the kill, and after recovery no execution is left
//! `requested`, `scheduled` or `running` unless it really is queued or running.
//!
//! The actions write their pids to files; the test reads `/proc` (a zombie counts as gone:
//! it has ended, only its new parent has not collected it).

use super::content;
use crate::server::{count_lines, wait_lines, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// First run: a background `sleep` in the group, pids written, `start`, a 3 s sleep, then
/// the side effect (`end`). A run after the crash first checks that nothing of the first
/// run is alive (else it writes `overlap`), then writes `start` and `end` at once.
const SLOW: &str = r#"runner: shell
cmd: |
  d="$SQUALL_PARAM_DIR"; n="$SQUALL_PARAM_NAME"
  if [ -e "$d/$n.first" ]; then
    for p in $(cat "$d/$n.pids"); do
      if [ -r "/proc/$p/stat" ] && [ "$(sed 's/.*) //' "/proc/$p/stat" | cut -c1)" != Z ]; then
        echo "$n overlap $p" >> "$d/log"
      fi
    done
    echo "$n start" >> "$d/log"
  else
    touch "$d/$n.first"
    sleep 1000 >/dev/null 2>&1 &
    echo "$$ $!" > "$d/$n.pids"
    echo "$n start" >> "$d/log"
    sleep 3
  fi
  echo "$n end" >> "$d/log"
parameters:
  name: {type: string, required: true}
  dir: {type: string, required: true}
"#;

/// The state letter of `pid` (`None`: no such process).
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| !matches!(s, 'Z' | 'X' | 'x'))
}

/// Live processes whose process group is `pgid`.
fn group(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(") ")?.1.to_string();
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    Some(!matches!(f.first()?, &"Z" | &"X") && f.get(2)? == &pgid.to_string())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// `(leader, background)` pids written by the first run of `name`.
fn pids(dir: &Path, name: &str) -> (i32, i32) {
    let text = std::fs::read_to_string(dir.join(format!("{name}.pids"))).expect("pids file");
    let mut it = text.split_whitespace().map(|p| p.parse().expect("a pid"));
    (it.next().expect("leader"), it.next().expect("background"))
}

/// Wait (at most `secs`) until `done` holds.
#[track_caller]
fn wait_until(secs: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post(server: &Server, action: &str, params: Value) -> String {
    let r = server.request(
        "POST",
        "/api/v1/executions",
        Some(&json!({"action": action, "parameters": params}).to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().expect("id").to_string()
}

const TERMINAL: [&str; 5] = ["succeeded", "failed", "abandoned", "timeout", "canceled"];

/// Wait until every execution (children too) is terminal; return them all.
fn settle(server: &Server, secs: u64) -> Vec<Value> {
    let all = server.wait_json("/api/v1/executions?all=true&limit=0", None, secs, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .all(|e| TERMINAL.contains(&e["status"].as_str().unwrap_or("")))
        })
    });
    all.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_killed_engine_leaves_no_process_running_and_no_side_effect_after_the_kill() {
    let sq = content();
    sq.action("crash", "slow", &format!("name: slow\n{SLOW}"));
    sq.action(
        "crash",
        "islow",
        &format!("name: islow\nidempotent: true\n{SLOW}"),
    );
    let dir = sq.path("procs");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let server = Server::start(&sq);
    let n = post(&server, "crash.slow", json!({"name": "n", "dir": dir}));
    let i = post(&server, "crash.islow", json!({"name": "i", "dir": dir}));
    wait_lines(&log, "n start", 1, 30);
    wait_lines(&log, "i start", 1, 30);
    let runs = [pids(&dir, "n"), pids(&dir, "i")];
    for (leader, bg) in runs {
        assert!(alive(leader) && alive(bg), "{leader} and {bg} should run");
        let members = group(leader);
        assert!(
            members.contains(&leader) && members.contains(&bg),
            "the command leads its group: {members:?}"
        );
    }
    server.kill9();
    // The commands themselves die with the engine (the kernel's death signal)...
    for (leader, _) in runs {
        wait_until(
            30,
            &format!("shell {leader} is gone after the kill"),
            || !alive(leader),
        );
    }
    // ... but what they started in their groups is still running until recovery.
    for (_, bg) in runs {
        assert!(
            alive(bg),
            "background {bg} of the first run should still run"
        );
    }
    let server = Server::start(&sq);
    let done = |id: &str| {
        server.wait_json(&format!("/api/v1/executions/{id}"), None, 60, |e| {
            TERMINAL.contains(&e["status"].as_str().unwrap_or(""))
        })
    };
    let (n_rec, i_rec) = (done(&n), done(&i));
    assert_eq!(n_rec["status"], "abandoned", "{n_rec:#}");
    assert_eq!(i_rec["status"], "succeeded", "{i_rec:#}");
    // Recovery ended every group before the idempotent one ran again.
    for (leader, bg) in runs {
        assert!(!alive(bg), "background {bg} survived recovery");
        assert_eq!(group(leader), Vec::<i32>::new(), "group {leader} survived");
    }
    assert_eq!(
        count_lines(&log, "overlap"),
        0,
        "the re-run overlapped the first run"
    );
    // Longer than the first run's sleep after the kill: a survivor would have written.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(count_lines(&log, "n start"), 1);
    assert_eq!(count_lines(&log, "n end"), 0, "side effect after the kill");
    assert_eq!(
        count_lines(&log, "i start"),
        2,
        "the idempotent one runs again"
    );
    assert_eq!(
        count_lines(&log, "i end"),
        1,
        "exactly once, from the re-run"
    );
    let all = settle(&server, 60);
    assert_eq!(all.len(), 2, "{all:#?}");
}

/// Killed with workflows mid-task (idempotent and not, a `with` task, a nested workflow)
/// and executions queued behind a concurrency limit: after the restart everything ends,
/// and no record (children included) is left unfinished.
#[test]
fn after_recovery_no_execution_is_left_unfinished() {
    let sq = content();
    sq.action(
        "crash",
        "one",
        "name: one\nrunner: shell\nconcurrency: 1\nidempotent: true\ncmd: 'echo \"$SQUALL_PARAM_NAME start\" >> \"$SQUALL_PARAM_LOG\"; sleep 1'\nparameters:\n  name: {type: string, required: true}\n  log: {type: string, required: true}\n",
    );
    sq.write(
        "packs/crash/workflows/fan.yaml",
        "name: fan\nparameters:\n  log: {type: string, required: true}\nchain:\n  - name: each\n    ref: crash.istep\n    with:\n      items: [f0, f1, f2, f3]\n      concurrency: 2\n    parameters: {name: \"{{ item }}\", log: \"{{ log }}\", sleep: 3}\n",
    );
    sq.write(
        "packs/crash/workflows/outer.yaml",
        "name: outer\nparameters:\n  log: {type: string, required: true}\nchain:\n  - name: inner\n    ref: crash.iflow\n    parameters: {log: \"{{ log }}\"}\n",
    );
    let log = sq.path("effects.log");
    let server = Server::start(&sq);
    let mut ids = vec![
        post(&server, "crash.flow", json!({"log": log})),
        post(&server, "crash.iflow", json!({"log": log})),
        post(&server, "crash.fan", json!({"log": log})),
        post(&server, "crash.outer", json!({"log": log})),
    ];
    for q in 0..3 {
        ids.push(post(
            &server,
            "crash.one",
            json!({"name": format!("q{q}"), "log": log}),
        ));
    }
    // Both chains are in task b, the fan has items in flight, one queued action runs.
    wait_lines(&log, "b start", 3, 60);
    wait_lines(&log, "f1 start", 1, 60);
    wait_lines(&log, "q", 1, 60);
    server.kill9();
    let server = Server::start(&sq);
    let all = settle(&server, 120);
    for id in &ids {
        assert!(
            all.iter().any(|e| e["id"] == id.as_str()),
            "{id} is not listed: {all:#?}"
        );
    }
    // Every child a workflow lists is terminal too.
    for e in &all {
        for c in e["children"].as_array().into_iter().flatten() {
            assert!(
                TERMINAL.contains(&c["status"].as_str().unwrap_or("")),
                "child {c} of {} is not terminal",
                e["id"]
            );
        }
    }
    // The queued ones all ran once the engine was back.
    for q in 0..3 {
        assert!(
            count_lines(&log, &format!("q{q} start")) >= 1,
            "q{q} never ran"
        );
    }
}
