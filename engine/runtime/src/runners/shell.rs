//! `shell`: runs a command or a script in a child process.
//!
//! # Action fields
//!
//! | field | meaning |
//! |---|---|
//! | `cmd` | a command line, run with `sh -c` |
//! | `entry_point` | a script beside the action's YAML; run directly when it is executable, else with `sh` |
//! | `cwd` | working directory, relative to the action's folder (default: the action's folder) |
//! | `env` | extra environment variables, taken literally |
//!
//! Exactly one of `cmd` and `entry_point` is required.
//!
//! # How parameters arrive
//!
//! * Each parameter as an environment variable `SQUALL_PARAM_<NAME>`: the name upper-cased
//!   (characters other than letters, digits and `_` become `_`); strings as they are, `null`
//!   as an empty string, numbers, booleans, arrays and objects as JSON.
//! * The whole parameter object as one line of JSON on standard input, which is then closed.
//! * `SQUALL_EXECUTION_ID` and `SQUALL_ACTION` (the action's reference) are set too.
//!
//! The child inherits the engine's environment otherwise; `env` from the action is applied
//! first, so the `SQUALL_*` variables always win.
//!
//! # Result
//!
//! `{exit_code, stdout, stderr}`, plus `json` when the trimmed stdout is exactly one JSON
//! value (so a script can `echo '{"id": 3}'` and a workflow can publish `result.json.id`).
//! Trailing newlines are removed from `stdout` and `stderr`. Each is kept up to 1 MiB in the
//! result (`stdout_truncated` / `stderr_truncated` are then `true`); the live output is not
//! cut. Output streams live, line by line, as `stdout` and `stderr` chunks.
//!
//! A non-zero exit code fails the execution with `command exited with code N: <last stderr
//! line>`; death by a signal fails it naming the signal (`exit_code` is then `null` and
//! `signal` holds the signal's name).
//!
//! # Cancel, timeout and the lifetime of the command's processes
//!
//! The child leads its own process group. When the execution is canceled or times out the
//! whole group gets `SIGTERM`, and `SIGKILL` once the command has exited or after a grace of
//! two seconds, so background children (`sleep 1000 &`) do not outlive the action. When the
//! command exits on its own, whatever it left in its group gets `SIGKILL` once its output
//! is read (at most two seconds later).
//!
//! No process of the action outlives the engine either (see [`super::process`]): the
//! command is started only once its pid, group and start time are durable in the store; it
//! gets `SIGKILL` from the kernel when the engine dies; and a restarted engine kills what is
//! left of every recorded group before it runs or abandons anything.

use super::process::{Group, ProcessBook, SpawnError};
use super::{ActionOutcome, RunContext, Runner};
use async_trait::async_trait;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};
use squall_core::config::{ConfigError, Reference};
use squall_core::content::Action;
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Most bytes of each stream kept in the result.
const CAPTURE_LIMIT: usize = 1024 * 1024;
/// A line longer than this is emitted in pieces of this size.
const MAX_LINE: usize = 64 * 1024;
/// Time between SIGTERM and SIGKILL on cancel.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long output is still read after the command exited, for background children that
/// keep the pipes open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// The `shell` runner.
#[derive(Default)]
pub struct ShellRunner {
    /// Where started processes are recorded (the engine's store, once bound).
    book: OnceLock<ProcessBook>,
}

/// The settings of a `shell` action: what to run, where, with which environment.
/// Exactly one of `cmd` and `entry_point` (a common key) is required.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellSettings {
    /// A command line, run with `sh -c`.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Working directory, relative to the action's folder (default: the action's folder).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables, taken literally.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}

#[async_trait]
impl Runner for ShellRunner {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn bind(&self, store: &Arc<dyn squall_core::store::Store>) {
        let _ = self.book.set(ProcessBook::new(store.clone()));
    }

    fn reference(&self) -> Reference {
        Reference::settings::<ShellSettings>(
            "Runs a command line (`cmd`) or a script (`entry_point`) as a child process; \
             parameters arrive as `SQUALL_PARAM_<NAME>` environment variables and as JSON \
             on stdin (docs/runners.md).",
        )
    }

