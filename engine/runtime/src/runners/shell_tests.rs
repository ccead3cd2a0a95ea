//! Tests of the `shell` runner.
use super::*;
use squall_core::model::{ActionMeta, Status};
use squall_core::runner::OutputSink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn action(dir: &Path, meta: Json) -> Arc<Action> {
    let mut m = json!({"name": "t", "runner": "shell"});
    if let (Json::Object(base), Json::Object(extra)) = (&mut m, meta) {
        base.extend(extra);
    }
    let meta: ActionMeta = serde_json::from_value(m).expect("valid meta");
    Arc::new(Action {
        reference: "test.t".into(),
        pack: "test".into(),
        meta,
        file: dir.join("t.yaml"),
        dir: dir.to_path_buf(),
        workflow: None,
    })
}

struct Harness {
    ctx: RunContext,
    rx: mpsc::UnboundedReceiver<(String, String)>,
}

fn harness(action: Arc<Action>, params: Json) -> Harness {
    let (tx, rx) = mpsc::unbounded_channel();
    Harness {
        ctx: RunContext {
            execution_id: "01TESTEXEC".into(),
            action,
            parameters: params,
            pack_config: json!({}),
            cancel: CancellationToken::new(),
            output: OutputSink::new(tx),
            content: Default::default(),
        },
        rx,
    }
}

async fn run(action: Arc<Action>, params: Json) -> (ActionOutcome, Vec<(String, String)>) {
    let mut h = harness(action, params);
    let outcome = tokio::time::timeout(Duration::from_secs(30), ShellRunner::default().run(h.ctx))
        .await
        .expect("runner hung");
    let mut chunks = Vec::new();
    while let Ok(c) = h.rx.try_recv() {
        chunks.push(c);
    }
    (outcome, chunks)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test]
async fn success_streams_and_captures() {
    let d = tmp();
    let a = action(d.path(), json!({"cmd": "echo hello; echo warn >&2"}));
    let (o, chunks) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["exit_code"], 0);
    assert_eq!(o.result["stdout"], "hello");
    assert_eq!(o.result["stderr"], "warn");
    assert!(o.result.get("json").is_none());
    assert!(chunks.contains(&("stdout".into(), "hello\n".into())));
    assert!(chunks.contains(&("stderr".into(), "warn\n".into())));
}

#[tokio::test]
async fn non_zero_exit_fails_with_last_stderr_line() {
    let d = tmp();
    let a = action(
        d.path(),
        json!({"cmd": "echo first >&2; echo 'disk full' >&2; exit 3"}),
    );
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(
        o.error.as_deref(),
        Some("command exited with code 3: disk full")
    );
    assert_eq!(o.result["exit_code"], 3);
}

#[tokio::test]
async fn parameters_arrive_on_stdin_and_in_env() {
    let d = tmp();
    let cmd = r#"read -r line; printf '%s\n' "$line" > stdin.json
printf '%s|%s|%s|%s|%s|%s\n' "$SQUALL_PARAM_NAME" "$SQUALL_PARAM_COUNT" "$SQUALL_PARAM_TAGS" "$SQUALL_PARAM_DRY_RUN" "$SQUALL_EXECUTION_ID" "$SQUALL_ACTION""#;
    let a = action(d.path(), json!({"cmd": cmd}));
    let params = json!({"name": "db 1", "count": 3, "tags": ["a", "b"], "dry-run": true});
    let (o, _) = run(a, params.clone()).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(
        o.result["stdout"],
        r#"db 1|3|["a","b"]|true|01TESTEXEC|test.t"#
    );
    let stdin = std::fs::read_to_string(d.path().join("stdin.json")).expect("stdin.json");
    let got: Json = serde_json::from_str(&stdin).expect("stdin is JSON");
    assert_eq!(got, params);
}

