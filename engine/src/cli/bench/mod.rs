//! `squall bench`: measures the performance figures (docs/performance.md) that the engine core owns, on this
//! machine, with real components (rhai, sled with durable flushes, the chain interpreter).
//! Reports numbers; it asserts nothing.

pub mod http;
pub mod pipeline;

use crate::cli::local::Failure;
use crate::cli::{Cli, ExitCode, Format};
use serde_json::json;
use squall_core::model::{Json, RuleSpec, Status};
use squall_core::rules::{Rule, TriggerContext};
use squall_core::store::SledStore;
use squall_runtime::executions::{Engine, Request};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// `squall bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Triggers to evaluate against the 100 rules.
    #[arg(long, default_value_t = 20_000)]
    pub triggers: usize,
    /// No-op executions to run.
    #[arg(long, default_value_t = 20_000)]
    pub executions: usize,
    /// How many executions run at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Tasks in the benchmark workflow (transitions = tasks - 1).
    #[arg(long, default_value_t = 200)]
    pub chain_tasks: usize,
    /// Items of the benchmark `with` task (8 at a time).
    #[arg(long, default_value_t = 1000)]
    pub with_items: usize,
    /// Offered trigger load for the latency measurement, per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of offered load.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Skip the idle-RSS and start-up measurements of `squall serve` processes.
    #[arg(long)]
    pub no_process: bool,
    /// Connections of the end-to-end HTTP figure; one figure per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64])]
    pub http_connections: Vec<usize>,
    /// Seconds of load of each end-to-end HTTP figure.
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    /// Skip the end-to-end HTTP figure (webhooks posted to a real `squall serve`).
    #[arg(long)]
    pub no_http: bool,
    /// Only the end-to-end HTTP figure (to profile `squall serve` under load).
    #[arg(long, conflicts_with = "no_http")]
    pub http_only: bool,
}

/// Run the benchmarks and print the figures.
pub async fn run(cli: &Cli, args: &BenchArgs) -> Result<ExitCode, Failure> {
    if args.http_only {
        let http = http::figures(&cli.root, &args.http_connections, args.http_seconds).await?;
        if cli.output != Format::Table {
            crate::cli::print_structured(cli.output, &json!({"http": http}));
        } else {
            http.as_array().into_iter().flatten().for_each(http::print);
        }
        return Ok(0);
    }
    let rules = bench_rules(args.triggers)?;
    let dir = tempfile_dir()?;
    write_content(dir.path(), args.chain_tasks, args.with_items)?;
    let content = Arc::new(
        squall_core::content::load(dir.path(), &squall_server::components())
            .map_err(|d| Failure::Failed(d.to_string()))?,
    );
    let store = Arc::new(SledStore::open(&dir.path().join(".squall"), None)?);
    let engine = squall_runtime::engine(content, store, squall_server::components().runners);
    let execs = bench_executions(&engine, args.executions, args.concurrency).await?;
    let chain = bench_workflow(&engine, "bench.chain", args.chain_tasks).await?;
    let fan = bench_workflow(&engine, "bench.fan", args.with_items).await?;
    let pipeline = pipeline::latency(&engine, args.rate, args.seconds).await?;
    let process = if args.no_process {
        Json::Null
    } else {
        pipeline::process_figures(&cli.root).await?
    };
    let http = if args.no_http {
        Json::Null
    } else {
        http::figures(&cli.root, &args.http_connections, args.http_seconds).await?
    };
    let report = json!({
        "rule_evaluations_per_second": rules,
        "noop_executions_per_second": execs,
        "chain_transition_overhead_ms": chain,
        "with_item_ms": fan,
        "pipeline": pipeline,
        "process": process,
        "http": http,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    if cli.output != Format::Table {
        crate::cli::print_structured(cli.output, &report);
    } else {
        println!(
            "rule evaluations (100 rules, rhai `when`): {:>12.0} /s   (target >= 1,000,000)",
            rules
        );
        println!(
            "no-op executions, durably recorded:        {:>12.0} /s   (target >= 20,000)",
            execs
        );
        println!(
            "action-chain overhead per transition:      {:>12.3} ms   (target <= 1 ms)",
            chain
        );
        println!(
            "`with` task, per item ({} items, 8 at once): {:>9.3} ms   (no target; flat in the item count)",
            args.with_items, fan
        );
        let f = |v: &Json, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "trigger accepted -> action started, p50:   {:>12.2} ms   at {} triggers/s offered ({:.0}/s accepted)",
            f(&pipeline, "p50_ms"),
            args.rate,
            f(&pipeline, "triggers_per_second")
        );
        println!(
            "trigger accepted -> action started, p99:   {:>12.2} ms   (target <= 5 ms)",
            f(&pipeline, "p99_ms")
        );
        if !process.is_null() {
            println!(
                "squall serve idle RSS, shipped content:    {:>12.1} MB   (target <= 30 MB)",
                f(&process, "idle_rss_mb")
            );
            println!(
                "start-up to serving, 50 packs:             {:>12.1} ms   (target <= 200 ms)",
                f(&process, "startup_ms_50_packs")
            );
        }
        for h in http.as_array().into_iter().flatten() {
            http::print(h);
        }
    }
    Ok(0)
}

fn tempfile_dir() -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix("squall-bench")
        .tempdir()
        .map_err(|e| Failure::Failed(format!("cannot create a temp dir: {e}")))
}