    fn validate(&self, action: &Action) -> Vec<(String, String)> {
        let settings = match action.settings::<ShellSettings>() {
            Ok(s) => s,
            Err(e) => return vec![e.problem("")],
        };
        let mut problems = Vec::new();
        match (&settings.cmd, &action.meta.entry_point) {
            (None, None) => problems.push((
                "cmd".to_string(),
                "the shell runner needs `cmd` (a command line) or `entry_point` (a script)"
                    .to_string(),
            )),
            (Some(_), Some(_)) => problems.push((
                "cmd".to_string(),
                "give either `cmd` or `entry_point`, not both".to_string(),
            )),
            (None, Some(_)) => {
                if let Err(e) = script_path(action) {
                    problems.push(("entry_point".to_string(), e.to_string()));
                }
            }
            (Some(cmd), None) => {
                if cmd.trim().is_empty() {
                    problems.push(("cmd".to_string(), "`cmd` is empty".to_string()));
                }
            }
        }
        if settings.cwd.is_some() {
            if let Err(e) = working_dir(action, &settings) {
                problems.push(("cwd".to_string(), e.to_string()));
            }
        }
        for name in settings.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                problems.push((
                    format!("env.{name}"),
                    "an environment variable name may not be empty or contain `=`".to_string(),
                ));
            }
        }
        problems
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        let command = match build_command(&ctx) {
            Ok(c) => c,
            Err(e) => return ActionOutcome::failed(squall_core::error_chain(&e), Json::Null),
        };
        let book = self.book.get().cloned().unwrap_or_default();
        let (mut child, mut group) = match spawn(command, &ctx, &book).await {
            Ok(started) => (started.child, started.group),
            Err(e) => return ActionOutcome::failed(squall_core::error_chain(&e), Json::Null),
        };

        if let Some(mut stdin) = child.stdin.take() {
            let input = serde_json::to_vec(&ctx.parameters).unwrap_or_default();
            // A child that never reads stdin must not block us, so write on the side; a
            // broken pipe just means it did not want the input.
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.write_all(b"\n").await;
            });
        }

        let out = Capture::shared();
        let err = Capture::shared();
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(spawn_reader(pipe, "stdout", out.clone(), &ctx));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(spawn_reader(pipe, "stderr", err.clone(), &ctx));
        }

        let status = tokio::select! {
            status = child.wait() => Some(status),
            _ = ctx.cancel.cancelled() => None,
        };

        match status {
            Some(Ok(status)) => {
                wait_readers(&mut readers, DRAIN_AFTER_EXIT).await;
                // Whatever the command left running in its group ends with the action.
                group.end();
                finished(status, &out, &err)
            }
            Some(Err(e)) => {
                group.end();
                wait_readers(&mut readers, DRAIN_AFTER_EXIT).await;
                ActionOutcome::failed(
                    format!("could not wait for the command: {e}"),
                    partial(None, &out, &err),
                )
            }
            None => {
                let status = terminate(&mut child, &mut group, &mut readers).await;
                ActionOutcome::canceled(partial(status, &out, &err))
            }
        }
    }
}

/// Stop a canceled command: SIGTERM to the group, wait for the command to exit and its
/// output to close (at most [`KILL_GRACE`]), then SIGKILL to whatever is left.
async fn terminate(
    child: &mut Child,
    group: &mut Group,
    readers: &mut Vec<JoinHandle<()>>,
) -> Option<ExitStatus> {
    group.signal(libc::SIGTERM);
    let graceful = async {
        let status = child.wait().await.ok();
        wait_readers(readers, KILL_GRACE).await;
        status
    };
    let status = tokio::time::timeout(KILL_GRACE, graceful)
        .await
        .unwrap_or_default();
    group.end();
    let status = match status {
        Some(s) => Some(s),
        // SIGKILL cannot be ignored, so this returns at once.
        None => tokio::time::timeout(KILL_GRACE, child.wait())
            .await
            .ok()
            .and_then(Result::ok),
    };
    wait_readers(readers, Duration::from_millis(200)).await;
    status
}

/// Why a shell action's command cannot be built or started.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// The action's settings do not decode (content is validated when it loads).
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// Neither `cmd` nor `entry_point`.
    #[error("the action has neither `cmd` nor `entry_point`")]
    Neither,
    /// Both `cmd` and `entry_point`.
    #[error("the action has both `cmd` and `entry_point`")]
    Both,
    /// A script was expected but the action names none.
    #[error("the action has no `entry_point`")]
    NoEntryPoint,
    /// The entry point is there but is not a file.
    #[error("entry point is not a file: {}", .0.display())]
    NotAFile(PathBuf),
    /// The entry point cannot be found (or read).
    #[error("entry point not found: {}", .path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// `cwd` (or the action's folder) is not a directory.
    #[error("working directory not found: {}", .0.display())]
    NoWorkingDir(PathBuf),
    /// The process could not be started.
    #[error("could not start {program}")]
    Spawn {
        /// The program run (`sh` or the script).
        program: String,
        /// Why.
        #[source]
        source: SpawnError,
    },
}

