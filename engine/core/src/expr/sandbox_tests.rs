//! Sandbox tests: limits, forbidden features, isolation.

use super::tests::{eval, event_vars, run, run_small};
use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn random_password_is_secret() {
    let pw = eval("random_password(24)").unwrap();
    let pw = pw.as_str().unwrap().to_string();
    assert_eq!(pw.len(), 24);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(pw.chars().any(|c| c.is_ascii_digit()) && pw.chars().any(|c| c.is_ascii_alphabetic()));
    assert_eq!(crate::secrets::mask_str(&format!("pw={pw}")), "pw=********");
    assert_ne!(eval("random_password(24)").unwrap(), json!(pw));
    assert!(eval("random_password(3)")
        .unwrap_err()
        .message
        .contains("between 8 and"));
    assert!(eval("random_password(100000000)").is_err());
}

#[test]
fn sandbox_has_no_eval_import_or_env() {
    let err = Script::compile(r#"eval("1 + 1")"#).unwrap_err();
    assert!(err.message.contains("eval"), "{}", err.message);
    eprintln!("EVALMSG {}", err.message);
    let err = run(r#"import "std" as s; 1"#).unwrap_err();
    assert!(!err.message.is_empty());
    let err = run(r#"import "/etc/passwd" as p; 1"#).unwrap_err();
    assert!(
        err.message.to_lowercase().contains("module"),
        "{}",
        err.message
    );
    assert!(eval(r#"env("HOME")"#).unwrap_err().message.contains("env"));
    assert!(eval(r#"getenv("HOME")"#).is_err());
}

#[test]
fn endless_loops_and_recursion_end_with_limit_errors() {
    for src in ["loop {}", "while true {}", "let x = 0; loop { x += 1; }"] {
        let start = Instant::now();
        let err = run_small(src).unwrap_err();
        assert!(
            err.message.contains("limit of 50000 operations"),
            "{src}: {}",
            err.message
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    let err = run_small("fn f(x) { f(x + 1) } f(0)").unwrap_err();
    assert!(
        err.message.contains("nested function calls"),
        "{}",
        err.message
    );
}

#[test]
fn slow_runs_hit_the_time_limit() {
    // Few operations, each copying a big value: bounded by time, not by operations.
    let limits = Limits {
        max_duration: Duration::from_millis(200),
        ..Limits::script()
    };
    let script =
        Script::compile("let a = []; a.pad(90000, 0); loop { let b = a; b[0] = 1; }").unwrap();
    let start = Instant::now();
    let err = script
        .run_with(&mut Vars::new(), &limits, &mut |_| {})
        .unwrap_err();
    assert!(err.message.contains("time limit"), "{}", err.message);
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn default_script_budget_also_ends() {
    let err = run("loop {}").unwrap_err();
    assert!(
        err.message.contains("limit of 10000000 operations"),
        "{}",
        err.message
    );
}

#[test]
fn huge_data_is_refused() {
    let err = run_small(r#"let s = "x"; loop { s += s; }"#).unwrap_err();
    assert!(err.message.contains("sandbox limit"), "{}", err.message);
    let err = run_small("let a = []; loop { a += [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]; }").unwrap_err();
    assert!(err.message.contains("sandbox limit"), "{}", err.message);
    let err = eval(r#""x".pad(10000000, "y")"#).unwrap_err();
    assert!(err.message.contains("sandbox limit"), "{}", err.message);
    let limits = Limits {
        max_map_size: 1_000,
        ..Limits::script()
    };
    let script =
        Script::compile("let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; }").unwrap();
    let err = script
        .run_with(&mut Vars::new(), &limits, &mut |_| {})
        .unwrap_err();
    assert!(err.message.contains("sandbox limit"), "{}", err.message);
    // rhai does not size-check `m[k] = v`; such growth is bounded by the operation budget.
    let script =
        Script::compile("let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }").unwrap();
    let limits = Limits {
        max_operations: 100_000,
        ..limits
    };
    let err = script
        .run_with(&mut Vars::new(), &limits, &mut |_| {})
        .unwrap_err();
    assert!(err.message.contains("operations"), "{}", err.message);
}

#[test]
fn deep_expressions_are_refused() {
    let src = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let err = Expr::compile(&src).unwrap_err();
    assert!(err.message.contains("too deeply nested"), "{}", err.message);
}

#[test]
fn expressions_cannot_modify_variables() {
    let mut vars = event_vars();
    vars.set("list", &json!([1, 2]));
    for src in [
        "list.push(3)",
        "list.clear()",
        "trigger.object.spec.remove(\"engine\")",
        "list.pad(10, 0)",
    ] {
        let err = Expr::compile(src).unwrap().eval(&mut vars).unwrap_err();
        assert!(err.message.contains("constant"), "{src}: {}", err.message);
    }
    assert_eq!(vars.get("list"), Some(json!([1, 2])));
    assert_eq!(
        Expr::compile("list.len()")
            .unwrap()
            .eval(&mut vars)
            .unwrap(),
        json!(2)
    );
    assert!(Expr::compile("list = 3").is_err());
}

#[test]
fn expressions_cannot_loop_or_define_closures() {
    for src in [
        "[1, 2].map(|x| x + 1)",
        "loop {}",
        "{ let a = 1; a }",
        "while true {}",
    ] {
        assert!(Expr::compile(src).is_err(), "{src}");
    }
    // Template expressions are expressions too.
    assert!(Template::compile(&json!("{{ [1].reduce(|a, x| [a], []) }}")).is_err());
    // Closures are fine in scripts.
    assert_eq!(run("[1, 2].map(|x| x + 1)").unwrap(), json!([2, 3]));
}

#[test]
fn closures_called_by_native_functions_count_operations() {
    let err =
        run_small("let a = []; a.pad(1000, 1); let b = a; a.map(|x| b.map(|y| y + 1).len()).len()")
            .unwrap_err();
    assert!(
        err.message.contains("limit of 50000 operations"),
        "{}",
        err.message
    );
}

#[test]
fn deeply_nested_data_does_not_crash() {
    // Nesting is bounded by the array/map size limits, and scripts run on a large stack.
    let limits = Limits {
        max_array_size: 3_000,
        max_map_size: 3_000,
        ..Limits::script()
    };
    for src in [
        "let a = []; loop { a = [a]; }",
        "let m = #{}; loop { m = #{x: m}; }",
    ] {
        let err = Script::compile(src)
            .unwrap()
            .run_with(&mut Vars::new(), &limits, &mut |_| {})
            .unwrap_err();
        assert!(err.message.contains("sandbox limit"), "{}", err.message);
    }
    // A nested result that is too deep for JSON is an error, not a crash.
    let err = run_small("let a = []; for i in 0..1000 { a = [a]; } a").unwrap_err();
    assert!(err.message.contains("nested deeper"), "{}", err.message);
}
