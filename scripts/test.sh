#!/usr/bin/env bash
# The whole test suite, from a fresh machine: toolchain components, formatting, lints,
# unit tests and the integration tests that drive the real `squall` binary.
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

step "tests"
cargo test --locked -- --test-threads="${SQUALL_TEST_THREADS:-2}"

step "all tests passed"