/// Full path of the entry point script, checked to be a file.
fn script_path(action: &Action) -> Result<PathBuf, CommandError> {
    let path = action
        .entry_point_path()
        .ok_or(CommandError::NoEntryPoint)?;
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(CommandError::NotAFile(path)),
        Err(source) => Err(CommandError::NotFound { path, source }),
    }
}

/// The working directory: `cwd` relative to the action's folder, or the folder itself.
fn working_dir(action: &Action, settings: &ShellSettings) -> Result<PathBuf, CommandError> {
    let dir = match &settings.cwd {
        Some(cwd) => action.dir.join(cwd),
        None => action.dir.clone(),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(CommandError::NoWorkingDir(dir))
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What to run: program and arguments, before environment and pipes are set.
fn base_command(
    action: &Action,
    settings: &ShellSettings,
    force_sh: bool,
) -> Result<Command, CommandError> {
    match (&settings.cmd, &action.meta.entry_point) {
        (Some(cmd), None) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(cmd);
            Ok(c)
        }
        (None, Some(_)) => {
            let path = script_path(action)?;
            if is_executable(&path) && !force_sh {
                Ok(Command::new(path))
            } else {
                let mut c = Command::new("sh");
                c.arg(path);
                Ok(c)
            }
        }
        (None, None) => Err(CommandError::Neither),
        (Some(_), Some(_)) => Err(CommandError::Both),
    }
}

/// The command with its working directory, environment and pipes.
fn build_command(ctx: &RunContext) -> Result<Command, CommandError> {
    let settings = ctx.action.settings::<ShellSettings>()?;
    configure(base_command(&ctx.action, &settings, false)?, ctx, &settings)
}

fn configure(
    mut c: Command,
    ctx: &RunContext,
    settings: &ShellSettings,
) -> Result<Command, CommandError> {
    let action = &ctx.action;
    c.current_dir(working_dir(action, settings)?);
    for (k, v) in &settings.env {
        c.env(k, v);
    }
    if let Json::Object(params) = &ctx.parameters {
        for (name, value) in params {
            c.env(param_env_name(name), param_env_value(value));
        }
    }
    c.env("SQUALL_EXECUTION_ID", &ctx.execution_id);
    c.env("SQUALL_ACTION", &action.reference);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    Ok(c)
}

/// Start the command as a recorded process group (see [`super::process::spawn`]).
async fn spawn(
    command: Command,
    ctx: &RunContext,
    book: &ProcessBook,
) -> Result<super::process::Started, CommandError> {
    let program = program_of(&command);
    match super::process::spawn(command, &ctx.execution_id, book).await {
        Ok(started) => Ok(started),
        // An executable script without a `#!` line: the kernel refuses it, a shell runs it.
        Err(SpawnError::Os(e)) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let settings = ctx.action.settings::<ShellSettings>()?;
            let command = configure(base_command(&ctx.action, &settings, true)?, ctx, &settings)?;
            let program = program_of(&command);
            super::process::spawn(command, &ctx.execution_id, book)
                .await
                .map_err(|source| CommandError::Spawn { program, source })
        }
        Err(source) => Err(CommandError::Spawn { program, source }),
    }
}

fn program_of(command: &Command) -> String {
    command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned()
}

/// `SQUALL_PARAM_<NAME>` for a parameter name.
fn param_env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SQUALL_PARAM_{upper}")
}

/// Strings raw, null empty, anything else as JSON. NUL bytes cannot be in an environment
/// variable, so they are dropped.
fn param_env_value(value: &Json) -> String {
    let s = match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    };
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

/// One captured stream: the first [`CAPTURE_LIMIT`] bytes.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

type SharedCapture = Arc<Mutex<Capture>>;

impl Capture {
    fn shared() -> SharedCapture {
        Arc::new(Mutex::new(Capture::default()))
    }

