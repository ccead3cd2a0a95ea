//! Real Kubernetes control planes for tests: `scripts/k8s/cluster.sh` starts etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes whose Job
//! pods complete) on random loopback ports. The binaries are built once and cached by
//! `scripts/k8s/build.sh`; a test that needs a cluster fails loudly when it cannot start one.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster, stopped and removed on drop.
pub struct Cluster {
    /// Cluster name (also the kubeconfig's current context).
    pub name: String,
    /// Its kubeconfig (admin token user, current context = name).
    pub kubeconfig: PathBuf,
    /// Facts from `info.env` (SERVER, ADMIN_TOKEN, LIMITED_TOKEN, BIN, ...).
    pub info: HashMap<String, String>,
}

fn script() -> PathBuf {
    crate::harness::repo().join("scripts/k8s/cluster.sh")
}

fn run_dir() -> PathBuf {
    std::env::temp_dir().join("squall-k8s-tests")
}

impl Cluster {
    /// Start a fresh cluster whose name starts with `prefix`. Ports are picked at random
    /// while other tests pick theirs too, so a start that loses a port race (etcd or the
    /// API server cannot bind) is stopped and tried again under a new name, up to three
    /// times; the test fails with every attempt's output after that.
    #[track_caller]
    pub fn start(prefix: &str) -> Cluster {
        let mut failures = Vec::new();
        for attempt in 0..3 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let suffix = format!("{:x}", std::process::id() ^ nanos ^ attempt);
            let name = format!("{prefix}-{}", &suffix[..suffix.len().min(6)]);
            let out = Command::new("bash")
                .arg(script())
                .args(["start", &name])
                .env("SQUALL_K8S_RUN", run_dir())
                .output()
                .expect("cannot run scripts/k8s/cluster.sh");
            let dir = run_dir().join(&name);
            if out.status.success() {
                let info = std::fs::read_to_string(dir.join("info.env"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect();
                return Cluster {
                    kubeconfig: dir.join("kubeconfig"),
                    name,
                    info,
                };
            }
            failures.push(format!(
                "attempt {} ({name}):\n{}\n{}",
                attempt + 1,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            let _ = Command::new("bash")
                .arg(script())
                .args(["stop", &name])
                .env("SQUALL_K8S_RUN", run_dir())
                .output();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("no cluster could be started:\n{}", failures.join("\n"));
    }

    /// Run `kubectl` against this cluster (as admin unless `--context` is given).
    #[track_caller]
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let bin = Path::new(self.info.get("BIN").map(String::as_str).unwrap_or("")).join("kubectl");
        let out = Command::new(bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("cannot run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Wait until the CustomResourceDefinition `crd` (e.g. `databases.dbaas.squall.dev`) is
    /// established; fails the test after 60 s.
    #[track_caller]
    pub fn wait_crd(&self, crd: &str) {
        let (ok, out, err) = self.kubectl(&[
            "wait",
            "--for",
            "condition=established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ]);
        assert!(ok, "CRD {crd} not established: {out}{err}");
    }

    /// `kubectl apply -f -` with `yaml`; fails the test when kubectl fails.
    #[track_caller]
    pub fn apply(&self, yaml: &str) {
        let bin = Path::new(self.info.get("BIN").map(String::as_str).unwrap_or("")).join("kubectl");
        let mut child = Command::new(bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop kube-apiserver for `seconds`, then start it again (same port, same data).
    #[track_caller]
    pub fn restart_apiserver(&self, seconds: u32) {
        let out = Command::new("bash")
            .arg(script())
            .args(["restart-apiserver", &self.name, &seconds.to_string()])
            .env("SQUALL_K8S_RUN", run_dir())
            .output()
            .expect("cluster.sh");
        assert!(
            out.status.success(),
            "restart-apiserver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `clusters:` entry for squall.yaml naming this cluster `as_name`.
    pub fn settings_entry(&self, as_name: &str) -> String {
        format!(
            "  {as_name}: {{kubeconfig: {}, context: {}}}\n",
            self.kubeconfig.display(),
            self.name
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.name])
            .env("SQUALL_K8S_RUN", run_dir())
            .output();
        let _ = std::fs::remove_dir_all(run_dir().join(&self.name));
    }
}
