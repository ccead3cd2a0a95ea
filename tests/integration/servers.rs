//! Real test servers for the AWS, Consul and Vault tests: a moto server (AWS APIs), an
//! OpenBao dev server (the Vault API) and a Consul dev agent with ACLs, each on free
//! loopback ports in its own temporary directory. The binaries are installed once and cached
//! by `scripts/servers/install.sh` (see docs/testing-servers.md); `scripts/test.sh` exports
//! their paths in `SQUALL_MOTO_SERVER`, `SQUALL_BAO` and `SQUALL_CONSUL`, and without those
//! variables the cache locations the script uses are tried. A server that is missing or
//! cannot start fails the test loudly, with the fix or the server's log — never a skip.
//!
//! Each struct kills its process and removes its directory on drop. A process outlives the
//! test only if the test binary itself is killed; `scripts/servers/stop-all.sh` (run by
//! `scripts/test.sh` on exit) cleans those up.

#![allow(dead_code)]

mod support;

use support::{
    bao_bin, consul_bin, free_port, free_ports, moto_bin, random_hex, random_uuid, server_dir,
    start_with_retries, Proc, ATTEMPTS,
};
pub use support::{http, try_http, Reply};

use serde_json::{json, Value};

// ------------------------------------------------------------------------------ moto

/// A moto server (`moto_server`): AWS APIs (RDS, STS, ...) on `endpoint`, any credentials.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Start a moto server on a free port and wait until it answers.
    #[track_caller]
    pub fn start() -> Moto {
        let bin = moto_bin();
        start_with_retries("moto server", || {
            let dir = server_dir("moto");
            let port = free_port();
            let endpoint = format!("http://127.0.0.1:{port}");
            let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from);
            let mut proc = Proc::spawn(&bin, &args, dir.path(), "moto.log", &[]);
            let reset = format!("{endpoint}/moto-api/reset");
            let ready = proc.wait_ready("moto_server", || {
                try_http("POST", &reset, &[], None).is_ok_and(|r| r.status == 200)
            });
            match ready {
                Ok(()) => Ok(Moto {
                    endpoint,
                    proc,
                    _dir: dir,
                }),
                Err(e) => {
                    proc.kill();
                    Err(e)
                }
            }
        })
    }

    /// Forget every resource (POST /moto-api/reset).
    #[track_caller]
    pub fn reset(&self) {
        let r = http(
            "POST",
            &format!("{}/moto-api/reset", self.endpoint),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "moto reset failed: {}", r.body);
    }

    /// What the server logged so far.
    pub fn log_tail(&self) -> String {
        self.proc.tail()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

// ------------------------------------------------------------------------------ OpenBao

/// An OpenBao dev server (`bao server -dev`): in-memory, unsealed, KV v2 at `secret/`.
pub struct OpenBao {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub token: String,
    port: u16,
    proc: Option<Proc>,
    starts: usize,
    dir: tempfile::TempDir,
}

impl OpenBao {
    /// Start a dev server with a random root token on a free port and wait until it is
    /// unsealed with KV v2 mounted at `secret/`.
    #[track_caller]
    pub fn start() -> OpenBao {
        start_with_retries("OpenBao dev server", || {
            let port = free_ports(1, true)[0];
            let mut bao = OpenBao {
                addr: format!("http://127.0.0.1:{port}"),
                token: format!("squall-root-{}", random_hex(16)),
                port,
                proc: None,
                starts: 0,
                dir: server_dir("openbao"),
            };
            bao.launch().map(|()| bao)
        })
    }

    fn launch(&mut self) -> Result<(), String> {
        self.starts += 1;
        let args = [
            "server".to_string(),
            "-dev".to_string(),
            "-dev-no-store-token".to_string(),
            format!("-dev-root-token-id={}", self.token),
            format!("-dev-listen-address=127.0.0.1:{}", self.port),
        ];
        let log = format!("bao-{}.log", self.starts);
        let mut proc = Proc::spawn(&bao_bin(), &args, self.dir.path(), &log, &[]);
        let (addr, token) = (self.addr.clone(), self.token.clone());
        let ready = proc.wait_ready("bao server -dev", || {
            let auth = [("X-Vault-Token", token.as_str())];
            try_http("GET", &format!("{addr}/v1/sys/health"), &[], None)
                .is_ok_and(|r| r.status == 200)
                && try_http("GET", &format!("{addr}/v1/sys/mounts/secret"), &auth, None).is_ok_and(
                    |r| {
                        r.status == 200
                            && serde_json::from_str::<Value>(&r.body)
                                .is_ok_and(|v| v["options"]["version"] == "2")
                    },
                )
        });
        match ready {
            Ok(()) => {
                self.proc = Some(proc);
                Ok(())
            }
            Err(e) => {
                proc.kill();
                Err(e)
            }
        }
    }

    /// Kill the server (to test "Vault unreachable"); `restart` brings it back.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Stop (if running) and start again on the same port with the same root token. Dev
    /// mode keeps nothing: secrets, policies and auth methods are gone.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match self.launch() {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "OpenBao could not be restarted on port {}:\n{}",
            self.port,
            failures.join("\n\n")
        );
    }

    /// A request with the root token; fails the test when the server cannot be reached.
    #[track_caller]
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let body = body.map(Value::to_string);
        http(
            method,
            &format!("{}/v1/{}", self.addr, path.trim_start_matches('/')),
            &[("X-Vault-Token", &self.token)],
            body.as_deref(),
        )
    }

    #[track_caller]
    fn call_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let r = self.call(method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "OpenBao {method} /v1/{path}: {} {}",
            r.status,
            r.body
        );
        r
    }

    /// Enable AppRole (once) and create `role` with a policy (named after the role) allowing
    /// everything under `secret/*`; returns its (role_id, secret_id).
    #[track_caller]
    pub fn enable_approle(&self, role: &str) -> (String, String) {
        let mounts = self.call_ok("GET", "sys/auth", None).json();
        if mounts["data"].get("approle/").is_none() && mounts.get("approle/").is_none() {
            self.call_ok(
                "POST",
                "sys/auth/approle",
                Some(&json!({"type": "approle"})),
            );
        }
        let policy = r#"path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#;
        self.call_ok(
            "PUT",
            &format!("sys/policies/acl/{role}"),
            Some(&json!({ "policy": policy })),
        );
        self.call_ok(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(&json!({"token_policies": [role], "token_ttl": "1h", "token_max_ttl": "4h"})),
        );
        let role_id = self
            .call_ok("GET", &format!("auth/approle/role/{role}/role-id"), None)
            .json()["data"]["role_id"]
            .as_str()
            .expect("role_id")
            .to_string();
        let secret_id = self
            .call_ok("POST", &format!("auth/approle/role/{role}/secret-id"), None)
            .json()["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string();
        (role_id, secret_id)
    }

    /// What the server logged so far (current run).
    pub fn log_tail(&self) -> String {
        self.proc.as_ref().map(Proc::tail).unwrap_or_default()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------------------------ Consul

/// A Consul dev agent (`consul agent -dev`) with ACLs on (`default_policy = "deny"`):
/// anonymous requests are refused, `token` (the initial management token) may do anything.
pub struct Consul {
    /// `http://127.0.0.1:PORT` (the HTTP API).
    pub addr: String,
    /// The ACL management token (a UUID).
    pub token: String,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Consul {
    /// Start a dev agent on free ports (HTTP, serf LAN/WAN, server RPC; DNS and gRPC off)
    /// and wait until it has a leader and a KV write with the token succeeds.
    #[track_caller]
    pub fn start() -> Consul {
        let bin = consul_bin();
        start_with_retries("Consul dev agent", || {
            let dir = server_dir("consul");
            let ports = free_ports(4, false);
            let token = random_uuid();
            let config = json!({
                "node_name": format!("squall-test-{}", random_hex(4)),
                "datacenter": "dc1",
                "data_dir": dir.path().join("data"),
                "bind_addr": "127.0.0.1",
                "advertise_addr": "127.0.0.1",
                "client_addr": "127.0.0.1",
                "ports": {
                    "http": ports[0], "serf_lan": ports[1], "serf_wan": ports[2],
                    "server": ports[3], "https": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
                },
                "acl": {
                    "enabled": true,
                    "default_policy": "deny",
                    "enable_token_persistence": false,
                    "tokens": {"initial_management": token, "agent": token},
                },
                "connect": {"enabled": false},
                "ui_config": {"enabled": false},
                "disable_update_check": true,
                "log_level": "info",
            });
            let cfg = dir.path().join("consul.json");
            std::fs::write(&cfg, config.to_string()).expect("consul config");
            let args = [
                "agent".to_string(),
                "-dev".to_string(),
                format!("-config-file={}", cfg.display()),
            ];
            let mut proc = Proc::spawn(&bin, &args, dir.path(), "consul.log", &[]);
            let addr = format!("http://127.0.0.1:{}", ports[0]);
            let probe = format!("{addr}/v1/kv/squall-harness-ready");
            let ready = proc.wait_ready("consul agent -dev", || {
                let leader = try_http("GET", &format!("{addr}/v1/status/leader"), &[], None)
                    .is_ok_and(|r| r.status == 200 && !r.body.trim().trim_matches('"').is_empty());
                leader
                    && try_http("PUT", &probe, &[("X-Consul-Token", &token)], Some("1"))
                        .is_ok_and(|r| r.status == 200 && r.body.trim() == "true")
            });
            match ready {
                Ok(()) => {
                    let consul = Consul {
                        addr,
                        token,
                        proc,
                        _dir: dir,
                    };
                    let r = consul.call("DELETE", "kv/squall-harness-ready", None);
                    assert_eq!(r.status, 200, "Consul KV delete failed: {}", r.body);
                    Ok(consul)
                }
                Err(e) => {
                    proc.kill();
                    Err(e)
                }
            }
        })
    }

    /// A request to `/v1/<path>` with the management token.
    #[track_caller]
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        http(
            method,
            &format!("{}/v1/{}", self.addr, path.trim_start_matches('/')),
            &[("X-Consul-Token", &self.token)],
            body,
        )
    }

    /// What the agent logged so far.
    pub fn log_tail(&self) -> String {
        self.proc.tail()
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        self.proc.kill();
    }
}
