//! Commands that work directly on the content root and the local data dir.

use super::output::{self, structured, Format};
use super::{
    ActionCmd, Cli, Command, ExecutionCmd, ExitCode, RuleCmd, RunArgs, SensorCmd, TriggerCmd,
};
use serde_json::json;
use squall_core::content::{self, Content};
use squall_core::model::{Json, Status};
use squall_core::store::{ListFilter, SledStore};
use squall_runtime::executions::{Engine, Request};
use std::io::Read;
use std::sync::Arc;

/// Run one parsed command (through the server when `--server` is set, see
/// [`super::remote`]).
pub async fn dispatch(cli: Cli) -> ExitCode {
    if let Some(code) = super::remote::dispatch(&cli).await {
        return code;
    }
    let result = match &cli.command {
        Command::Validate => return validate(&cli),
        Command::Pack(cmd) => return super::pack::run(&cli, cmd),
        Command::Rule(cmd) => rule(&cli, cmd),
        Command::Action(cmd) => action(&cli, cmd),
        Command::Run(args) => run(&cli, args).await,
        Command::Execution(cmd) => execution(&cli, cmd).await,
        Command::Bench(args) => crate::cli::bench::run(&cli, args).await,
        Command::Serve(args) => super::serve::run(&cli, args).await,
        Command::Trigger(cmd) => trigger(&cli, cmd),
        Command::Sensor(SensorCmd::List) => sensors(&cli),
        Command::Sensor(SensorCmd::Reset { name }) => reset_sensor(&cli, name).await,
        Command::Reload => Err(needs_server("reload")),
        Command::Store(super::StoreCmd::Check) => store_check(&cli),
    };
    finish(cli.output, result)
}

/// The exit status of a command's result, printing the error (also as `{"error": ...}` on
/// stdout with `-o json`).
pub fn finish(format: Format, result: CmdResult) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            2
        }
        Err(Failure::Failed(msg)) => {
            if format == Format::Json {
                println!("{}", json!({"error": msg}));
            }
            eprintln!("error: {msg}");
            1
        }
    }
}

/// Why a command did not complete.
pub enum Failure {
    /// The command was used wrongly (exit 2).
    Usage(String),
    /// The thing failed (exit 1).
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.to_string())
    }
}

type CmdResult = Result<ExitCode, Failure>;

/// The usage error of a command that only a running server can do.
fn needs_server(what: &str) -> Failure {
    Failure::Usage(format!(
        "{what} needs a running server: pass --server URL (or set SQUALL_SERVER)"
    ))
}

/// Load the content root; print the problems when it is invalid.
pub fn load(cli: &Cli) -> Result<Arc<Content>, Failure> {
    match content::load(&cli.root, &squall_server::components()) {
        Ok(c) => Ok(Arc::new(c)),
        Err(d) => {
            for p in &d.0 {
                eprintln!("{p}");
            }
            Err(Failure::Failed(format!(
                "content under {} has {} problem(s); fix them (see `squall validate`)",
                cli.root.display(),
                d.0.len()
            )))
        }
    }
}

/// Open the local store and build an engine.
pub fn engine(cli: &Cli, content: Arc<Content>) -> Result<Arc<Engine>, Failure> {
    let dir = cli.data.clone().unwrap_or_else(|| content.data_dir());
    let key = content
        .settings
        .key_file
        .as_ref()
        .map(|k| content.root.join(content::expand_home(k)));
    let store = SledStore::open(&dir, key.as_deref())?;
    Ok(squall_runtime::engine(
        content,
        Arc::new(store),
        squall_server::components().runners,
    ))
}

fn validate(cli: &Cli) -> ExitCode {
    match content::load(&cli.root, &squall_server::components()) {
        Ok(c) => {
            let summary = json!({
                "valid": true,
                "packs": c.packs.len(),
                "actions": c.actions.len(),
                "rules": c.rules.len(),
                "sensors": c.sensors.len(),
            });
            if structured(cli.output, &summary).is_none() {
                println!(
                    "content is valid: {} packs, {} actions, {} rules, {} sensors",
                    c.packs.len(),
                    c.actions.len(),
                    c.rules.len(),
                    c.sensors.len()
                );
            }
            0
        }
        Err(d) => {
            let problems: Vec<Json> = d
                .0
                .iter()
                .map(|p| json!({"file": p.file, "line": p.line, "column": p.col, "message": p.message}))
                .collect();
            if structured(cli.output, &json!({"valid": false, "problems": problems})).is_none() {
                println!("{d}");
            }
            1
        }
    }
}

