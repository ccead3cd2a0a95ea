//! `squall bench` end to end on a small load: every figure of docs/performance.md that it owns is
//! reported as a positive number (the values themselves are machine-dependent and not
//! asserted), and the run leaves nothing behind in the content root.

use crate::harness::Squall;

#[test]
fn bench_reports_every_figure() {
    let sq = Squall::core_only();
    let out = sq.run(&[
        "bench",
        "--no-process",
        "--triggers",
        "200",
        "--executions",
        "300",
        "--concurrency",
        "16",
        "--chain-tasks",
        "10",
        "--with-items",
        "30",
        "--rate",
        "100",
        "--seconds",
        "1",
        "-o",
        "json",
    ]);
    out.ok();
    let v = out.json();
    for figure in [
        "rule_evaluations_per_second",
        "noop_executions_per_second",
        "chain_transition_overhead_ms",
        "with_item_ms",
    ] {
        let x = v[figure].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "{figure}: {v:#}");
    }
    for figure in ["p50_ms", "p99_ms", "triggers_per_second"] {
        let x = v["pipeline"][figure].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "pipeline.{figure}: {v:#}");
    }
    assert!(v["process"].is_null(), "--no-process: {v:#}");
    assert!(
        !sq.data().exists(),
        "the benchmark uses its own temporary store"
    );
}
