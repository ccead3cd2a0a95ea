//! Plumbing for the test servers: a small HTTP client, binary lookup, ports, random
//! tokens and a supervised child process with a log file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Versions `scripts/servers/install.sh` installs by default (its cache paths contain them).
const MOTO_VERSION: &str = "5.2.5";
const OPENBAO_VERSION: &str = "2.7.2";
const CONSUL_VERSION: &str = "v1.22.7";

/// How long a server may take to become ready (a loaded 2-core machine, Python start-up).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Start attempts before giving up (a free port can be taken between picking and binding).
pub const ATTEMPTS: usize = 3;
// ------------------------------------------------------------------------------ HTTP

pub use crate::server::Reply;

/// One HTTP request (no proxy, 30 s timeout); `Err` when the server cannot be reached.
/// Safe to call from any thread, including inside a tokio runtime.
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Reply, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = body.map(str::to_string);
    // A private current-thread runtime on its own thread: no nesting with a caller's runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| e.to_string())?;
            let mut req = client.request(method, &url);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req.body(b);
            }
            let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
            Ok(Reply { status, body })
        })
    })
    .join()
    .map_err(|_| "HTTP thread panicked".to_string())?
}

/// One HTTP request; fails the test when the server cannot be reached.
#[track_caller]
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    try_http(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

// ------------------------------------------------------------------------------ processes

fn cache_root() -> PathBuf {
    match std::env::var_os("SQUALL_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/squall-test-infra"),
    }
}

/// The server binary: `$var`, else `default` under the cache root. Fails the test with the
/// fix when it is missing.
#[track_caller]
fn binary(var: &str, default: &str) -> PathBuf {
    let path = match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => cache_root().join(default),
    };
    assert!(
        path.is_file(),
        "test server binary {} not found ({var} {}): run scripts/servers/install.sh \
         (scripts/test.sh does it) or set {var} to the binary",
        path.display(),
        if std::env::var_os(var).is_some() {
            "is set to it"
        } else {
            "is unset, so the install.sh cache location was tried"
        }
    );
    path
}

/// `moto_server` (`SQUALL_MOTO_SERVER`).
#[track_caller]
pub fn moto_bin() -> PathBuf {
    binary(
        "SQUALL_MOTO_SERVER",
        &format!("servers-py-moto{MOTO_VERSION}-openbao{OPENBAO_VERSION}/bin/moto_server"),
    )
}

/// The `bao` binary (`SQUALL_BAO`).
#[track_caller]
pub fn bao_bin() -> PathBuf {
    binary(
        "SQUALL_BAO",
        &format!("servers-py-moto{MOTO_VERSION}-openbao{OPENBAO_VERSION}/bin/bao-binary"),
    )
}

/// The `consul` binary (`SQUALL_CONSUL`).
#[track_caller]
pub fn consul_bin() -> PathBuf {
    binary(
        "SQUALL_CONSUL",
        &format!("consul-{CONSUL_VERSION}/bin/consul"),
    )
}

/// A private directory under `$TMPDIR/squall-test-servers/` (where stop-all.sh looks).
pub fn server_dir(kind: &str) -> tempfile::TempDir {
    let base = std::env::temp_dir().join("squall-test-servers");
    std::fs::create_dir_all(&base).expect("cannot create the test servers' directory");
    tempfile::Builder::new()
        .prefix(&format!("{kind}-"))
        .tempdir_in(base)
        .expect("cannot create a test server directory")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// `n` distinct free ports; with `pairs`, each port's successor is free too (OpenBao's dev
/// mode binds its cluster listener on the API port + 1).
pub fn free_ports(n: usize, pairs: bool) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        let p = free_port();
        let ok =
            !pairs || (p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok());
        if ok && !out.contains(&p) && !(pairs && out.contains(&(p + 1))) {
            out.push(p);
        }
    }
    out
}

/// Random lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A random UUID (v4 layout): Consul ACL tokens must be UUIDs.
pub fn random_uuid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// One running server process with its log file.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Start `bin args` in `dir`, output to `dir/<log_name>`; the environment marks it with
    /// `SQUALL_TEST_SERVER_DIR` so stop-all.sh can find it.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        dir: &Path,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Proc {
        let log = dir.join(log_name);
        let out = std::fs::File::create(&log).expect("cannot create a server log");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(dir)
            .env("SQUALL_TEST_SERVER_DIR", dir)
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        std::fs::write(dir.join("pid"), child.id().to_string()).expect("pid file");
        Proc { child, log }
    }

    /// The last lines of the log.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Poll `ready` until it holds. `Err` (with the log tail) when the process exits first
    /// or the deadline passes.
    pub fn wait_ready(&mut self, what: &str, ready: impl Fn() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{what} exited with {status} before it was ready:\n{}",
                    self.tail()
                ));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what} was not ready within {} s:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `attempt` up to [`ATTEMPTS`] times (new ports each time); panic with every failure.
#[track_caller]
pub fn start_with_retries<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut failures = Vec::new();
    for n in 1..=ATTEMPTS {
        match attempt() {
            Ok(t) => return t,
            Err(e) => failures.push(format!("attempt {n}: {e}")),
        }
    }
    panic!("{what} could not be started:\n{}", failures.join("\n\n"));
}