    fn push(&mut self, data: &[u8]) {
        let room = CAPTURE_LIMIT.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Text of a capture, trailing newlines removed, and whether it was cut.
fn captured_text(capture: &SharedCapture) -> (String, bool) {
    let c = capture.locked();
    let text = String::from_utf8_lossy(&c.bytes);
    (text.trim_end_matches(['\n', '\r']).to_string(), c.truncated)
}

/// Read a pipe to its end: keep the start of it, emit it line by line. Whole lines are
/// emitted (not arbitrary chunks) so a secret is never split across two chunks, where
/// masking by value could not find it.
fn spawn_reader<R>(
    mut pipe: R,
    stream: &'static str,
    capture: SharedCapture,
    ctx: &RunContext,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let sink = ctx.output.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            capture.locked().push(&buf[..n]);
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                sink.emit(stream, String::from_utf8_lossy(&line));
            }
            if pending.len() >= MAX_LINE {
                let cut = utf8_boundary(&pending, MAX_LINE);
                let piece: Vec<u8> = pending.drain(..cut).collect();
                sink.emit(stream, String::from_utf8_lossy(&piece));
            }
        }
        if !pending.is_empty() {
            sink.emit(stream, String::from_utf8_lossy(&pending));
        }
    })
}

/// The largest index `<= max` that does not split a UTF-8 sequence (or `max` when the bytes
/// are not UTF-8 there anyway).
fn utf8_boundary(bytes: &[u8], max: usize) -> usize {
    if max >= bytes.len() {
        return bytes.len();
    }
    // Continuation bytes are 0b10xx_xxxx and a character is at most 4 bytes: cut before the
    // nearest character start.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && bytes[i] & 0xC0 != 0x80)
        .unwrap_or(max)
}

/// Wait for the readers to reach the end of their pipes, at most `limit`; stop them then.
async fn wait_readers(readers: &mut Vec<JoinHandle<()>>, limit: Duration) {
    let all = futures::future::join_all(readers.iter_mut());
    let _ = tokio::time::timeout(limit, all).await;
    for r in readers.drain(..) {
        r.abort();
    }
}

/// The name of a signal number, for messages.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    format!("{name} ({sig})")
}

/// `{exit_code, stdout, stderr}` (+ `signal`, truncation flags) for whatever ran.
fn partial(status: Option<ExitStatus>, out: &SharedCapture, err: &SharedCapture) -> Json {
    let (stdout, out_cut) = captured_text(out);
    let (stderr, err_cut) = captured_text(err);
    let mut m = Map::new();
    m.insert(
        "exit_code".into(),
        status.and_then(|s| s.code()).map_or(Json::Null, Json::from),
    );
    m.insert("stdout".into(), Json::String(stdout));
    m.insert("stderr".into(), Json::String(stderr));
    if let Some(sig) = status.and_then(|s| s.signal()) {
        m.insert("signal".into(), json!(signal_name(sig)));
    }
    if out_cut {
        m.insert("stdout_truncated".into(), Json::Bool(true));
    }
    if err_cut {
        m.insert("stderr_truncated".into(), Json::Bool(true));
    }
    Json::Object(m)
}

/// The outcome of a command that exited on its own.
fn finished(status: ExitStatus, out: &SharedCapture, err: &SharedCapture) -> ActionOutcome {
    let mut result = partial(Some(status), out, err);
    let truncated = result.get("stdout_truncated").is_some();
    if let Json::Object(m) = &mut result {
        let parsed = match m.get("stdout") {
            Some(Json::String(s)) if !truncated && !s.trim().is_empty() => {
                serde_json::from_str::<Json>(s.trim()).ok()
            }
            _ => None,
        };
        if let Some(v) = parsed {
            m.insert("json".into(), v);
        }
    }
    if status.success() {
        return ActionOutcome::succeeded(result);
    }
    let last_err = result
        .get("stderr")
        .and_then(Json::as_str)
        .and_then(|s| s.lines().rev().find(|l| !l.trim().is_empty()))
        .map(|l| l.trim().to_string());
    let mut msg = match (status.code(), status.signal()) {
        (Some(code), _) => format!("command exited with code {code}"),
        (None, Some(sig)) => format!("command was killed by {}", signal_name(sig)),
        (None, None) => "command ended abnormally".to_string(),
    };
    if let Some(line) = last_err {
        msg.push_str(": ");
        msg.push_str(&line);
    }
    ActionOutcome::failed(msg, result)
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
