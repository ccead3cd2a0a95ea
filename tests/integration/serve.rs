//! `squall serve` through its HTTP API: auth and roles, the audit trail, webhooks with
//! HMAC signatures, bad input, hot reload, cancellation, per-action concurrency, sensors.

use crate::harness::Squall;
use crate::server::{wait_lines, Server};
use serde_json::{json, Value};

const VIEWER: &str = "viewer-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";

fn with_tokens(sq: &Squall) {
    sq.write("squall.yaml", "auth:\n  tokens_file: tokens.yaml\n");
    sq.write(
        "tokens.yaml",
        &format!("- {{name: watcher, token: {VIEWER}, role: viewer}}\n- {{name: noc, token: {OPERATOR}, role: operator}}\n- {{name: root, token: {ADMIN}, role: admin}}\n"),
    );
}

fn done(e: &Value) -> bool {
    matches!(
        e["status"].as_str(),
        Some("succeeded" | "failed" | "abandoned" | "timeout" | "canceled")
    )
}

#[test]
fn tokens_roles_and_audit_trail() {
    let sq = Squall::core_only();
    with_tokens(&sq);
    sq.action("core", "login", "name: login\nrunner: noop\nparameters:\n  user: {type: string}\n  password: {type: string, secret: true}\n");
    let s = Server::start(&sq);
    assert_eq!(
        s.request("GET", "/healthz", None, None).status,
        200,
        "healthz needs no token"
    );
    assert_eq!(s.request("GET", "/api/v1/actions", None, None).status, 401);
    assert_eq!(
        s.request(
            "GET",
            "/api/v1/actions",
            None,
            Some("wrong-token-000000000000")
        )
        .status,
        401
    );
    assert_eq!(
        s.request("GET", "/api/v1/actions", None, Some(VIEWER))
            .status,
        200
    );
    let body = json!({"action": "core.login", "parameters": {"user": "ann", "password": "pw-never-shown-42"}}).to_string();
    let r = s.request("POST", "/api/v1/executions", Some(&body), Some(VIEWER));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("operator"), "{}", r.body);
    let r = s.request("POST", "/api/v1/executions", Some(&body), Some(OPERATOR));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let e = s.wait_json(&format!("/api/v1/executions/{id}"), Some(VIEWER), 30, done);
    assert_eq!(e["status"], "succeeded");
    assert_eq!(e["requested_by"], "api:noc");
    assert_eq!(
        s.request("POST", "/api/v1/reload", None, Some(OPERATOR))
            .status,
        403
    );
    assert_eq!(
        s.request("GET", "/api/v1/audit", None, Some(OPERATOR))
            .status,
        403
    );
    let audit = s.wait_json("/api/v1/audit", Some(ADMIN), 30, |a| {
        a.as_array()
            .is_some_and(|a| a.iter().any(|x| x["what"] == "execution.finished"))
    });
    let create = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["what"] == "execution.create")
        .expect("create audited");
    assert_eq!(create["who"], "noc");
    assert_eq!(create["details"]["parameters"]["password"], "********");
    let text = s.log_text();
    assert!(
        text.contains("\"what\":\"execution.create\""),
        "audit lines on stdout:\n{text}"
    );
    let everything = format!("{text}{audit}{e}");
    assert!(
        !everything.contains("pw-never-shown-42"),
        "secret leaked:\n{everything}"
    );
    drop(s);
    sq.assert_data_lacks("pw-never-shown-42");
}

