//! Remote mode: with `--server URL` (or `SQUALL_SERVER`) every command except the
//! content-local ones (`validate`, `pack new`, `pack validate`, `bench`, `serve`) goes
//! through the server's HTTP API (docs/api.md). `-o json` prints the server's documents as
//! they came; tables look as in local mode.

mod client;

use super::local::{finish, Failure};
use super::output::{self, structured, Format};
use super::{
    ActionCmd, Cli, Command, ExecutionCmd, ExitCode, PackCmd, RuleCmd, RunArgs, SensorCmd,
    TriggerCmd,
};
use client::{Client, RemoteError, SseParser};
use reqwest::{Method, StatusCode};
use serde_json::json;
use squall_core::model::{Json, ParamSpec, Status};
use std::io::Write;
use std::time::Duration;

/// How often an execution is polled when its output stream is not available.
const POLL: Duration = Duration::from_millis(250);

type CmdResult = Result<ExitCode, Failure>;

/// Whether `command` goes to the server when `--server` is set.
fn is_remote(command: &Command) -> bool {
    match command {
        Command::Run(_)
        | Command::Action(_)
        | Command::Execution(_)
        | Command::Rule(_)
        | Command::Trigger(_)
        | Command::Sensor(_)
        | Command::Reload => true,
        Command::Pack(cmd) => matches!(cmd, PackCmd::List),
        _ => false,
    }
}

/// Run `cli`'s command against the server when `--server` is set and the command is not
/// content-local; `None` means "run it locally".
pub async fn dispatch(cli: &Cli) -> Option<ExitCode> {
    let server = cli.server.as_deref()?;
    if !is_remote(&cli.command) {
        return None;
    }
    let result = match Client::new(server, cli.token.clone()) {
        Ok(client) => command(cli, &client).await,
        Err(e) => Err(e),
    };
    Some(finish(cli.output, result))
}

async fn command(cli: &Cli, c: &Client) -> CmdResult {
    let f = cli.output;
    match &cli.command {
        Command::Run(args) => run(f, c, args).await,
        Command::Action(ActionCmd::List { pack }) => {
            let list = c
                .get(&["api", "v1", "actions"], &[("pack", pack.clone())])
                .await?;
            output::actions(f, &list);
            Ok(0)
        }
        Command::Action(ActionCmd::Get { reference }) => {
            output::action(f, &c.get(&["api", "v1", "actions", reference], &[]).await?);
            Ok(0)
        }
        Command::Execution(cmd) => execution(f, c, cmd).await,
        Command::Rule(cmd) => rule(f, c, cmd).await,
        Command::Pack(_) => packs(f, c).await,
        Command::Trigger(cmd) => trigger(f, c, cmd).await,
        Command::Sensor(SensorCmd::List) => {
            output::sensors(f, &c.get(&["api", "v1", "sensors"], &[]).await?);
            Ok(0)
        }
        Command::Reload => reload(f, c).await,
        _ => Err(Failure::Usage("this command works only locally".into())),
    }
}

/// A 404 from the server as a usage error (an unknown reference on the command line).
fn not_found_is_usage(e: RemoteError) -> Failure {
    match e.status {
        Some(StatusCode::NOT_FOUND) => Failure::Usage(e.message),
        _ => Failure::Failed(e.message),
    }
}

/// Parse `-p JSON` as an object.
fn json_object(text: Option<&str>, flag: &str) -> Result<serde_json::Map<String, Json>, Failure> {
    match text.map(serde_json::from_str::<Json>) {
        None => Ok(Default::default()),
        Some(Ok(Json::Object(m))) => Ok(m),
        Some(Ok(_)) => Err(Failure::Usage(format!(
            "{flag} takes a JSON object, like {flag} '{{\"count\": 3}}'"
        ))),
        Some(Err(e)) => Err(Failure::Usage(format!("{flag} is not valid JSON: {e}"))),
    }
}