#[tokio::test]
async fn json_stdout_is_parsed() {
    let d = tmp();
    let a = action(d.path(), json!({"cmd": r#"echo '{"id": 7, "ok": true}'"#}));
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.result["json"], json!({"id": 7, "ok": true}));
    let a = action(d.path(), json!({"cmd": "echo '{\"id\": 7}'; echo more"}));
    let (o, _) = run(a, json!({})).await;
    assert!(o.result.get("json").is_none(), "{:?}", o.result);
}

#[tokio::test]
async fn env_and_cwd_are_applied() {
    let d = tmp();
    std::fs::create_dir(d.path().join("work")).expect("mkdir");
    let a = action(
        d.path(),
        json!({"cmd": "basename \"$(pwd)\"; echo \"$GREETING\"", "cwd": "work",
               "env": {"GREETING": "{{ not rendered }}"}}),
    );
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.result["stdout"], "work\n{{ not rendered }}");
}

#[tokio::test]
async fn entry_point_scripts_run_with_or_without_exec_bit() {
    let d = tmp();
    std::fs::write(
        d.path().join("plain.sh"),
        "echo plain \"$1\"$SQUALL_PARAM_X\n",
    )
    .expect("write");
    let exe = d.path().join("exe.sh");
    std::fs::write(&exe, "#!/bin/sh\necho exe $SQUALL_PARAM_X\n").expect("write");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let noshebang = d.path().join("noshebang.sh");
    std::fs::write(&noshebang, "echo bare\n").expect("write");
    std::fs::set_permissions(&noshebang, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (o, _) = run(
        action(d.path(), json!({"entry_point": "plain.sh"})),
        json!({"x": 1}),
    )
    .await;
    assert_eq!(o.result["stdout"], "plain 1", "{o:?}");
    let (o, _) = run(
        action(d.path(), json!({"entry_point": "exe.sh"})),
        json!({"x": 2}),
    )
    .await;
    assert_eq!(o.result["stdout"], "exe 2", "{o:?}");
    let (o, _) = run(
        action(d.path(), json!({"entry_point": "noshebang.sh"})),
        json!({}),
    )
    .await;
    assert_eq!(o.result["stdout"], "bare", "{o:?}");
}

#[tokio::test]
async fn missing_entry_point_fails_naming_the_path() {
    let d = tmp();
    let a = action(d.path(), json!({"entry_point": "gone.sh"}));
    let problems = ShellRunner::default().validate(&a);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "entry_point");
    assert!(problems[0].1.contains("gone.sh"), "{problems:?}");
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Failed);
    let err = o.error.unwrap_or_default();
    assert!(
        err.contains(&d.path().join("gone.sh").display().to_string()),
        "{err}"
    );
}

#[test]
fn validate_needs_exactly_one_of_cmd_and_entry_point() {
    let d = tmp();
    std::fs::write(d.path().join("s.sh"), "true\n").expect("write");
    let v = |meta| ShellRunner::default().validate(&action(d.path(), meta));
    let p = v(json!({}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "cmd");
    let p = v(json!({"cmd": "true", "entry_point": "s.sh"}));
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains("not both"), "{p:?}");
    assert!(v(json!({"cmd": "true"})).is_empty());
    assert!(v(json!({"entry_point": "s.sh"})).is_empty());
    let p = v(json!({"cmd": "true", "cwd": "nowhere"}));
    assert_eq!(p[0].0, "cwd");
}

#[tokio::test]
async fn killed_by_signal_names_it() {
    let d = tmp();
    let a = action(d.path(), json!({"cmd": "kill -9 $$"}));
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Failed);
    assert!(
        o.error.as_deref().unwrap_or("").contains("SIGKILL"),
        "{o:?}"
    );
    assert_eq!(o.result["exit_code"], Json::Null);
    assert_eq!(o.result["signal"], "SIGKILL (9)");
}