async fn run(cli: &Cli, args: &RunArgs) -> CmdResult {
    if args.detach {
        return Err(needs_server("run --async"));
    }
    let content = load(cli)?;
    let action = content
        .action(&args.action)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut params = match &args.json {
        Some(j) => match serde_json::from_str::<Json>(j) {
            Ok(Json::Object(m)) => m,
            Ok(_) => {
                return Err(Failure::Usage(
                    "-p takes a JSON object, like -p '{\"count\": 3}'".into(),
                ))
            }
            Err(e) => return Err(Failure::Usage(format!("-p is not valid JSON: {e}"))),
        },
        None => Default::default(),
    };
    let kv = squall_core::params::from_kv(&action.meta.parameters, &args.params)
        .map_err(|e| Failure::Usage(format!("{}: {e}", action.reference)))?;
    params.extend(kv);
    let engine = engine(cli, content)?;
    let mut tap = engine.tap_output();
    let live = cli.output == Format::Table;
    let printer = tokio::spawn(async move {
        while let Some((_id, chunk)) = tap.recv().await {
            if live {
                eprint!("{}", chunk.data);
            }
        }
    });
    let req = Request {
        action: args.action.clone(),
        parameters: Json::Object(params),
        requested_by: Some(whoami()),
        ..Default::default()
    };
    let result = engine.execute(req).await;
    printer.abort();
    let e = match result {
        Ok(e) => e,
        Err(squall_runtime::executions::EngineError::Params { action, error }) => {
            return Err(Failure::Usage(format!("{action}: {error}")))
        }
        Err(e) => return Err(e.into()),
    };
    let e = engine.get(&e.id)?;
    output::execution(cli.output, &e);
    Ok(if e.status == Status::Succeeded { 0 } else { 1 })
}

/// The OS user, for the audit trail of local runs.
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

fn action(cli: &Cli, cmd: &ActionCmd) -> CmdResult {
    let content = load(cli)?;
    match cmd {
        ActionCmd::List { pack } => {
            let list = squall_server::views::actions(&content, pack.as_deref());
            output::actions(cli.output, &Json::Array(list));
        }
        ActionCmd::Get { reference } => {
            let a = content.action(reference)?;
            output::action(cli.output, &squall_server::views::action_doc(&content, &a));
        }
    }
    Ok(0)
}

async fn execution(cli: &Cli, cmd: &ExecutionCmd) -> CmdResult {
    let content = load(cli)?;
    let engine = engine(cli, content)?;
    match cmd {
        ExecutionCmd::List {
            status,
            action,
            limit,
            all,
        } => {
            let status = match status {
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    Failure::Usage(format!(
                        "unknown status `{s}`; one of: {}",
                        names.join(", ")
                    ))
                })?),
                None => None,
            };
            let list = engine.store().list_executions(&ListFilter {
                status,
                action: action.clone(),
                top_level_only: !all,
                limit: *limit,
            })?;
            output::executions(cli.output, &list);
            warn_skipped(&list.skipped);
        }
        ExecutionCmd::Get { id } => {
            let e = engine.get(id)?;
            output::execution(cli.output, &e);
        }
        ExecutionCmd::Tail { id } => {
            let e = engine.get(id)?;
            let mut ids = vec![e.id.clone()];
            ids.extend(e.children.iter().map(|c| c.id.clone()));
            let mut chunks = Vec::new();
            for i in &ids {
                chunks.extend(
                    engine
                        .store()
                        .output(i, 0)?
                        .into_iter()
                        .map(|(_, c)| (i.clone(), c)),
                );
            }
            chunks.sort_by(|a, b| a.1.at.cmp(&b.1.at));
            if structured(cli.output, &chunks.iter().map(|(i, c)| json!({"execution": i, "stream": c.stream, "data": c.data, "at": c.at})).collect::<Vec<_>>()).is_none() {
                for (_, c) in &chunks {
                    if c.stream == "stderr" {
                        eprint!("{}", c.data);
                    } else {
                        print!("{}", c.data);
                    }
                }
            }
        }
        ExecutionCmd::Cancel { id } => {
            let mut e = engine.get(id)?;
            if e.status.is_terminal() {
                return Err(Failure::Failed(format!(
                    "execution {id} already ended with status {}",
                    e.status
                )));
            }
            // Nothing runs it in this process (the data dir lock guarantees no other process
            // does either): it was left unfinished by an engine that stopped. End it.
            let prev = e.status;
            e.status = Status::Canceled;
            e.error = Some("canceled from the command line".into());
            e.finished_at = Some(squall_core::model::now_rfc3339());
            let t = engine.store().put_execution(Some(prev), &e)?;
            engine.store().durable(t).await?;
            output::execution(cli.output, &e);
        }
        ExecutionCmd::Rerun { id } => {
            let old = engine.get(id)?;
            let params = engine
                .store()
                .sealed_params(id)?
                .unwrap_or(old.parameters.clone());
            let req = Request {
                action: old.action.clone(),
                parameters: params,
                requested_by: Some(whoami()),
                ..Default::default()
            };
            let e = engine.execute(req).await?;
            let e = engine.get(&e.id)?;
            output::execution(cli.output, &e);
            return Ok(if e.status == Status::Succeeded { 0 } else { 1 });
        }
    }
    Ok(0)
}