async fn run(f: Format, c: &Client, args: &RunArgs) -> CmdResult {
    let mut params = json_object(args.json.as_deref(), "-p")?;
    if !args.params.is_empty() {
        // name=value arguments are coerced by the declared types, as in local mode.
        let doc = c
            .get(&["api", "v1", "actions", &args.action], &[])
            .await
            .map_err(not_found_is_usage)?;
        let schema: squall_core::params::Schema = doc["metadata"]["parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, spec)| {
                let kind = serde_json::from_value(spec["type"].clone()).map_err(|e| {
                    Failure::Failed(format!(
                        "the server describes parameter `{name}` of {} with a type this CLI cannot read ({e}); use a squall CLI of the server's version",
                        args.action
                    ))
                })?;
                Ok((
                    name.clone(),
                    ParamSpec {
                        kind,
                        ..Default::default()
                    },
                ))
            })
            .collect::<Result<_, Failure>>()?;
        let kv = squall_core::params::from_kv(&schema, &args.params)
            .map_err(|e| Failure::Usage(format!("{}: {e}", args.action)))?;
        params.extend(kv);
    }
    let body = json!({"action": args.action, "parameters": params});
    let rec = c
        .send(Method::POST, &["api", "v1", "executions"], &[], Some(&body))
        .await
        .map_err(|e| match e.status {
            Some(StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY) => {
                Failure::Usage(e.message)
            }
            _ => Failure::Failed(e.message),
        })?;
    if args.detach {
        output::execution_json(f, &rec)?;
        return Ok(0);
    }
    finished(f, c, &rec).await
}

/// Wait for the execution `rec` (just scheduled) to end, print it, exit 0 if it succeeded.
async fn finished(f: Format, c: &Client, rec: &Json) -> CmdResult {
    let id = rec["id"].as_str().unwrap_or_default().to_string();
    let live = f == Format::Table;
    // Follow the output (shown on stderr in table mode); if the stream breaks, polling
    // below still finds the end.
    if let Err(e) = follow(c, &id, |chunk| {
        if live {
            eprint!("{}", output::cell(&chunk["data"]));
        }
    })
    .await
    {
        tracing::debug!("output stream of {id}: {}", e.message);
    }
    let last = loop {
        let now = c.get(&["api", "v1", "executions", &id], &[]).await?;
        let done = now["status"]
            .as_str()
            .and_then(Status::parse)
            .is_none_or(Status::is_terminal);
        if done {
            break now;
        }
        tokio::time::sleep(POLL).await;
    };
    output::execution_json(f, &last)?;
    Ok(if last["status"] == "succeeded" { 0 } else { 1 })
}

/// Follow `GET /api/v1/executions/{id}/output` until its `end` event (returned), calling
/// `on_output` with each `output` event's document.
async fn follow(
    c: &Client,
    id: &str,
    mut on_output: impl FnMut(&Json),
) -> Result<Json, RemoteError> {
    let mut resp = c.stream(&["api", "v1", "executions", id, "output"]).await?;
    let mut parser = SseParser::default();
    while let Some(bytes) = c.chunk(&mut resp).await? {
        for ev in parser.feed(&bytes) {
            let data: Json = serde_json::from_str(&ev.data).map_err(|e| RemoteError {
                status: None,
                source: None,
                message: format!(
                    "the output stream of {id} sent a `{}` event that is not JSON ({e}): {}",
                    ev.event,
                    ev.data.chars().take(200).collect::<String>()
                ),
            })?;
            match ev.event.as_str() {
                "output" => on_output(&data),
                "end" => return Ok(data),
                "error" => {
                    return Err(RemoteError {
                        status: None,
                        source: None,
                        message: format!(
                            "the output stream of {id} failed: {}",
                            output::cell(&data["error"])
                        ),
                    })
                }
                _ => {}
            }
        }
    }
    Err(RemoteError {
        status: None,
        source: None,
        message: format!("the output stream of {id} ended before the execution did"),
    })
}

async fn execution(f: Format, c: &Client, cmd: &ExecutionCmd) -> CmdResult {
    match cmd {
        ExecutionCmd::List {
            status,
            action,
            limit,
            all,
        } => {
            if let Some(s) = status {
                if Status::parse(s).is_none() {
                    let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    return Err(Failure::Usage(format!(
                        "unknown status `{s}`; one of: {}",
                        names.join(", ")
                    )));
                }
            }
            let query = [
                ("status", status.clone()),
                ("action", action.clone()),
                ("limit", Some(limit.to_string())),
                ("all", all.then(|| "true".to_string())),
            ];
            output::executions_json(f, &c.get(&["api", "v1", "executions"], &query).await?)?;
            Ok(0)
        }
        ExecutionCmd::Get { id } => {
            output::execution_json(f, &c.get(&["api", "v1", "executions", id], &[]).await?)?;
            Ok(0)
        }
        ExecutionCmd::Tail { id } => tail(f, c, id).await,
        ExecutionCmd::Cancel { id } => {
            let rec = c
                .send(Method::DELETE, &["api", "v1", "executions", id], &[], None)
                .await?;
            output::execution_json(f, &rec)?;
            Ok(0)
        }
        ExecutionCmd::Rerun { id } => {
            let rec = c
                .send(
                    Method::POST,
                    &["api", "v1", "executions", id, "rerun"],
                    &[],
                    None,
                )
                .await?;
            finished(f, c, &rec).await
        }
    }
}