#[tokio::test]
async fn large_output_is_capped_in_the_result() {
    let d = tmp();
    let a = action(
        d.path(),
        json!({"cmd": "head -c 3000000 /dev/zero | tr '\\0' a"}),
    );
    let (o, chunks) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Succeeded);
    assert_eq!(
        o.result["stdout"].as_str().map(str::len),
        Some(CAPTURE_LIMIT)
    );
    assert_eq!(o.result["stdout_truncated"], true);
    let streamed: usize = chunks.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(streamed, 3_000_000);
}

/// True when `pid` is gone or a zombie (exited, not yet reaped by its new parent).
fn process_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
            .unwrap_or(false),
    }
}

async fn cancel_kills_group(cmd: &str) {
    let d = tmp();
    let a = action(d.path(), json!({"cmd": cmd}));
    let mut h = harness(a, json!({}));
    let cancel = h.ctx.cancel.clone();
    let task = tokio::spawn(async move { ShellRunner::default().run(h.ctx).await });
    // The command prints the grandchild's pid first.
    let pid: i32 = tokio::time::timeout(Duration::from_secs(20), h.rx.recv())
        .await
        .expect("no output")
        .expect("sink closed")
        .1
        .trim()
        .parse()
        .expect("a pid");
    assert!(!process_dead(pid), "grandchild should be running");
    cancel.cancel();
    let o = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("cancel hung")
        .expect("join");
    assert_eq!(o.status, Status::Canceled, "{o:?}");
    assert!(o.result["stdout"]
        .as_str()
        .unwrap_or("")
        .contains(&pid.to_string()));
    let mut dead = false;
    for _ in 0..100 {
        if process_dead(pid) {
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !dead {
        // SAFETY: clean up the stray process before failing.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(dead, "grandchild {pid} survived the cancel");
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    cancel_kills_group("sleep 1000 & echo $!; sleep 1000").await;
}

#[tokio::test]
async fn cancel_escalates_to_sigkill_when_sigterm_is_ignored() {
    cancel_kills_group("trap '' TERM; sleep 1000 & echo $!; sleep 1000; sleep 1000").await;
}

/// Wait (bounded) until `pid` is dead; kill it and fail otherwise.
async fn assert_dies(pid: i32, what: &str) {
    for _ in 0..200 {
        if process_dead(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: clean up the stray process before failing.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    panic!("{what} {pid} survived");
}

#[tokio::test]
async fn background_children_end_with_the_command() {
    let d = tmp();
    let a = action(
        d.path(),
        json!({"cmd": "sleep 1000 >/dev/null 2>&1 & echo $!"}),
    );
    let (o, _) = run(a, json!({})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    let pid: i32 = o.result["stdout"].as_str().unwrap().parse().expect("a pid");
    assert_dies(pid, "background child").await;
}

#[tokio::test]
async fn a_running_command_is_recorded_in_the_store_until_it_ends() {
    let d = tmp();
    let store =
        Arc::new(squall_core::store::SledStore::open(&d.path().join("data"), None).unwrap());
    let runner = ShellRunner::default();
    runner.bind(&(store.clone() as Arc<dyn squall_core::store::Store>));
    let a = action(
        d.path(),
        json!({"cmd": "echo $$; while [ ! -e go ]; do sleep 0.05; done"}),
    );
    let mut h = harness(a, json!({}));
    let task = tokio::spawn(async move { runner.run(h.ctx).await });
    let pid: i32 = tokio::time::timeout(Duration::from_secs(20), h.rx.recv())
        .await
        .expect("no output")
        .expect("sink closed")
        .1
        .trim()
        .parse()
        .expect("a pid");
    let records: Vec<_> = store
        .recorded_processes()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].execution, "01TESTEXEC");
    assert_eq!(
        (records[0].pid, records[0].pgid),
        (pid, pid),
        "sh leads its group"
    );
    assert_eq!(
        Some(records[0].start_time),
        crate::runners::process::proc_stat(pid).map(|s| s.start_time)
    );
    std::fs::write(d.path().join("go"), "").unwrap();
    let o = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("runner hung")
        .expect("join");
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert!(store.recorded_processes().unwrap().is_empty());
}