#[test]
fn webhooks_need_a_valid_signature_or_an_operator_token() {
    use hmac::{Hmac, Mac};
    let sq = Squall::core_only();
    with_tokens(&sq);
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig:\n  path: deploys\n  secret: hook-secret-value\n",
    );
    sq.write(
        "rules/on_deploy.yaml",
        "name: on_deploy\ntrigger: core.webhook\ncriteria:\n  trigger.body.service: {type: equals, pattern: api}\naction:\n  ref: core.echo\n  parameters:\n    message: \"deployed {{ trigger.body.version }}\"\n",
    );
    let s = Server::start(&sq);
    let body = br#"{"service": "api", "version": "1.2.3"}"#;
    assert_eq!(
        s.raw("POST", "/api/v1/webhooks/deploys", body, &[]).status,
        401
    );
    assert_eq!(
        s.raw(
            "POST",
            "/api/v1/webhooks/deploys",
            body,
            &[("X-Squall-Signature", "sha256=00")]
        )
        .status,
        401
    );
    // The signature covers "<timestamp>.<body>" (replay protection: see api_edge.rs).
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret-value").unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let r = s.raw(
        "POST",
        "/api/v1/webhooks/deploys",
        body,
        &[("X-Squall-Timestamp", &ts), ("X-Squall-Signature", &sig)],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let auth = format!("Bearer {OPERATOR}");
    assert_eq!(
        s.raw(
            "POST",
            "/api/v1/webhooks/deploys",
            body,
            &[("Authorization", &auth)]
        )
        .status,
        202
    );
    let viewer = format!("Bearer {VIEWER}");
    assert_eq!(
        s.raw(
            "POST",
            "/api/v1/webhooks/deploys",
            body,
            &[("Authorization", &viewer)]
        )
        .status,
        403
    );
    assert_eq!(
        s.raw(
            "POST",
            "/api/v1/webhooks/nowhere",
            body,
            &[("Authorization", &auth)]
        )
        .status,
        404
    );
    let list = s.wait_json(
        "/api/v1/executions?action=core.echo",
        Some(VIEWER),
        30,
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(done))
        },
    );
    for e in list.as_array().unwrap() {
        assert_eq!(e["rule"], "site.on_deploy");
        assert_eq!(e["result"]["stdout"], "deployed 1.2.3", "{e:#}");
    }
    // The two accepted requests count as the webhook sensor's events; refused ones do not.
    let sensors = s
        .request("GET", "/api/v1/sensors", None, Some(VIEWER))
        .json();
    let hook = sensors
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "site.hook"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(hook["events"], 2, "{sensors:#}");
    assert!(hook["last_event_at"].is_string(), "{hook:#}");
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let sq = Squall::core_only();
    let s = Server::start(&sq);
    let r = s.request("POST", "/api/v1/executions", Some("{not json"), None);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{}",
        r.body
    );
    let r = s.request(
        "POST",
        "/api/v1/executions",
        Some(r#"{"action": "core.nope"}"#),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.request(
        "POST",
        "/api/v1/executions",
        Some(r#"{"action": "core.echo", "parameters": {"msg": 1}}"#),
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("msg"), "{}", r.body);
    let r = s.request("POST", "/api/v1/triggers/nobody.listens", Some("{}"), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains("unknown trigger type `nobody.listens`"),
        "{}",
        r.body
    );
    let r = s.request("POST", "/api/v1/triggers/Bad%20Type", Some("{}"), None);
    assert_eq!(r.status, 400, "{}", r.body);
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    assert_eq!(
        s.request("POST", "/api/v1/triggers/core.big", Some(&big), None)
            .status,
        413
    );
    assert_eq!(
        s.request("GET", "/api/v1/executions/01NOPE", None, None)
            .status,
        404
    );
    assert_eq!(s.request("GET", "/api/v1/nothing", None, None).status, 404);
    assert_eq!(s.request("GET", "/healthz", None, None).status, 200);
    let m = s.request("GET", "/metrics", None, None);
    assert!(m.body.contains("squall_http_requests_total"), "{}", m.body);
}

#[test]
fn invalid_content_is_rejected_on_reload_and_the_old_content_keeps_running() {
    let sq = Squall::core_only();
    sq.write(
        "rules/one.yaml",
        "name: one\ntrigger: t.one\naction: {ref: core.noop}\n",
    );
    let s = Server::start(&sq);
    sq.write(
        "rules/two.yaml",
        "name: two\ntrigger: t.two\naction: {ref: core.missing}\n",
    );
    let r = s.request("POST", "/api/v1/reload", None, None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body
            .contains("rules/two.yaml:3:15: unknown action `core.missing`"),
        "{}",
        r.body
    );
    let rules = s.request("GET", "/api/v1/rules", None, None).json();
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    let status = s.request("GET", "/api/v1/status", None, None).json();
    assert_eq!(status["last_reload"]["ok"], false, "{status:#}");
    sq.write(
        "rules/two.yaml",
        "name: two\ntrigger: t.two\naction: {ref: core.noop}\n",
    );
    // The file watcher reloads by itself.
    s.wait_json("/api/v1/rules", None, 30, |v| {
        v.as_array().is_some_and(|a| a.len() == 2)
    });
}

#[test]
fn cancel_stops_a_running_action_and_concurrency_queues_the_rest() {
    let sq = Squall::core_only();
    sq.pack("q", "");
    sq.action(
        "q",
        "slow",
        "name: slow\nrunner: shell\ncmd: echo started; sleep 30\nconcurrency: 1\n",
    );
    let s = Server::start(&sq);
    let a = s
        .request(
            "POST",
            "/api/v1/executions",
            Some(r#"{"action": "q.slow"}"#),
            None,
        )
        .json();
    let b = s
        .request(
            "POST",
            "/api/v1/executions",
            Some(r#"{"action": "q.slow"}"#),
            None,
        )
        .json();
    let (a, b) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    s.wait_json(&format!("/api/v1/executions/{a}"), None, 30, |e| {
        e["status"] == "running"
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = s
        .request("GET", &format!("/api/v1/executions/{b}"), None, None)
        .json();
    assert_eq!(
        second["status"], "scheduled",
        "concurrency 1 keeps the second waiting: {second:#}"
    );
    let r = s.request("DELETE", &format!("/api/v1/executions/{a}"), None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "canceled", "{}", r.body);
    s.wait_json(&format!("/api/v1/executions/{b}"), None, 30, |e| {
        e["status"] == "running"
    });
    let r = s.request("DELETE", &format!("/api/v1/executions/{b}"), None, None);
    assert_eq!(r.json()["status"], "canceled", "{}", r.body);
    assert_eq!(
        s.request("DELETE", &format!("/api/v1/executions/{b}"), None, None)
            .status,
        409
    );
}

#[test]
fn interval_sensor_fires_rule_and_sensor_state_is_visible() {
    let sq = Squall::core_only();
    let log = sq.path("ticks.log");
    sq.write(
        "sensors/tick.yaml",
        "name: tick\ntype: interval\nconfig: {every: 1s}\n",
    );
    sq.write(
        "rules/on_tick.yaml",
        &format!("name: on_tick\ntrigger: core.interval\naction:\n  ref: core.local\n  parameters:\n    cmd: \"echo tick >> {}\"\n", log.display()),
    );
    let s = Server::start(&sq);
    wait_lines(&log, "tick", 2, 30);
    let sensors = s.request("GET", "/api/v1/sensors", None, None).json();
    let tick = sensors
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "site.tick")
        .expect("sensor listed")
        .clone();
    assert_eq!(tick["state"], "running", "{tick:#}");
    assert!(tick["events"].as_u64().unwrap_or(0) >= 2, "{tick:#}");
    assert_eq!(s.terminate(), Some(0), "SIGTERM stops the server cleanly");
}

#[test]
fn enforcement_records_why_no_execution_was_requested() {
    let sq = Squall::core_only();
    sq.write(
        "rules/needs_host.yaml",
        "name: needs_host\ntrigger: ops.page\naction:\n  ref: core.echo\n  parameters:\n    message: \"{{ trigger.host.name }}\"\n",
    );
    let s = Server::start(&sq);
    let r = s.request(
        "POST",
        "/api/v1/triggers/ops.page",
        Some(r#"{"service": "db"}"#),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let t = s.wait_json(&format!("/api/v1/trigger-instances/{id}"), None, 30, |t| {
        t["status"] == "processed"
    });
    let enf = &t["enforcements"][0];
    assert_eq!(enf["rule"], "site.needs_host", "{t:#}");
    assert!(enf["execution"].is_null(), "{t:#}");
    let why = enf["error"].as_str().unwrap_or("");
    assert!(
        why.contains("rendering action parameters") && why.contains("host"),
        "{t:#}"
    );
    let execs = s.request("GET", "/api/v1/executions", None, None).json();
    assert_eq!(execs.as_array().map(Vec::len), Some(0), "{execs:#}");
}

/// An idempotent action a rule asks for starts without a record (its end is one commit);
/// one that runs on is listed as `running` soon after, can be canceled by id, and its trigger
/// is `processed` with the enforcement naming it once it ended.
#[test]
fn a_long_idempotent_action_from_a_rule_is_listed_running_and_can_be_canceled() {
    let sq = Squall::core_only();
    sq.write(
        "rules/nap.yaml",
        "name: nap\ntrigger: ops.nap\naction:\n  ref: core.sleep\n  parameters: {seconds: 60}\n",
    );
    let s = Server::start(&sq);
    let r = s.request("POST", "/api/v1/triggers/ops.nap", Some("{}"), None);
    assert_eq!(r.status, 202, "{}", r.body);
    let trigger = r.json()["id"].as_str().unwrap().to_string();
    let running = s.wait_json("/api/v1/executions?status=running", None, 30, |v| {
        v.as_array().is_some_and(|a| a.len() == 1)
    });
    let e = &running[0];
    assert_eq!(e["action"], "core.sleep", "{running:#}");
    assert_eq!(e["trigger_instance"], trigger.as_str(), "{running:#}");
    assert_eq!(e["rule"], "site.nap", "{running:#}");
    let id = e["id"].as_str().unwrap().to_string();
    // Not processed while its execution runs: a crash now evaluates it again.
    let t = s
        .request(
            "GET",
            &format!("/api/v1/trigger-instances/{trigger}"),
            None,
            None,
        )
        .json();
    assert_eq!(t["status"], "pending", "{t:#}");
    let r = s.request("DELETE", &format!("/api/v1/executions/{id}"), None, None);
    assert!(r.status < 300, "{}", r.body);
    let e = s.wait_json(&format!("/api/v1/executions/{id}"), None, 30, done);
    assert_eq!(e["status"], "canceled", "{e:#}");
    let t = s.wait_json(
        &format!("/api/v1/trigger-instances/{trigger}"),
        None,
        30,
        |t| t["status"] == "processed",
    );
    assert_eq!(t["enforcements"][0]["execution"], id.as_str(), "{t:#}");
    let all = s.request("GET", "/api/v1/executions", None, None).json();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "one record: {all:#}");
}

#[test]
fn a_flood_of_webhooks_gets_202_or_503_and_nothing_accepted_is_lost() {
    let sq = Squall::core_only();
    sq.write("squall.yaml", "trigger_queue: 2\n");
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig: {path: flood}\n",
    );
    sq.write(
        "rules/count.yaml",
        "name: count\ntrigger: core.webhook\naction:\n  ref: core.noop\n",
    );
    let s = Server::start(&sq);
    let addr = s.addr.clone();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for n in 0..25 {
                    let body = format!("{{\"n\": {n}}}");
                    let mut c = std::net::TcpStream::connect(&addr).expect("connect");
                    use std::io::{Read, Write};
                    let req = format!(
                        "POST /api/v1/webhooks/flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    c.write_all(req.as_bytes()).expect("write");
                    let mut out = String::new();
                    let _ = c.read_to_string(&mut out);
                    codes.push(out.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0));
                }
                codes
            })
        })
        .collect();
    let codes: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert!(
        codes.iter().all(|c| *c == 202 || *c == 503),
        "only 202 or 503: {codes:?}"
    );
    let accepted = codes.iter().filter(|c| **c == 202).count();
    assert!(accepted > 0, "{codes:?}");
    assert_eq!(
        s.request("GET", "/healthz", None, None).status,
        200,
        "still serving"
    );
    let list = s.wait_json(
        "/api/v1/trigger-instances?type=core.webhook&limit=1000",
        None,
        60,
        |v| {
            v.as_array().is_some_and(|a| {
                a.len() == accepted && a.iter().all(|t| t["status"] == "processed")
            })
        },
    );
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(accepted),
        "every accepted trigger is stored"
    );
    s.wait_json(
        "/api/v1/executions?action=core.noop&limit=1000",
        None,
        60,
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == accepted && a.iter().all(done))
        },
    );
}
