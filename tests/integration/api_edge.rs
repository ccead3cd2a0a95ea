//! The HTTP edge of `squall serve` (issue 9): triggers of clients that hang up are still
//! evaluated, signed webhooks are accepted once, refused mutating requests are audited,
//! every error is JSON, and `limit=0` means "all" for every listing.

use crate::harness::Squall;
use crate::server::Server;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::io::Write;

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

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `(timestamp header, signature header)` of a `squall`-scheme call made at `ts`.
fn squall_sig(secret: &str, ts: i64, body: &[u8]) -> (String, String) {
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(body);
    (ts.to_string(), hmac_hex(secret, &signed))
}

fn entries(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The `error` of a reply, which must be a JSON `{"error": "..."}`.
#[track_caller]
fn error_of(r: &crate::server::Reply) -> String {
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` string: {} {}", r.status, r.body))
        .to_string()
}

#[test]
fn triggers_of_clients_that_hang_up_are_evaluated_without_a_restart() {
    let sq = Squall::core_only();
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig: {path: gone}\n",
    );
    sq.write(
        "rules/count.yaml",
        "name: count\ntrigger: core.webhook\naction:\n  ref: core.noop\n",
    );
    let s = Server::start(&sq);
    let addr = s.addr.clone();
    // Clients that send a webhook and close the connection at once, without reading the
    // reply: the server notices the closed connection while the trigger is being stored.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for n in 0..60 {
                    let body = format!("{{\"t\": {t}, \"n\": {n}}}");
                    let mut c = std::net::TcpStream::connect(&addr).expect("connect");
                    let req = format!(
                        "POST /api/v1/webhooks/gone HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    c.write_all(req.as_bytes()).expect("write");
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    // Every trigger stored reaches `processed` (none left `pending` until a restart), has
    // the audit entry of its acceptance and its execution. Requests still in flight when
    // the clients are done may add triggers meanwhile, so all three are read together until
    // they agree.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let get = |path: &str| entries(&s.request("GET", path, None, None).json());
        let triggers = get("/api/v1/trigger-instances?type=core.webhook&limit=0");
        let audit = get("/api/v1/audit?limit=0");
        let execs = get("/api/v1/executions?action=core.noop&limit=0");
        let accepted: Vec<String> = audit
            .iter()
            .filter(|e| e["what"] == "webhook")
            .filter_map(|e| e["outcome"].as_str().map(str::to_string))
            .collect();
        let pending = triggers
            .iter()
            .filter(|t| t["status"] != "processed")
            .count();
        let unaudited = triggers
            .iter()
            .filter(|t| !accepted.contains(&format!("accepted {}", t["id"].as_str().unwrap_or(""))))
            .count();
        let unfinished = execs.iter().filter(|e| e["status"] != "succeeded").count();
        if !triggers.is_empty()
            && pending == 0
            && unaudited == 0
            && accepted.len() == triggers.len()
            && execs.len() == triggers.len()
            && unfinished == 0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} triggers: {pending} not processed, {unaudited} without an audit entry ({} accepted entries); {} executions, {unfinished} unfinished\n{}",
            triggers.len(),
            accepted.len(),
            execs.len(),
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn signed_webhooks_are_accepted_once_and_only_while_fresh() {
    let sq = Squall::core_only();
    with_tokens(&sq);
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig:\n  path: deploys\n  secret: hook-secret-value\n",
    );
    sq.write(
        "sensors/strict.yaml",
        "name: strict\ntype: webhook\nconfig:\n  path: strict\n  secret: strict-secret-value\n  tolerance: 10s\n",
    );
    sq.write(
        "sensors/gh.yaml",
        "name: gh\ntype: webhook\nconfig:\n  path: github\n  secret: gh-secret-value\n  scheme: github\n",
    );
    let s = Server::start(&sq);
    let post = |path: &str, body: &[u8], headers: &[(&str, &str)]| {
        s.raw("POST", &format!("/api/v1/webhooks/{path}"), body, headers)
    };

    // squall scheme: a fresh timestamped signature is accepted once.
    let body = br#"{"service": "api", "version": "1.2.3"}"#;
    let (ts, sig) = squall_sig("hook-secret-value", unix_now(), body);
    let signed = [
        ("X-Squall-Timestamp", ts.as_str()),
        ("X-Squall-Signature", sig.as_str()),
    ];
    let r = post("deploys", body, &signed);
    assert_eq!(r.status, 202, "{}", r.body);
    let replay = post("deploys", body, &signed);
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert!(
        error_of(&replay).contains("already accepted"),
        "{}",
        replay.body
    );
    // An hour-old signature is refused, saying why.
    let (old_ts, old_sig) = squall_sig("hook-secret-value", unix_now() - 3600, body);
    let r = post(
        "deploys",
        body,
        &[
            ("X-Squall-Timestamp", &old_ts),
            ("X-Squall-Signature", &old_sig),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(error_of(&r).contains("s old"), "{}", r.body);
    // A signature of the body alone (no timestamp) is not enough.
    let r = post(
        "deploys",
        body,
        &[("X-Squall-Signature", &hmac_hex("hook-secret-value", body))],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(error_of(&r).contains("X-Squall-Timestamp"), "{}", r.body);
    // The same body signed at another time is a new call.
    let (ts2, sig2) = squall_sig("hook-secret-value", unix_now() - 60, body);
    let r = post(
        "deploys",
        body,
        &[("X-Squall-Timestamp", &ts2), ("X-Squall-Signature", &sig2)],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // `tolerance: 10s` refuses what the default window of 5 minutes accepts.
    let (ts3, sig3) = squall_sig("strict-secret-value", unix_now() - 120, body);
    let r = post(
        "strict",
        body,
        &[("X-Squall-Timestamp", &ts3), ("X-Squall-Signature", &sig3)],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(error_of(&r).contains("within 10 s"), "{}", r.body);

    // github scheme: the body signature plus a delivery id, each delivery accepted once.
    let gh_body = br#"{"zen": "Keep it logically awesome."}"#;
    let gh_sig = hmac_hex("gh-secret-value", gh_body);
    let delivery = |id: &'static str, sig: &str| -> Vec<(&'static str, String)> {
        vec![
            ("X-Hub-Signature-256", sig.to_string()),
            ("X-GitHub-Delivery", id.to_string()),
        ]
    };
    let send = |h: Vec<(&'static str, String)>, b: &[u8]| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post("github", b, &h)
    };
    let r = send(delivery("d-1", &gh_sig), gh_body);
    assert_eq!(r.status, 202, "{}", r.body);
    let r = send(delivery("d-1", &gh_sig), gh_body);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        error_of(&r).contains("delivery id was already accepted"),
        "{}",
        r.body
    );
    // A new delivery id on the same signed body is still a replay.
    let r = send(delivery("d-2", &gh_sig), gh_body);
    assert_eq!(r.status, 409, "{}", r.body);
    let other = br#"{"zen": "Design for failure."}"#;
    let r = send(delivery("d-2", &hmac_hex("gh-secret-value", other)), other);
    assert_eq!(r.status, 202, "{}", r.body);
    let r = send(vec![("X-Hub-Signature-256", gh_sig.clone())], gh_body);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        error_of(&r).contains("missing X-GitHub-Delivery"),
        "{}",
        r.body
    );

    // An operator token still works without a signature.
    let auth = format!("Bearer {OPERATOR}");
    assert_eq!(
        post("deploys", body, &[("Authorization", &auth)]).status,
        202
    );

    // Exactly the accepted calls became triggers; the refusals are in the audit trail.
    let triggers = s
        .request(
            "GET",
            "/api/v1/trigger-instances?limit=0",
            None,
            Some(VIEWER),
        )
        .json();
    assert_eq!(entries(&triggers).len(), 5, "{triggers:#}");
    let audit = s
        .request("GET", "/api/v1/audit?limit=0", None, Some(ADMIN))
        .json();
    let refused: Vec<Value> = entries(&audit)
        .into_iter()
        .filter(|e| {
            e["what"] == "webhook" && e["outcome"].as_str().unwrap_or("").starts_with("refused")
        })
        .collect();
    assert_eq!(refused.len(), 7, "{audit:#}");
    assert!(
        refused.iter().all(|e| e["who"] == "anonymous"),
        "{refused:#?}"
    );
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["outcome"]
                .as_str()
                .unwrap_or("")
                .starts_with("refused (409)"))
            .count(),
        3,
        "{refused:#?}"
    );
}

#[test]
fn refused_mutating_requests_leave_audit_entries() {
    let sq = Squall::core_only();
    with_tokens(&sq);
    sq.write(
        "rules/one.yaml",
        "name: one\ntrigger: t.one\naction: {ref: core.noop}\n",
    );
    let s = Server::start(&sq);
    let body = r#"{"action": "core.noop"}"#;
    assert_eq!(
        s.request("POST", "/api/v1/executions", Some(body), None)
            .status,
        401
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/executions",
            Some(body),
            Some("wrong-token-000000000000")
        )
        .status,
        401
    );
    assert_eq!(
        s.request("POST", "/api/v1/executions", Some(body), Some(VIEWER))
            .status,
        403
    );
    assert_eq!(
        s.request("POST", "/api/v1/reload", None, Some(OPERATOR))
            .status,
        403
    );
    assert_eq!(
        s.request("DELETE", "/api/v1/executions/01NOPE", None, Some(OPERATOR))
            .status,
        404
    );
    let r = s.request("POST", "/api/v1/executions", Some(body), Some(OPERATOR));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    s.wait_json(&format!("/api/v1/executions/{id}"), Some(VIEWER), 30, |e| {
        e["status"] == "succeeded"
    });
    let r = s.request(
        "DELETE",
        &format!("/api/v1/executions/{id}"),
        None,
        Some(OPERATOR),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        s.request("POST", "/api/v1/nothing/here", Some("{}"), Some(OPERATOR))
            .status,
        404
    );
    assert_eq!(
        s.request("PUT", "/api/v1/executions", Some("{}"), Some(OPERATOR))
            .status,
        405
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/executions",
            Some("{not json"),
            Some(OPERATOR)
        )
        .status,
        400
    );
    // A POST that changes nothing but is allowed is audited too.
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/rules/site.one/test",
            Some("{}"),
            Some(VIEWER)
        )
        .status,
        200
    );

    let audit = entries(
        &s.request("GET", "/api/v1/audit?limit=0", None, Some(ADMIN))
            .json(),
    );
    let find = |who: &str, what: &str, target: &str, outcome: &str| {
        assert!(
            audit.iter().any(|e| e["who"] == who
                && e["what"] == what
                && e["target"] == target
                && e["outcome"].as_str().unwrap_or("").starts_with(outcome)),
            "no audit entry {who} {what} {target} {outcome}: {audit:#?}"
        );
    };
    find(
        "anonymous",
        "execution.create",
        "executions",
        "refused (401): missing or invalid token",
    );
    find(
        "watcher",
        "execution.create",
        "executions",
        "refused (403): token `watcher` has role viewer",
    );
    find("noc", "content.reload", "content", "refused (403)");
    find("noc", "execution.cancel", "01NOPE", "refused (404)");
    find("noc", "execution.cancel", &id, "refused (409): execution");
    find("noc", "http.post", "/api/v1/nothing/here", "refused (404)");
    find(
        "noc",
        "http.put",
        "/api/v1/executions",
        "refused (405): method PUT is not allowed",
    );
    find(
        "noc",
        "execution.create",
        "executions",
        "refused (400): request body is not valid JSON",
    );
    find("watcher", "rule.test", "site.one", "ok (200)");
    // The accepted request has exactly one entry, the handler's own.
    let creates: Vec<&Value> = audit
        .iter()
        .filter(|e| e["what"] == "execution.create" && e["target"] == "core.noop")
        .collect();
    assert_eq!(creates.len(), 1, "{creates:#?}");
    assert_eq!(creates[0]["outcome"], format!("scheduled {id}"));
}

#[test]
fn every_error_is_json_and_limit_zero_means_all() {
    let sq = Squall::core_only();
    sq.write(
        "rules/one.yaml",
        "name: one\ntrigger: t.one\naction: {ref: core.noop}\n",
    );
    let s = Server::start(&sq);
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let r = s.request("POST", "/api/v1/triggers/t.one", Some(&big), None);
    assert_eq!(r.status, 413);
    assert!(
        error_of(&r).contains("larger than 1048576 bytes"),
        "{}",
        r.body
    );
    let r = s.request("GET", "/api/v1/executions?limit=lots", None, None);
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("limit"), "{}", r.body);
    let r = s.request("GET", "/api/v1/trigger-instances?limit=-1", None, None);
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("limit"), "{}", r.body);
    let r = s.request("DELETE", "/api/v1/status", None, None);
    assert_eq!(r.status, 405);
    assert!(
        error_of(&r).contains("method DELETE is not allowed on /api/v1/status; the Allow header"),
        "{}",
        r.body
    );
    let r = s.request("GET", "/api/v1/nothing", None, None);
    assert_eq!(r.status, 404);
    assert!(error_of(&r).contains("no such endpoint"), "{}", r.body);
    let r = s.request("GET", "/nothing", None, None);
    assert_eq!(r.status, 404);
    error_of(&r);

    for _ in 0..3 {
        let r = s.request("POST", "/api/v1/triggers/t.one", Some("{}"), None);
        assert_eq!(r.status, 202, "{}", r.body);
    }
    s.wait_json("/api/v1/executions?limit=0", None, 60, |v| {
        entries(v).len() == 3 && entries(v).iter().all(|e| e["status"] == "succeeded")
    });
    let count = |path: &str| entries(&s.request("GET", path, None, None).json()).len();
    assert_eq!(count("/api/v1/trigger-instances?limit=0"), 3);
    assert_eq!(count("/api/v1/trigger-instances?limit=1"), 1);
    assert_eq!(count("/api/v1/executions?limit=0"), 3);
    assert_eq!(count("/api/v1/executions?limit=2"), 2);
    // 3 trigger.emit entries and the refused 413; no limit means every one of them.
    let audited = count("/api/v1/audit?limit=0");
    assert!(audited >= 4, "{audited}");
    assert_eq!(count("/api/v1/audit?limit=1"), 1);
    assert_eq!(count(&format!("/api/v1/audit?limit={audited}")), audited);
}
