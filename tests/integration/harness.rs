//! Shared harness: a temporary content root and the real `squall` binary run against it.
//!
//! Every command runs with `--root <tmp>` (so the data dir is `<tmp>/.squall`), a clean
//! environment for Squall's own variables, and a hard timeout: a command that hangs is
//! killed and the test fails saying so, with whatever it printed.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The hard limit for one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (the shipped content lives here).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary content root plus helpers to run `squall` on it.
pub struct Squall {
    dir: tempfile::TempDir,
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Everything about the command, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    /// Assert the exit status, showing the output otherwise.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            expected,
            "unexpected exit status\n{}",
            self.describe()
        );
        self
    }

    /// Assert exit 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e})\n{}", self.describe())
        })
    }

    /// Assert stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Assert stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Assert that neither stream mentions a panic.
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "squall panicked\n{}",
            self.describe()
        );
        self
    }
}

/// One command to run, with optional environment and stdin.
pub struct Cmd<'a> {
    sq: &'a Squall,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl Cmd<'_> {
    /// Set an environment variable for the command.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Feed `data` on standard input.
    pub fn stdin(mut self, data: &str) -> Self {
        self.stdin = Some(data.as_bytes().to_vec());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_squall"));
        c.arg("--root").arg(self.sq.root()).args(&self.args);
        for k in [
            "SQUALL_ROOT",
            "SQUALL_DATA",
            "SQUALL_SERVER",
            "SQUALL_TOKEN",
            "SQUALL_LOG",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(k);
        }
        c.env("NO_PROXY", "*");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.current_dir(self.sq.root());
        c
    }

    fn cmdline(&self) -> String {
        format!(
            "squall --root {} {}",
            self.sq.root().display(),
            self.args.join(" ")
        )
    }

    /// Start the command in the background.
    pub fn spawn(self) -> Running {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("cannot start the squall binary");
        if let Some(data) = self.stdin.clone() {
            let mut input = child.stdin.take().expect("stdin is piped");
            std::thread::spawn(move || {
                let _ = input.write_all(&data);
            });
        }
        let out = reader(child.stdout.take().expect("stdout is piped"));
        let err = reader(child.stderr.take().expect("stderr is piped"));
        Running {
            cmdline: self.cmdline(),
            child,
            out: Some(out),
            err: Some(err),
            started: Instant::now(),
        }
    }

    /// Run to the end (at most [`COMMAND_TIMEOUT`]).
    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A command started in the background.
pub struct Running {
    cmdline: String,
    child: Child,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    started: Instant,
}

impl Running {
    /// Wait for the end (the timeout counts from the start); kill and fail on a hang.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        let deadline = self.started + COMMAND_TIMEOUT;
        let status = loop {
            match self.child.try_wait().expect("waiting for squall") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let out = self.collect(-1);
                    panic!(
                        "squall did not finish within {COMMAND_TIMEOUT:?} and was killed\n{}",
                        out.describe()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        self.collect(status.code().unwrap_or(-1))
    }

    fn collect(&mut self, code: i32) -> Output {
        let take = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        Output {
            cmdline: self.cmdline.clone(),
            code,
            stdout: take(self.out.take()).unwrap_or_default(),
            stderr: take(self.err.take()).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Squall {
    /// An empty content root.
    pub fn empty() -> Squall {
        Squall {
            dir: tempfile::Builder::new()
                .prefix("squall-it-")
                .tempdir()
                .expect("cannot create a temp dir"),
        }
    }

    /// A content root seeded with the repository's shipped content (packs, rules,
    /// workflows, sensors, tests/fixtures).
    pub fn new() -> Squall {
        let sq = Squall::empty();
        for sub in ["packs", "rules", "workflows", "sensors", "tests/fixtures"] {
            let from = repo().join(sub);
            if from.is_dir() {
                copy_dir(&from, &sq.path(sub));
            }
        }
        sq
    }

    /// A content root with only the `core` pack.
    pub fn core_only() -> Squall {
        let sq = Squall::empty();
        copy_dir(&repo().join("packs/core"), &sq.path("packs/core"));
        sq
    }

    /// The content root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir (`<root>/.squall`).
    pub fn data(&self) -> PathBuf {
        self.root().join(".squall")
    }

    /// `rel` under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Write `text` to `rel` under the root, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self
    }

    /// Write an executable script.
    pub fn write_exec(&self, rel: &str, text: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        self.write(rel, text);
        let p = self.path(rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }

    /// Read a file under the root.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Create a pack folder with a `pack.yaml` holding `name` (plus `extra` lines).
    pub fn pack(&self, name: &str, extra: &str) -> &Self {
        self.write(
            &format!("packs/{name}/pack.yaml"),
            &format!("name: {name}\nversion: 0.1.0\n{extra}"),
        )
    }

    /// Write `packs/<pack>/actions/<name>.yaml`.
    pub fn action(&self, pack: &str, name: &str, yaml: &str) -> &Self {
        self.write(&format!("packs/{pack}/actions/{name}.yaml"), yaml)
    }

    /// A command to configure before running.
    pub fn cmd(&self, args: &[&str]) -> Cmd<'_> {
        Cmd {
            sq: self,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// Run `squall --root <root> args...` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }

    /// `squall run ... -o json`, returning the exit code and the execution record.
    #[track_caller]
    pub fn exec_json(&self, args: &[&str]) -> (Output, Value) {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.run(&a);
        out.no_panic();
        let v = out.json();
        (out, v)
    }

    /// `squall execution get ID -o json`.
    #[track_caller]
    pub fn get(&self, id: &str) -> Value {
        let out = self.run(&["execution", "get", id, "-o", "json"]);
        out.ok();
        out.json()
    }

    /// Every file under the data dir, as (path, bytes).
    pub fn data_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.data(), &mut out);
        out
    }

    /// Assert no file under the data dir contains `needle`.
    #[track_caller]
    pub fn assert_data_lacks(&self, needle: &str) {
        let files = self.data_files();
        assert!(
            !files.is_empty(),
            "the data dir {} holds no file",
            self.data().display()
        );
        for (p, bytes) in files {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{} holds the secret {needle:?} in plain text",
                p.display()
            );
        }
    }
}

/// True when `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
}

/// Copy a folder recursively, keeping file modes.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for e in std::fs::read_dir(from).expect("read folder").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap_or_else(|err| panic!("copy {}: {err}", p.display()));
        }
    }
}

/// The children of an execution record.
#[track_caller]
pub fn children(rec: &Value) -> Vec<Value> {
    rec["children"]
        .as_array()
        .unwrap_or_else(|| panic!("record has no children: {rec:#}"))
        .clone()
}

/// `(task, status)` of each child, in run order.
pub fn tasks(rec: &Value) -> Vec<(String, String)> {
    children(rec)
        .iter()
        .map(|c| {
            (
                c["task"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The id of a record.
#[track_caller]
pub fn id(rec: &Value) -> String {
    rec["id"]
        .as_str()
        .unwrap_or_else(|| panic!("record has no id: {rec:#}"))
        .to_string()
}
