//! The `squall` command line (docs/cli.md). Commands are thin: they load content, open the
//! store and call the same services the API uses.

pub mod bench;
pub(crate) mod local;
mod output;
mod pack;
mod remote;
pub mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use local::Failure;
pub use output::{duration, structured as print_structured, Format};

/// Exit status of a command: 0 success, 1 the thing failed, 2 usage error.
pub type ExitCode = i32;

/// Squall: event-driven automation for Kubernetes and cloud operations.
#[derive(Debug, Parser)]
#[command(name = "squall", version, about, propagate_version = true)]
pub struct Cli {
    /// Content root (packs/, rules/, workflows/, sensors/, squall.yaml).
    #[arg(long, global = true, default_value = ".", env = "SQUALL_ROOT")]
    pub root: PathBuf,
    /// State directory (default: `data_dir` from squall.yaml, else <root>/.squall).
    #[arg(long, global = true, env = "SQUALL_DATA")]
    pub data: Option<PathBuf>,
    /// URL of a running Squall server (`squall serve`); commands then go through its API.
    #[arg(long, global = true, env = "SQUALL_SERVER")]
    pub server: Option<String>,
    /// Bearer token for the server (`--server`).
    #[arg(long, global = true, env = "SQUALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check all content; print every problem as `path:line:col: message`.
    Validate,
    /// Run an action or workflow and print the execution (exit 1 unless it succeeded).
    Run(RunArgs),
    /// Actions (workflows included).
    #[command(subcommand)]
    Action(ActionCmd),
    /// Recorded executions.
    #[command(subcommand)]
    Execution(ExecutionCmd),
    /// Rules.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Packs.
    #[command(subcommand)]
    Pack(PackCmd),
    /// Triggers: emit one (needs --server), list recent instances.
    #[command(subcommand)]
    Trigger(TriggerCmd),
    /// Sensors and their state.
    #[command(subcommand)]
    Sensor(SensorCmd),
    /// Make the server reload its content (validated first; needs --server).
    Reload,
    /// The local data dir: check that every record reads.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Run sensors, rules, executions and the HTTP API in one process.
    Serve(serve::ServeArgs),
    /// Measure rule evaluation, execution and workflow throughput on this machine.
    Bench(bench::BenchArgs),
}

/// `squall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Action reference, `pack.name`.
    pub action: String,
    /// Parameters as name=value, coerced by the declared type.
    pub params: Vec<String>,
    /// Parameters as one JSON object (merged under name=value ones).
    #[arg(short = 'p', long = "parameters")]
    pub json: Option<String>,
    /// Print the scheduled execution and return at once (needs --server).
    #[arg(long = "async")]
    pub detach: bool,
}

/// `squall action ...`.
#[derive(Debug, Subcommand)]
pub enum ActionCmd {
    /// List actions.
    List {
        /// Only this pack.
        #[arg(long)]
        pack: Option<String>,
    },
    /// Show one action with its parameters.
    Get {
        /// `pack.name`.
        reference: String,
    },
}

/// `squall execution ...`.
#[derive(Debug, Subcommand)]
pub enum ExecutionCmd {
    /// List executions, newest first.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this action.
        #[arg(long)]
        action: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Include workflow children.
        #[arg(long)]
        all: bool,
    },
    /// Show one execution with its children.
    Get {
        /// Execution id.
        id: String,
    },
    /// Print the output of an execution.
    Tail {
        /// Execution id.
        id: String,
    },
    /// Stop an execution.
    Cancel {
        /// Execution id.
        id: String,
    },
    /// Run an execution again with the same parameters.
    Rerun {
        /// Execution id.
        id: String,
    },
}

/// `squall rule ...`.
#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// List rules.
    List,
    /// Show one rule.
    Get {
        /// `pack.name`.
        reference: String,
    },
    /// Show whether a trigger payload matches and the parameters the action would get
    /// (exit 0 matched, 1 not matched).
    Test {
        /// `pack.name`.
        reference: String,
        /// File with the trigger payload as JSON, or `-` for stdin.
        #[arg(long)]
        trigger: String,
    },
}

/// `squall pack ...`.
#[derive(Debug, Subcommand)]
pub enum PackCmd {
    /// List packs.
    List,
    /// Create a working pack skeleton under packs/NAME.
    New {
        /// Pack name, [a-z0-9_-]+.
        name: String,
    },
    /// Validate the content and report the problems of one pack (all packs without NAME).
    Validate {
        /// Pack name.
        name: Option<String>,
    },
}

/// `squall trigger ...`.
#[derive(Debug, Subcommand)]
pub enum TriggerCmd {
    /// Emit a trigger instance to the server's trigger bus (needs --server).
    Emit {
        /// Trigger type, like `core.webhook`.
        #[arg(value_name = "TYPE")]
        trigger: String,
        /// The payload as one JSON object.
        #[arg(short = 'p', long = "payload", value_name = "JSON")]
        payload: Option<String>,
    },
    /// List recent trigger instances, newest first.
    Instances {
        /// Only this trigger type.
        #[arg(long = "type", value_name = "TYPE")]
        trigger: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `squall store ...` (always local: it opens the data dir, so the server must be stopped).
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Read every stored record; list those that cannot be read (exit 1 when any).
    Check,
}

/// `squall sensor ...`.
#[derive(Debug, Subcommand)]
pub enum SensorCmd {
    /// State of each sensor instance (running, error, last event).
    List,
    /// Remove a sensor's checkpoint so that it starts afresh (local only, server stopped):
    /// the way out for a checkpoint that cannot be read.
    Reset {
        /// Sensor reference, `pack.name`.
        name: String,
    },
}

/// Parse the process arguments and run; returns the exit status.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(mut c) => {
            // Entry points and working directories are resolved against the content
            // root; make it absolute so they do not depend on the current directory.
            if let Ok(abs) = std::path::absolute(&c.root) {
                c.root = abs;
            }
            c
        }
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(matches!(cli.command, Command::Serve(_)));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(local::dispatch(cli))
}

/// End quietly when stdout is closed early (`squall ... | head`), like other command-line
/// tools. SIGPIPE itself stays ignored: a child process that does not read its stdin must
/// not kill Squall; only a failed print to our own stdout ends the process.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Logs go to stderr: `warn` and up for one-shot commands, `info` for `serve`; `SQUALL_LOG`
/// overrides the filter and `SQUALL_LOG_FORMAT=json` gives JSON lines.
fn init_logging(serving: bool) {
    let default = if serving { "info,sled=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SQUALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("SQUALL_LOG_FORMAT").is_ok_and(|f| f == "json") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}
