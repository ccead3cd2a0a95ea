use super::*;
use serde_json::json;

pub(super) fn event_vars() -> Vars {
    let mut v = Vars::new();
    v.set(
        "trigger",
        &json!({"event": "ADDED", "object": {"kind": "Database", "metadata": {"name": "db1"},
                "spec": {"engine": "postgres", "size": 20, "ratio": 0.5, "opt": null}}}),
    );
    v
}

pub(super) fn eval(src: &str) -> Result<Value, ExprError> {
    Expr::compile(src)?.eval(&mut event_vars())
}

pub(super) fn run(src: &str) -> Result<Value, ExprError> {
    Script::compile(src)?.run(&mut Vars::new())
}

/// Run with small limits so the bad-path tests stay fast in debug builds.
pub(super) fn run_small(src: &str) -> Result<Value, ExprError> {
    let limits = Limits {
        max_operations: 50_000,
        max_array_size: 5_000,
        max_map_size: 5_000,
        max_string_size: 100_000,
        ..Limits::default()
    };
    Script::compile(src)?.run_with(&mut Vars::new(), &limits, &mut |_| {})
}

#[test]
fn when_expressions() {
    let e =
        Expr::compile(r#"trigger.event == "ADDED" && trigger.object.kind == "Database""#).unwrap();
    assert!(e.eval_bool(&mut event_vars()).unwrap());
    let mut other = Vars::new();
    other.set(
        "trigger",
        &json!({"event": "DELETED", "object": {"kind": "Database"}}),
    );
    assert!(!e.eval_bool(&mut other).unwrap());
    assert_eq!(
        e.source(),
        r#"trigger.event == "ADDED" && trigger.object.kind == "Database""#
    );
}

#[test]
fn values_keep_their_types() {
    assert_eq!(eval("trigger.object.spec.size").unwrap(), json!(20));
    assert!(eval("trigger.object.spec.size").unwrap().is_i64());
    assert_eq!(eval("trigger.object.spec.ratio * 2.0").unwrap(), json!(1.0));
    assert_eq!(
        eval("trigger.object.metadata").unwrap(),
        json!({"name": "db1"})
    );
    assert_eq!(eval("[1, \"a\", ()]").unwrap(), json!([1, "a", null]));
    assert_eq!(eval("trigger.object.spec.opt").unwrap(), json!(null));
    assert_eq!(eval("()").unwrap(), json!(null));
}

#[test]
fn vars_set_replaces_and_from_map() {
    let mut v = Vars::from_map(json!({"a": 1, "b": "x"}).as_object().unwrap());
    v.set("a", &json!(2));
    v.set("a", &json!(3));
    assert_eq!(Expr::compile("a").unwrap().eval(&mut v).unwrap(), json!(3));
    assert_eq!(v.get("b"), Some(json!("x")));
    assert!(v.contains("a") && !v.contains("zz"));
}

#[test]
fn mentions_finds_whole_words_only() {
    let e = |s: &str| Expr::compile(s).unwrap();
    assert!(e("tasks.a.status == \"ok\"").mentions("tasks"));
    assert!(e("default(tasks, 1)").mentions("tasks"));
    assert!(!e("subtasks + tasks_done").mentions("tasks"));
    assert!(!e("1 + 2").mentions("tasks"));
    let t = |v: Value| Template::compile(&v).unwrap();
    assert!(t(json!({"a": ["x", "n={{ tasks.b.result }}"]})).mentions("tasks"));
    assert!(t(json!({"cmd": "{{tasks.b}}"})).mentions("tasks"));
    assert!(!t(json!({"tasks": "literal tasks", "v": "{{ n }}"})).mentions("tasks"));
}

#[test]
fn eval_bool_rejects_non_booleans() {
    let err = Expr::compile("trigger.event")
        .unwrap()
        .eval_bool(&mut event_vars())
        .unwrap_err();
    assert_eq!(err.message, "expected true or false, got string \"ADDED\"");
    let err = Expr::compile("1")
        .unwrap()
        .eval_bool(&mut Vars::new())
        .unwrap_err();
    assert_eq!(err.message, "expected true or false, got integer 1");
}

#[test]
fn syntax_errors_have_positions() {
    let err = Expr::compile("trigger.event == ").unwrap_err();
    assert_eq!(err.line, Some(1));
    assert!(err.column.is_some());
    assert!(err.message.contains("(line 1, column"), "{}", err.message);
    let err = Script::compile("let x = 1;\nlet y = ;\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err:?}");
    assert!(Expr::compile("   ").unwrap_err().message.contains("empty"));
    // Statements are not expressions.
    assert!(Expr::compile("let x = 1").is_err());
    assert!(Expr::compile("x = 1").is_err());
}

#[test]
fn missing_fields_are_errors_and_can_be_tested() {
    let err = eval("trigger.object.spec.engin == \"postgres\"").unwrap_err();
    assert!(
        err.message.contains("property `engin` not found"),
        "{}",
        err.message
    );
    assert!(err.column.is_some());
    let err = eval("undefined_thing").unwrap_err();
    assert!(err.message.contains("undefined_thing"), "{}", err.message);
    assert_eq!(
        eval("\"engine\" in trigger.object.spec").unwrap(),
        json!(true)
    );
    assert_eq!(
        eval("\"nope\" in trigger.object.spec").unwrap(),
        json!(false)
    );
    assert_eq!(
        eval("trigger.object.spec.get(\"nope\")").unwrap(),
        json!(null)
    );
    assert_eq!(
        eval("default(trigger.object.spec.get(\"nope\"), 7)").unwrap(),
        json!(7)
    );
    assert_eq!(
        eval("default(trigger.object.spec.size, 7)").unwrap(),
        json!(20)
    );
    assert_eq!(
        eval("trigger.object.spec.get(\"nope\") ?? \"x\"").unwrap(),
        json!("x")
    );
    assert_eq!(eval("is_def_var(\"trigger\")").unwrap(), json!(true));
    assert_eq!(eval("is_def_var(\"result\")").unwrap(), json!(false));
}

#[test]
fn runtime_type_errors() {
    let err = eval("trigger.object.spec.size + \"x\" - 1").unwrap_err();
    assert!(!err.message.is_empty());
    assert!(err.line.is_some(), "{err:?}");
    let err = eval("trigger.event - 3").unwrap_err();
    assert!(err.message.contains("-"), "{}", err.message);
    // rhai compares values of different types as unequal rather than failing.
    assert_eq!(eval("trigger.event > 3").unwrap(), json!(false));
}

#[test]
fn helper_functions() {
    assert_eq!(
        eval("to_json(#{a: [1, 2.5, ()]})").unwrap(),
        json!(r#"{"a":[1,2.5,null]}"#)
    );
    assert_eq!(
        eval(r#"from_json("{\"a\": [1, true]}").a[1]"#).unwrap(),
        json!(true)
    );
    assert!(eval(r#"from_json("{nope")"#)
        .unwrap_err()
        .message
        .contains("from_json: invalid JSON"));
    assert_eq!(
        eval(r#"base64_encode("hello")"#).unwrap(),
        json!("aGVsbG8=")
    );
    assert_eq!(
        eval(r#"base64_decode("aGVsbG8=")"#).unwrap(),
        json!("hello")
    );
    assert!(eval(r#"base64_decode("***")"#)
        .unwrap_err()
        .message
        .contains("invalid base64"));
    assert!(eval(r#"base64_decode("/w==")"#)
        .unwrap_err()
        .message
        .contains("UTF-8"));
    assert_eq!(
        eval(r#"regex_match("db-12", "^db-\\d+$")"#).unwrap(),
        json!(true)
    );
    assert_eq!(
        eval(r#"regex_match("xdb-12", "^db")"#).unwrap(),
        json!(false)
    );
    assert!(eval(r#"regex_match("x", "(")"#)
        .unwrap_err()
        .message
        .contains("invalid regular expression"));
    assert_eq!(
        eval(r#"regex_captures("db-12.eu", "^(\\w+)-(\\d+)(x)?")"#).unwrap(),
        json!(["db-12", "db", "12", null])
    );
    assert_eq!(eval(r#"regex_captures("zzz", "\\d")"#).unwrap(), json!([]));
    assert_eq!(
        eval(r#"parse_time("2024-05-01T12:00:00Z")"#).unwrap(),
        json!(1714564800)
    );
    assert_eq!(
        eval(r#"parse_time("2024-05-01T14:00:00+02:00")"#).unwrap(),
        json!(1714564800)
    );
    assert!(eval(r#"parse_time("yesterday")"#)
        .unwrap_err()
        .message
        .contains("RFC 3339"));
    let now = eval("now()").unwrap();
    let now = now.as_str().unwrap();
    assert!(now.ends_with('Z'), "{now}");
    let t = chrono::DateTime::parse_from_rfc3339(now).unwrap();
    assert!((chrono::Utc::now().timestamp() - t.timestamp()).abs() < 5);
    assert_eq!(eval("parse_time(now()) > 1700000000").unwrap(), json!(true));
    assert_eq!(eval(r#"lower("AbC") + upper("x")"#).unwrap(), json!("abcX"));
    assert_eq!(
        eval(r#"len("abc") + len([1, 2]) + len(#{a: 1})"#).unwrap(),
        json!(6)
    );
    assert_eq!(eval(r#""abc".len()"#).unwrap(), json!(3));
    assert_eq!(eval("default((), 1)").unwrap(), json!(1));
    assert_eq!(eval("default(false, 1)").unwrap(), json!(false));
    assert_eq!(
        eval("default(trigger.object.spec.opt, 2)").unwrap(),
        json!(2)
    );
    assert_eq!(
        eval("default(trigger.object.spec.nope, 3)").unwrap(),
        json!(3)
    );
    assert_eq!(
        eval("default(trigger.object.nope.deeper, 4)").unwrap(),
        json!(4)
    );
    assert_eq!(eval("default(result, 5)").unwrap(), json!(5));
    assert_eq!(eval("default([1][3], 6)").unwrap(), json!(6));
    assert_eq!(
        eval("default(trigger.object.spec.opt?.x, 7)").unwrap(),
        json!(7)
    );
    // Only "missing" errors fall back; others are reported.
    assert!(eval("default(1 / 0, 8)").is_err());
    assert!(eval("default(from_json(\"{\"), 8)").is_err());
}

#[test]
fn scripts_return_last_value_or_return() {
    let script = Script::compile("let x = base + 1;\nx * 2").unwrap();
    let mut vars = Vars::new();
    vars.set("base", &json!(20));
    assert_eq!(script.run(&mut vars).unwrap(), json!(42));
    // Script locals and changes do not leak into the caller's variables.
    assert!(!vars.contains("x"));
    let script = Script::compile("base.x = 1; base.a.push(2); base").unwrap();
    vars.set("base", &json!({"a": [1]}));
    assert_eq!(script.run(&mut vars).unwrap(), json!({"a": [1, 2], "x": 1}));
    assert_eq!(vars.get("base"), Some(json!({"a": [1]})));
    // Running again sees the original values.
    assert_eq!(script.run(&mut vars).unwrap(), json!({"a": [1, 2], "x": 1}));
    assert_eq!(
        run("fn sq(v) { v * v }\nif true { return #{r: sq(3)}; }\n0").unwrap(),
        json!({"r": 9})
    );
    assert_eq!(run("let x = 1;").unwrap(), json!(null));
}

#[test]
fn throw_becomes_the_error_message() {
    let err = run("let a = 1;\nthrow \"database not ready\";").unwrap_err();
    assert_eq!(err.message, "database not ready");
    assert_eq!(err.line, Some(2));
    let err = run("fn check() { throw \"deep failure\" }\ncheck()").unwrap_err();
    assert_eq!(err.message, "deep failure");
    let err = run("throw #{code: 3}").unwrap_err();
    assert_eq!(err.message, r#"{"code":3}"#);
}

#[test]
fn print_is_captured_not_written() {
    let script = Script::compile("print(\"hello\"); debug(42); print(`n=${n}`); n").unwrap();
    let mut vars = Vars::new();
    vars.set("n", &json!(3));
    let mut lines = Vec::new();
    let out = run_script_capturing(&script, &mut vars, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(out, json!(3));
    assert_eq!(lines, vec!["hello", "42", "n=3"]);
    // Output is delivered even when the script fails.
    let script = Script::compile("print(\"before\"); throw \"boom\"").unwrap();
    let mut lines = Vec::new();
    let err = run_script_capturing(&script, &mut Vars::new(), &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap_err();
    assert_eq!(
        (err.message.as_str(), lines),
        ("boom", vec!["before".to_string()])
    );
    // Without capture, printing is harmless.
    assert_eq!(run("print(\"discarded\"); 1").unwrap(), json!(1));
    assert_eq!(eval("print(\"x\")").unwrap(), json!(null));
}

#[test]
fn captured_output_is_bounded() {
    let script = Script::compile(
        r#"let s = ""; for i in 0..100 { s += "0123456789"; } for i in 0..3000 { print(s); }"#,
    )
    .unwrap();
    let mut count = 0;
    let mut last = String::new();
    run_script_capturing(&script, &mut Vars::new(), &mut |l| {
        count += 1;
        last = l.to_string();
    })
    .unwrap();
    assert!(count < 1100, "{count}");
    assert!(last.contains("output truncated"), "{last}");
}

#[test]
fn non_json_results_are_errors() {
    let err = eval("Fn(\"to_json\")").unwrap_err();
    assert!(
        err.message.contains("cannot be converted to JSON"),
        "{}",
        err.message
    );
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Expr>();
    check::<Template>();
    check::<Script>();
    check::<ExprError>();
}

#[test]
fn shared_across_threads() {
    let e = Expr::compile("trigger.object.spec.size * 2").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.eval(&mut event_vars()).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), json!(40));
    }
}

/// Throughput sanity check (not a timing assertion): many evaluations on one reused scope.
#[test]
fn many_evaluations_on_a_reused_scope() {
    let e =
        Expr::compile(r#"trigger.event == "ADDED" && trigger.object.kind == "Database""#).unwrap();
    let mut vars = event_vars();
    let n = 20_000;
    let hits = (0..n)
        .filter(|_| e.eval_bool(&mut vars).unwrap_or(false))
        .count();
    assert_eq!(hits, n);
}