/// Evaluations per second of 100 rules with a rhai `when` on one trigger type, on all cores.
fn bench_rules(triggers: usize) -> Result<f64, Failure> {
    let mut rules = Vec::new();
    for i in 0..100 {
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": format!("r{i}"),
            "trigger": "kubernetes.resource",
            "when": format!("trigger.event == \"ADDED\" && trigger.object.kind == \"Kind{i}\""),
            "action": {"ref": "core.noop"},
        }))?;
        rules.push(
            Rule::compile(spec, "bench", "bench".into())
                .map_err(|e| Failure::Failed(format!("{e:?}")))?,
        );
    }
    let rules = Arc::new(rules);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per_thread = triggers.div_ceil(threads);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let rules = rules.clone();
            std::thread::spawn(move || {
                let mut matched = 0usize;
                for n in 0..per_thread {
                    let payload = json!({"event": "ADDED", "object": {"kind": format!("Kind{}", (n + t) % 100), "metadata": {"name": "db"}}});
                    let mut ctx = TriggerContext::new(&payload, &json!({"type": "kubernetes.resource"}));
                    for r in rules.iter() {
                        if r.matches(&mut ctx).unwrap_or(false) {
                            matched += 1;
                        }
                    }
                }
                matched
            })
        })
        .collect();
    let matched: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let secs = start.elapsed().as_secs_f64();
    let evals = (per_thread * threads * rules.len()) as f64;
    if matched != per_thread * threads {
        return Err(Failure::Failed(format!(
            "rule benchmark is wrong: {matched} matches for {} triggers",
            per_thread * threads
        )));
    }
    Ok(evals / secs)
}

async fn bench_executions(
    engine: &Arc<Engine>,
    n: usize,
    concurrency: usize,
) -> Result<f64, Failure> {
    let flushes_before = engine.store().flush_count();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let _p = permit;
            let req = Request {
                action: "bench.noop".into(),
                parameters: json!({"n": i}),
                ..Default::default()
            };
            engine.execute(req).await.map(|e| e.status)
        }));
    }
    let mut ok = 0;
    for h in handles {
        if let Ok(Ok(Status::Succeeded)) = h.await {
            ok += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tracing::info!(
        flushes = engine.store().flush_count() - flushes_before,
        executions = n,
        "benchmark executions done"
    );
    if ok != n {
        return Err(Failure::Failed(format!(
            "only {ok} of {n} benchmark executions succeeded"
        )));
    }
    Ok(n as f64 / secs)
}

/// Milliseconds per unit of workflow `action` run once: per task of the long chain of
/// no-op tasks (everything a transition costs, including each child's durable record and
/// the workflow state saved at every step; the no-op runner itself costs microseconds), or
/// per item of the `with` task.
async fn bench_workflow(engine: &Arc<Engine>, action: &str, units: usize) -> Result<f64, Failure> {
    let start = Instant::now();
    let e = engine
        .execute(Request {
            action: action.into(),
            parameters: Json::Null,
            ..Default::default()
        })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    if e.status != Status::Succeeded {
        return Err(Failure::Failed(format!(
            "benchmark workflow {action} ended {}: {:?}",
            e.status, e.error
        )));
    }
    Ok(secs * 1000.0 / units.max(1) as f64)
}

fn write_content(root: &Path, tasks: usize, items: usize) -> Result<(), Failure> {
    let pack = root.join("packs/bench");
    std::fs::create_dir_all(pack.join("actions"))?;
    std::fs::create_dir_all(pack.join("workflows"))?;
    std::fs::write(pack.join("pack.yaml"), "name: bench\n")?;
    std::fs::write(
        pack.join("actions/noop.yaml"),
        "name: noop\nrunner: noop\nidempotent: true\nparameters:\n  n: {type: integer}\n",
    )?;
    std::fs::create_dir_all(pack.join("rules"))?;
    std::fs::write(
        pack.join("rules/on_load.yaml"),
        "name: on_load\ntrigger: bench.load\nwhen: 'trigger.n >= 0'\naction:\n  ref: bench.noop\n  parameters: {n: \"{{ trigger.n }}\"}\n",
    )?;
    let mut wf = String::from("name: chain\nchain:\n");
    for i in 0..tasks {
        wf.push_str(&format!("  - name: t{i}\n    ref: bench.noop\n    parameters: {{n: {i}}}\n    publish: {{last: \"{{{{ result.n }}}}\"}}\n"));
        if i + 1 < tasks {
            wf.push_str(&format!("    on-success: t{}\n", i + 1));
        }
    }
    std::fs::write(pack.join("workflows/chain.yaml"), wf)?;
    let list: Vec<usize> = (0..items).collect();
    std::fs::write(
        pack.join("workflows/fan.yaml"),
        format!(
            "name: fan\nmax_task_runs: {}\nchain:\n  - name: each\n    ref: bench.noop\n    with: {{items: {list:?}, concurrency: 8}}\n    parameters: {{n: \"{{{{ item }}}}\"}}\n",
            items + 1
        ),
    )?;
    Ok(())
}
