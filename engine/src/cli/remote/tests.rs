//! Unit tests of remote mode: URL building, error messages, the SSE parser, and which
//! commands go to the server.

use super::client::{base_url, endpoint, http_error, SseEvent, SseParser};
use super::is_remote;
use crate::cli::Cli;
use clap::Parser;
use reqwest::StatusCode;

fn ev(event: &str, data: &str) -> SseEvent {
    SseEvent {
        event: event.into(),
        data: data.into(),
    }
}

#[test]
fn base_url_adds_http_and_rejects_other_schemes() {
    assert_eq!(
        base_url("127.0.0.1:9101").map(|u| u.to_string()),
        Ok("http://127.0.0.1:9101/".to_string())
    );
    assert_eq!(
        base_url(" https://squall.example.com/ ").map(|u| u.to_string()),
        Ok("https://squall.example.com/".to_string())
    );
    assert!(base_url("ftp://host").is_err_and(|e| e.to_string().contains("http://")));
    assert!(base_url("").is_err());
    assert!(base_url("http://[bad").is_err());
}

#[test]
fn endpoint_joins_segments_and_query() {
    let base = base_url("http://h:1").unwrap_or_else(|e| panic!("{e}"));
    let url = endpoint(&base, &["api", "v1", "executions", "01ABC"], &[]);
    assert_eq!(url.as_str(), "http://h:1/api/v1/executions/01ABC");
    let url = endpoint(
        &base,
        &["api", "v1", "executions"],
        &[
            ("status", Some("failed".into())),
            ("action", None),
            ("limit", Some("5".into())),
        ],
    );
    assert_eq!(
        url.as_str(),
        "http://h:1/api/v1/executions?status=failed&limit=5"
    );
}

#[test]
fn endpoint_keeps_a_path_prefix_and_encodes_segments() {
    let base = base_url("http://h/squall/?x=1#f").unwrap_or_else(|e| panic!("{e}"));
    let url = endpoint(&base, &["api", "v1", "triggers", "a/b c"], &[]);
    assert_eq!(url.as_str(), "http://h/squall/api/v1/triggers/a%2Fb%20c");
    let url = endpoint(
        &base,
        &["api", "v1", "trigger-instances"],
        &[("type", Some("core.webhook&x=1".into()))],
    );
    assert_eq!(
        url.as_str(),
        "http://h/squall/api/v1/trigger-instances?type=core.webhook%26x%3D1"
    );
}

#[test]
fn http_errors_name_the_problem() {
    let body = r#"{"error": "missing or invalid token"}"#;
    let msg = http_error(StatusCode::UNAUTHORIZED, body, true);
    assert_eq!(
        msg,
        "the server refused the token (401): missing or invalid token"
    );
    let msg = http_error(StatusCode::UNAUTHORIZED, body, false);
    assert!(msg.contains("needs a token (401)") && msg.contains("--token"));
    let msg = http_error(StatusCode::FORBIDDEN, r#"{"error": "role viewer"}"#, true);
    assert!(msg.contains("(403): role viewer"), "{msg}");
    let msg = http_error(StatusCode::NOT_FOUND, r#"{"error": "no action x.y"}"#, true);
    assert_eq!(msg, "no action x.y (HTTP 404)");
    let msg = http_error(StatusCode::BAD_GATEWAY, "", true);
    assert_eq!(msg, "Bad Gateway (HTTP 502)");
    let msg = http_error(StatusCode::BAD_GATEWAY, "<html>proxy</html>", true);
    assert_eq!(msg, "<html>proxy</html> (HTTP 502)");
}

#[test]
fn sse_parses_events_with_names_and_multiline_data() {
    let mut p = SseParser::default();
    let out = p.feed(b"event: output\ndata: {\"a\":1}\n\ndata: one\ndata:two\n\n");
    assert_eq!(
        out,
        vec![ev("output", "{\"a\":1}"), ev("message", "one\ntwo")]
    );
}

#[test]
fn sse_handles_events_split_across_chunks() {
    let mut p = SseParser::default();
    let text = b"event: output\ndata: hello\n\nevent: end\ndata: {\"status\":\"succeeded\"}\n\n";
    let mut out = Vec::new();
    for piece in text.chunks(3) {
        out.extend(p.feed(piece));
    }
    assert_eq!(
        out,
        vec![
            ev("output", "hello"),
            ev("end", "{\"status\":\"succeeded\"}")
        ]
    );
}

#[test]
fn sse_accepts_crlf_and_cr_line_ends_even_split() {
    let mut p = SseParser::default();
    let mut out = p.feed(b"event: a\r");
    out.extend(p.feed(b"\ndata: x\r\n\r"));
    out.extend(p.feed(b"\nevent: b\rdata: y\r\r"));
    assert_eq!(out, vec![ev("a", "x"), ev("b", "y")]);
}

#[test]
fn sse_skips_comments_unknown_fields_and_empty_events() {
    let mut p = SseParser::default();
    let out = p.feed(b":keep-alive\n\nid: 7\nretry: 100\n\nevent: lonely\n\ndata\n\n");
    // `event` without data dispatches nothing; a bare `data` field is an empty line of data.
    assert_eq!(out, vec![ev("message", "")]);
}

#[test]
fn sse_keeps_utf8_split_between_chunks() {
    let mut p = SseParser::default();
    let bytes = "data: é✓\n\n".as_bytes();
    let mut out = p.feed(&bytes[..7]);
    out.extend(p.feed(&bytes[7..]));
    assert_eq!(out, vec![ev("message", "é✓")]);
}

#[test]
fn content_local_commands_stay_local() {
    let parse = |args: &[&str]| {
        let mut all = vec!["squall"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap_or_else(|e| panic!("{e}"))
    };
    for local in [
        &["validate"][..],
        &["pack", "new", "x"],
        &["pack", "validate"],
    ] {
        assert!(!is_remote(&parse(local).command), "{local:?}");
    }
    for remote in [
        &["run", "core.echo", "--async"][..],
        &["pack", "list"],
        &["execution", "tail", "X"],
        &["trigger", "emit", "core.webhook", "-p", "{}"],
        &["trigger", "instances", "--type", "t", "--limit", "3"],
        &["sensor", "list"],
        &["reload"],
    ] {
        assert!(is_remote(&parse(remote).command), "{remote:?}");
    }
}