/// `execution tail`: live output on stdout/stderr by stream until the execution ends; in
/// `json`/`yaml` the chunks are collected and printed as one list at the end.
async fn tail(f: Format, c: &Client, id: &str) -> CmdResult {
    let mut chunks = Vec::new();
    follow(c, id, |chunk| {
        if f != Format::Table {
            chunks.push(chunk.clone());
            return;
        }
        let data = output::cell(&chunk["data"]);
        if chunk["stream"] == "stderr" {
            eprint!("{data}");
        } else {
            print!("{data}");
            let _ = std::io::stdout().flush();
        }
    })
    .await?;
    structured(f, &chunks);
    Ok(0)
}

async fn rule(f: Format, c: &Client, cmd: &RuleCmd) -> CmdResult {
    match cmd {
        RuleCmd::List => {
            output::rules(f, &c.get(&["api", "v1", "rules"], &[]).await?);
            Ok(0)
        }
        RuleCmd::Get { reference } => {
            output::rule(f, &c.get(&["api", "v1", "rules", reference], &[]).await?);
            Ok(0)
        }
        RuleCmd::Test { reference, trigger } => {
            let doc = c
                .get(&["api", "v1", "rules", reference], &[])
                .await
                .map_err(not_found_is_usage)?;
            let payload = super::local::read_payload(trigger)?;
            let report = c
                .send(
                    Method::POST,
                    &["api", "v1", "rules", reference, "test"],
                    &[],
                    Some(&payload),
                )
                .await?;
            let action = output::cell(&doc["rule"]["action"]["ref"]);
            Ok(if output::rule_test(f, reference, &action, &report) {
                0
            } else {
                1
            })
        }
    }
}

/// `pack list`: the API has no pack endpoint; the status document names the loaded packs.
async fn packs(f: Format, c: &Client) -> CmdResult {
    let status = c.get(&["api", "v1", "status"], &[]).await?;
    let list: Vec<Json> = status["packs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"name": p}))
        .collect();
    if structured(f, &list).is_none() {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|p| vec![output::cell(&p["name"])])
            .collect();
        output::table(&["NAME"], &rows);
        eprintln!("note: the server reports pack names only; run `squall pack list` without --server on the content root for details");
    }
    Ok(0)
}

async fn trigger(f: Format, c: &Client, cmd: &TriggerCmd) -> CmdResult {
    match cmd {
        TriggerCmd::Emit { trigger, payload } => {
            let body = Json::Object(json_object(payload.as_deref(), "-p")?);
            let doc = c
                .send(
                    Method::POST,
                    &["api", "v1", "triggers", trigger],
                    &[],
                    Some(&body),
                )
                .await?;
            if structured(f, &doc).is_none() {
                println!(
                    "accepted trigger instance {} ({})",
                    output::cell(&doc["id"]),
                    output::cell(&doc["type"])
                );
            }
            Ok(0)
        }
        TriggerCmd::Instances { trigger, limit } => {
            let query = [
                ("type", trigger.clone()),
                ("limit", Some(limit.to_string())),
            ];
            output::trigger_instances(
                f,
                &c.get(&["api", "v1", "trigger-instances"], &query).await?,
            );
            Ok(0)
        }
    }
}

async fn reload(f: Format, c: &Client) -> CmdResult {
    let (status, text) = c
        .request(Method::POST, &["api", "v1", "reload"], &[], None)
        .await?;
    let doc: Option<Json> = serde_json::from_str(&text).ok();
    match doc {
        Some(doc) if status.is_success() || status == StatusCode::UNPROCESSABLE_ENTITY => {
            let ok = doc["reloaded"] == true;
            if structured(f, &doc).is_none() {
                if ok {
                    println!(
                        "content reloaded: {} actions, {} rules, {} sensors",
                        doc["actions"], doc["rules"], doc["sensors"]
                    );
                } else {
                    for p in doc["problems"].as_array().into_iter().flatten() {
                        eprintln!("{}", output::cell(p));
                    }
                    eprintln!("error: {}", output::cell(&doc["error"]));
                }
            }
            Ok(if ok { 0 } else { 1 })
        }
        _ => Err(Failure::Failed(client::http_error(
            status,
            &text,
            c.has_token(),
        ))),
    }
}

#[cfg(test)]
mod tests;