fn rule(cli: &Cli, cmd: &RuleCmd) -> CmdResult {
    let content = load(cli)?;
    match cmd {
        RuleCmd::List => {
            output::rules(
                cli.output,
                &Json::Array(squall_server::views::rules(&content)),
            );
            Ok(0)
        }
        RuleCmd::Get { reference } => {
            let r = content.rule(reference)?;
            output::rule(cli.output, &squall_server::views::rule_doc(&content, &r));
            Ok(0)
        }
        RuleCmd::Test { reference, trigger } => {
            let r = content
                .rule(reference)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let payload = read_payload(trigger)?;
            let report = squall_server::views::rule_test(&content, &r, &payload);
            let ok = output::rule_test(cli.output, &r.reference, &r.spec.action.action, &report);
            Ok(if ok { 0 } else { 1 })
        }
    }
}

/// The trigger payload of `rule test --trigger FILE|-`, as JSON.
pub fn read_payload(trigger: &str) -> Result<Json, Failure> {
    let text = if trigger == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::Usage(format!("reading stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(trigger)
            .map_err(|e| Failure::Usage(format!("cannot read {trigger}: {e}")))?
    };
    serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{trigger}: not valid JSON: {e}")))
}

fn trigger(cli: &Cli, cmd: &TriggerCmd) -> CmdResult {
    match cmd {
        TriggerCmd::Emit { .. } => Err(needs_server("trigger emit")),
        TriggerCmd::Instances { trigger, limit } => {
            let content = load(cli)?;
            let engine = engine(cli, content)?;
            let list = engine.store().list_triggers(trigger.as_deref(), *limit)?;
            let doc = squall_core::secrets::mask_json(&serde_json::to_value(&list.items)?);
            output::trigger_instances(cli.output, &doc);
            warn_skipped(&list.skipped);
            Ok(0)
        }
    }
}

/// `squall store check`: every tree's record count and unreadable keys; exit 1 when a
/// record cannot be read.
fn store_check(cli: &Cli) -> CmdResult {
    let content = load(cli)?;
    let engine = engine(cli, content)?;
    let report = engine.store().check()?;
    if cli.output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("data dir {}", report.dir);
        for t in &report.trees {
            println!(
                "  {:<14} {:>8} readable  {:>4} unreadable",
                t.tree,
                t.records,
                t.unreadable.len()
            );
            for k in &t.unreadable {
                println!("    cannot read {k}");
            }
        }
    }
    if report.clean() {
        Ok(0)
    } else {
        let n: usize = report.trees.iter().map(|t| t.unreadable.len()).sum();
        eprintln!("{n} record(s) cannot be read: they are left out of listings and kept as they are; see docs/operations.md, \"A damaged data directory\"");
        Ok(1)
    }
}

/// Tell on stderr which stored records a listing left out (they cannot be read).
fn warn_skipped(skipped: &[String]) {
    if let Some(w) = squall_core::store::skipped_warning(skipped) {
        eprintln!("warning: {w}");
    }
}

/// `sensor list` without a server: the configured instances, none of them running.
/// `squall sensor reset NAME`: remove its checkpoint.
async fn reset_sensor(cli: &Cli, name: &str) -> CmdResult {
    let engine = engine(cli, load(cli)?)?;
    let removed = engine.store().remove_sensor_checkpoint(name).await?;
    if removed {
        println!("sensor {name}: checkpoint removed; it starts afresh at the next `squall serve`");
    } else {
        println!("sensor {name} has no checkpoint");
    }
    Ok(0)
}

fn sensors(cli: &Cli) -> CmdResult {
    let content = load(cli)?;
    let list: Vec<Json> = content
        .sensors
        .values()
        .map(|s| squall_server::views::sensor_summary(&content, s))
        .collect();
    output::sensors(cli.output, &Json::Array(list));
    Ok(0)
}
