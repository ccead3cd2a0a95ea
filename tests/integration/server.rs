//! A real `squall serve` process for tests: started on a free loopback port against a
//! harness content root, reachable with a tiny HTTP client, killable with SIGKILL.

#![allow(dead_code)]

use crate::harness::Squall;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    log: std::path::PathBuf,
    /// Run under a wrapper (strace): the wrapper is `child`, `squall serve` its child.
    wrapped: bool,
}

/// An HTTP reply (from `squall serve` or a test server): status code and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (fails the test with the body when it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Server {
    /// Start `squall serve` on `sq`'s root and wait until `/healthz` answers.
    #[track_caller]
    pub fn start(sq: &Squall) -> Server {
        Server::start_on(sq, free_port())
    }

    /// Start with extra environment variables (for `${env:}` references).
    #[track_caller]
    pub fn start_env(sq: &Squall, env: &[(&str, &str)]) -> Server {
        Server::start_with(sq, free_port(), &[], env)
    }

    /// Start on a given port (to restart a killed server on the same address).
    #[track_caller]
    pub fn start_on(sq: &Squall, port: u16) -> Server {
        Server::start_with(sq, port, &[], &[])
    }

    /// Start `squall serve` as the last argument of `wrapper` (e.g. `strace -f -o FILE`).
    #[track_caller]
    pub fn start_wrapped(sq: &Squall, port: u16, wrapper: &[&str]) -> Server {
        Server::start_with(sq, port, wrapper, &[])
    }

    /// Start under `wrapper` (none when empty) with extra environment variables `env`.
    #[track_caller]
    fn start_with(sq: &Squall, port: u16, wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let addr = format!("127.0.0.1:{port}");
        let log = sq.root().join(format!(
            "serve-{}.log",
            Instant::now().elapsed().as_nanos() ^ u128::from(port) ^ rand_suffix()
        ));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_squall"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_squall")),
        };
        let child = command
            .arg("--root")
            .arg(sq.root())
            .args(["serve", "--listen", &addr, "--grace", "5"])
            .env_remove("SQUALL_LOG")
            .env("NO_PROXY", "*")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("cannot start squall serve");
        let mut s = Server {
            child,
            addr,
            log,
            wrapped: !wrapper.is_empty(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = s.child.try_wait().expect("wait") {
                panic!(
                    "squall serve exited with {status} before serving\n{}",
                    s.log_text()
                );
            }
            if s.try_request("GET", "/healthz", None, None)
                .map(|r| r.status == 200)
                .unwrap_or(false)
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "squall serve did not answer /healthz within 30 s\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// What the server printed so far (logs and audit lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The pid of `squall serve` itself (the wrapper's child when wrapped).
    pub fn pid(&self) -> i32 {
        let own = self.child.id() as i32;
        if !self.wrapped {
            return own;
        }
        std::fs::read_to_string(format!("/proc/{own}/task/{own}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .unwrap_or(own)
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        // SAFETY: sending a signal to our own child process (or the wrapper's child).
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "squall serve did not stop within 30 s of SIGTERM\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: Option<&[(&str, &str)]>,
    ) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.unwrap_or(b"");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers.unwrap_or(&[]) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Ok(Reply { status, body })
    }

    /// One request; fails the test when the server cannot be reached.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.try_request(method, path, body.map(str::as_bytes), Some(&headers))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()))
    }

    /// A request with raw headers and body bytes.
    #[track_caller]
    pub fn raw(&self, method: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        self.try_request(method, path, Some(body), Some(headers))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Poll GET `path` until `done` holds for its JSON (at most `secs`).
    #[track_caller]
    pub fn wait_json(
        &self,
        path: &str,
        token: Option<&str>,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.request("GET", path, None, token);
            if r.status == 200 {
                let v = r.json();
                if done(&v) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting on {path}; last: {v}\n{}",
                    self.log_text()
                );
            } else {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting on {path}: {} {}",
                    r.status,
                    r.body
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.wrapped {
            // SAFETY: signalling the wrapper's child, which the test started.
            unsafe {
                libc::kill(self.pid(), libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u128 {
    u128::from(std::process::id()) << 32
        | u128::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        )
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Wait until `path` (a file) holds at least `n` lines containing `needle`.
#[track_caller]
pub fn wait_lines(path: &std::path::Path, needle: &str, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got {n} line(s) with {needle:?}; it has:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of `path` containing `needle`.
pub fn count_lines(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}
