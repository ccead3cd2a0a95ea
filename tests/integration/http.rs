//! The `http` runner through the CLI, against a tiny HTTP server started by the test.

use crate::harness::Squall;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A loopback HTTP/1.1 server answering canned responses by path, on its own thread.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status, ctype, reply) = match path.as_str() {
            p if p.starts_with("/items/") => (
                "200 OK",
                "application/json",
                json!({"id": p.trim_start_matches("/items/"), "method": method, "echo": body})
                    .to_string(),
            ),
            "/text" => ("200 OK", "text/plain", "just text".to_string()),
            _ => (
                "404 Not Found",
                "application/json",
                json!({"error": "no such thing"}).to_string(),
            ),
        };
        log.lock().expect("lock").push(Seen {
            method,
            path,
            headers,
            body,
        });
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nX-Test: yes\r\n\r\n{reply}",
            reply.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn http_pack(sq: &Squall) {
    sq.pack("t", "");
    sq.action(
        "t",
        "create",
        "name: create\nrunner: http\nhttp:\n  method: POST\n  url: \"{{ base }}/items/{{ id }}\"\n  headers:\n    X-Who: \"{{ who }}\"\n  json: {name: \"{{ who }}\", size: \"{{ size }}\"}\nparameters:\n  base: {type: string, required: true}\n  id: {type: string, required: true}\n  who: {type: string, default: ops}\n  size: {type: integer, default: 3}\n",
    );
}

#[test]
fn http_2xx_succeeds_with_parsed_json_body() {
    let srv = Server::start();
    let sq = Squall::core_only();
    http_pack(&sq);
    let base = srv.url("");
    let (out, rec) = sq.exec_json(&["t.create", &format!("base={base}"), "id=42", "who=ann"]);
    out.ok();
    let r = &rec["result"];
    assert_eq!(r["status"], 200, "{rec:#}");
    assert_eq!(r["body"]["id"], "42");
    assert_eq!(r["body"]["method"], "POST");
    assert_eq!(r["headers"]["x-test"], "yes");
    let sent: Value =
        serde_json::from_str(r["body"]["echo"].as_str().unwrap_or("")).expect("json sent");
    assert_eq!(
        sent,
        json!({"name": "ann", "size": 3}),
        "a lone {{ }} keeps its type"
    );
    let seen = srv.seen();
    let req = seen
        .iter()
        .find(|s| s.path == "/items/42")
        .expect("the server saw the request");
    assert_eq!(req.method, "POST");
    assert!(
        req.headers.iter().any(|(k, v)| k == "x-who" && v == "ann"),
        "{req:?}"
    );
    assert!(!req.body.is_empty());
}

#[test]
fn core_http_against_the_server() {
    let srv = Server::start();
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.http", &format!("url={}", srv.url("/text"))]);
    out.ok();
    assert_eq!(rec["result"]["status"], 200);
    assert_eq!(rec["result"]["body"], "just text");
}

#[test]
fn http_404_fails_with_the_response_in_the_result() {
    let srv = Server::start();
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.http", &format!("url={}", srv.url("/missing"))]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(rec["result"]["status"], 404);
    assert_eq!(rec["result"]["body"], json!({"error": "no such thing"}));
    assert!(
        rec["error"].as_str().unwrap_or("").contains("404"),
        "{rec:#}"
    );
}

#[test]
fn http_connection_refused_is_a_failed_execution() {
    // A port that was free a moment ago: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.http", &format!("url=http://127.0.0.1:{port}/x")]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(rec["error"].as_str().is_some_and(|e| !e.is_empty()));
}
