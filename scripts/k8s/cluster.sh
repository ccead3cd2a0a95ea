#!/usr/bin/env bash
# A real Kubernetes control plane for tests, on random loopback ports, without root or Docker:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (fake nodes whose
# Job pods run to completion or failure; see kwok-stages.yaml).
#
# Usage:
#   scripts/k8s/cluster.sh start NAME        start cluster NAME; prints its kubeconfig path
#   scripts/k8s/cluster.sh stop NAME         stop its processes (by recorded PID), keep its files
#   scripts/k8s/cluster.sh env NAME          shell exports (KUBECONFIG, tokens, endpoints)
#   scripts/k8s/cluster.sh status [NAME]     which components are running
#   scripts/k8s/cluster.sh restart-apiserver NAME [DOWN_SECONDS]
#                                            stop kube-apiserver, wait, start it again on the
#                                            same port with the same PKI and data (for tests of
#                                            watch recovery)
#   scripts/k8s/cluster.sh stop-all          stop every cluster under the run dir
#
# Files: ${SQUALL_K8S_RUN:-/tmp/squall-k8s}/NAME/
#   kubeconfig   contexts NAME (admin token, current), NAME-cert (admin client certificate),
#                NAME-limited (token of user "limited": read-only via the "view" ClusterRole)
#   info.env     KEY=VALUE facts (server URL, tokens, ports, paths)
#   logs/        one log per component;  pids/ one PID file per component
#   kwok/container.log  what `kubectl logs` returns for every pod (CRI log format)
# Env: SQUALL_K8S_BIN (binaries dir; default: scripts/k8s/build.sh, which builds once),
#      SQUALL_K8S_NODES (fake nodes, default 2), SQUALL_K8S_START_TIMEOUT (seconds, default 180)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${SQUALL_K8S_RUN:-/tmp/squall-k8s}"
NODES="${SQUALL_K8S_NODES:-2}"
TIMEOUT="${SQUALL_K8S_START_TIMEOUT:-180}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[k8s %s] %s\n' "${NAME:-}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_name() {
  [[ "${1:-}" =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] || die "cluster name must be a DNS label (got '${1:-}')"
}

bin_dir() {
  if [ -n "${SQUALL_K8S_BIN:-}" ]; then echo "$SQUALL_K8S_BIN"; return; fi
  "$HERE/build.sh" | tail -1
}

# ------------------------------------------------------------------ processes
pid_of() { cat "$D/pids/$1.pid" 2>/dev/null || true; }

# Alive and really ours: its command line mentions this cluster's directory.
alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$D/"
}

launch() { # launch COMPONENT BINARY ARGS...
  local comp=$1; shift
  printf '%q ' "$@" > "$D/cmd/$comp"
  setsid "$@" >>"$D/logs/$comp.log" 2>&1 </dev/null &
  echo $! > "$D/pids/$comp.pid"
}

relaunch() { # start COMPONENT again with its recorded command line
  local comp=$1
  eval "set -- $(cat "$D/cmd/$comp")"
  setsid "$@" >>"$D/logs/$comp.log" 2>&1 </dev/null &
  echo $! > "$D/pids/$comp.pid"
}

kill_comp() {
  local comp=$1 pid i
  alive "$comp" || { rm -f "$D/pids/$comp.pid"; return 0; }
  pid=$(pid_of "$comp")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$comp" || break; sleep 0.1; done
  if alive "$comp"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$D/pids/$comp.pid"
}

fail_start() {
  local comp=$1
  log "$comp did not become ready; last lines of $D/logs/$comp.log:"
  tail -n 30 "$D/logs/$comp.log" >&2 || true
  do_stop >/dev/null 2>&1 || true
  exit 1
}

wait_for() { # wait_for COMPONENT TIMEOUT COMMAND...
  local comp=$1 t=$2 deadline; shift 2
  deadline=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    alive "$comp" || fail_start "$comp"
    [ "$(date +%s)" -lt "$deadline" ] || fail_start "$comp"
    sleep 0.3
  done
}

# ------------------------------------------------------------------ ports
# Random loopback ports, free now and not recorded by another cluster under $RUN (the whole
# choice runs under a lock so that two clusters started at once never pick the same port).
port_taken() {
  local p=$1
  grep -qsx "$p" "$RUN"/*/ports "$D/ports.new" && return 0
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
  return 1
}
pick_ports() { # pick_ports N  -> appends to $D/ports.new
  local n=$1 p
  : > "$D/ports.new"
  while [ "$(wc -l < "$D/ports.new")" -lt "$n" ]; do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    port_taken "$p" || echo "$p" >> "$D/ports.new"
  done
}

# ------------------------------------------------------------------ PKI
gen_pki() {
  local P="$D/pki"
  mkdir -p "$P"
  (
    cd "$P"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout ca.key -out ca.crt -days 3650 -subj "/CN=squall-test-ca-$NAME" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    leaf() { # leaf NAME SUBJECT EXTENSIONS
      openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%b' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -out "$1.crt" -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    leaf serving "/CN=kube-apiserver" \
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    leaf admin "/O=system:masters/CN=squall-admin" \
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
  ADMIN_TOKEN=$(openssl rand -hex 24)
  LIMITED_TOKEN=$(openssl rand -hex 24)
  {
    echo "$ADMIN_TOKEN,admin,uid-admin,\"system:masters\""
    echo "$LIMITED_TOKEN,limited,uid-limited,\"squall:limited\""
  } > "$P/tokens.csv"
  chmod 600 "$P/tokens.csv"
}

b64() { base64 -w0 < "$1"; }

write_kubeconfigs() {
  local server="https://127.0.0.1:$APISERVER_PORT" ca
  ca=$(b64 "$D/pki/ca.crt")
  cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $NAME-admin
  user:
    token: $ADMIN_TOKEN
- name: $NAME-admin-cert
  user:
    client-certificate-data: $(b64 "$D/pki/admin.crt")
    client-key-data: $(b64 "$D/pki/admin.key")
- name: $NAME-limited
  user:
    token: $LIMITED_TOKEN
contexts:
- name: $NAME
  context: {cluster: $NAME, user: $NAME-admin}
- name: $NAME-cert
  context: {cluster: $NAME, user: $NAME-admin-cert}
- name: $NAME-limited
  context: {cluster: $NAME, user: $NAME-limited}
current-context: $NAME
EOF
  # For the components: the admin client certificate, by file.
  cat > "$D/pki/components.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NAME
  cluster: {server: $server, certificate-authority: $D/pki/ca.crt}
users:
- name: admin
  user: {client-certificate: $D/pki/admin.crt, client-key: $D/pki/admin.key}
contexts:
- name: $NAME
  context: {cluster: $NAME, user: admin}
current-context: $NAME
EOF
  chmod 600 "$D/kubeconfig" "$D/pki/components.kubeconfig"
}

write_kwok_config() {
  mkdir -p "$D/kwok"
  # CRI log format: what the kwok "kubelet" serves for `kubectl logs` of any pod.
  local now; now=$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)
  printf '%s stdout F %s\n' "$now" "kwok fake container log line 1" "$now" "kwok fake container log line 2" \
    > "$D/kwok/container.log"
  {
    cat "$HERE/kwok-stages.yaml"
    cat <<EOF
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: all-pods
spec:
  logs:
  - logsFile: $D/kwok/container.log
    follow: false
EOF
  } > "$D/kwok/kwok.yaml"
}

kc() { "$BIN/kubectl" --kubeconfig "$D/kubeconfig" --context "$NAME" "$@"; }

readyz() {
  curl -fsS --max-time 3 --cacert "$D/pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok
}

load_info() {
  [ -f "$D/info.env" ] || die "no cluster $NAME under $RUN"
  # shellcheck disable=SC1091
  . "$D/info.env"
}

# ------------------------------------------------------------------ commands
start_apiserver() {
  launch kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --etcd-prefix=/registry \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$D/pki/serving.crt" --tls-private-key-file="$D/pki/serving.key" \
    --client-ca-file="$D/pki/ca.crt" \
    --token-auth-file="$D/pki/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$D/pki/sa.pub" \
    --service-account-signing-key-file="$D/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none \
    --kubelet-client-certificate="$D/pki/admin.crt" --kubelet-client-key="$D/pki/admin.key" \
    --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true \
    --profiling=false
}

do_start() {
  if [ -d "$D" ]; then
    for c in "${COMPONENTS[@]}"; do
      alive "$c" && die "cluster $NAME is already running (stop it first: $0 stop $NAME)"
    done
  fi
  BIN=$(bin_dir)
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b (run scripts/k8s/build.sh)"
  done
  local t0 ev; t0=$(date +%s)
  ev=$("$BIN/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: \([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p')
  OLD_ETCD=0
  case "$ev" in 3.[0-3].*|3.4.[0-9]|3.4.[12][0-9]|3.4.30) OLD_ETCD=1 ;; esac
  mkdir -p "$RUN"
  rm -rf "$D"
  mkdir -p "$D/logs" "$D/pids" "$D/cmd"

  # Ports: etcd client+peer, apiserver, controller-manager, scheduler, kwok (kubelet API).
  (
    flock 9
    pick_ports 6
    mv "$D/ports.new" "$D/ports"
  ) 9>"$RUN/.ports.lock"
  mapfile -t ports < "$D/ports"
  ETCD_PORT=${ports[0]} ETCD_PEER_PORT=${ports[1]} APISERVER_PORT=${ports[2]}
  KCM_PORT=${ports[3]} SCHED_PORT=${ports[4]} KWOK_PORT=${ports[5]}

  gen_pki
  write_kubeconfigs
  write_kwok_config
  cat > "$D/info.env" <<EOF
NAME=$NAME
DIR=$D
BIN=$BIN
KUBECONFIG=$D/kubeconfig
SERVER=https://127.0.0.1:$APISERVER_PORT
CA_FILE=$D/pki/ca.crt
ADMIN_TOKEN=$ADMIN_TOKEN
LIMITED_TOKEN=$LIMITED_TOKEN
ETCD_ENDPOINT=http://127.0.0.1:$ETCD_PORT
ETCD_VERSION=$ev
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
KWOK_LOG_FILE=$D/kwok/container.log
EOF

  log "etcd $ev on 127.0.0.1:$ETCD_PORT"
  launch etcd "$BIN/etcd" --name "$NAME" --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
    --logger zap --log-level warn
  wait_for etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  log "kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  start_apiserver
  wait_for kube-apiserver "$TIMEOUT" readyz

  # etcd < 3.4.31 (Debian bookworm's 3.4.23) cannot answer watch-progress requests, which
  # client-go's streaming lists (WatchListClient, on by default since 1.35) rely on: without
  # this, informers in kwok and the controllers keep failing their watches and lag by tens of
  # seconds. Plain list+watch clients (kube-rs) are unaffected either way.
  local fg=() envs=()
  if [ "$OLD_ETCD" = 1 ]; then
    fg=(--feature-gates=WatchListClient=false)
    envs=(env KUBE_FEATURE_WatchListClient=false)
  fi
  local common=(--kubeconfig="$D/pki/components.kubeconfig"
    --authentication-kubeconfig="$D/pki/components.kubeconfig"
    --authorization-kubeconfig="$D/pki/components.kubeconfig"
    --bind-address=127.0.0.1
    --tls-cert-file="$D/pki/serving.crt" --tls-private-key-file="$D/pki/serving.key"
    --leader-elect=false "${fg[@]}")
  log "kube-controller-manager, kube-scheduler, kwok"
  launch kube-controller-manager "$BIN/kube-controller-manager" "${common[@]}" \
    --secure-port="$KCM_PORT" \
    --service-account-private-key-file="$D/pki/sa.key" \
    --root-ca-file="$D/pki/ca.crt" \
    --cluster-signing-cert-file="$D/pki/ca.crt" --cluster-signing-key-file="$D/pki/ca.key" \
    --use-service-account-credentials=false
  launch kube-scheduler "$BIN/kube-scheduler" "${common[@]}" --secure-port="$SCHED_PORT"
  launch kwok "${envs[@]}" "$BIN/kwok" --kubeconfig="$D/pki/components.kubeconfig" \
    --config="$D/kwok/kwok.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$D/pki/serving.crt" --tls-private-key-file="$D/pki/serving.key" \
    --cidr=10.244.0.0/16 \
    --node-lease-duration-seconds=40

  # RBAC for the read-only user, and the fake nodes.
  {
    cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: squall-test-limited-view
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: limited}
EOF
    for i in $(seq 0 $((NODES - 1))); do
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
    done
  } > "$D/bootstrap.yaml"
  kc apply -f "$D/bootstrap.yaml" >/dev/null || fail_start kube-apiserver
  wait_for kube-controller-manager 60 curl -fsS --max-time 2 -k "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 curl -fsS --max-time 2 -k "https://127.0.0.1:$SCHED_PORT/healthz"
  wait_for kwok 60 kc wait --for=condition=Ready node --all --timeout=2s
  # Pods need their namespace's ServiceAccount, which the controller-manager creates.
  wait_for kube-controller-manager 60 kc -n default get serviceaccount default
  log "ready in $(( $(date +%s) - t0 ))s"
  echo "$D/kubeconfig"
}

do_stop() {
  [ -d "$D" ] || { log "no cluster $NAME under $RUN"; return 0; }
  local i
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do kill_comp "${COMPONENTS[$i]}"; done
  rm -f "$D/ports"   # release the ports for other clusters
  log "stopped"
}

do_env() {
  load_info
  sed -n 's/^\([A-Z_]*\)=\(.*\)$/\1 \2/p' "$D/info.env" | while read -r k v; do
    case "$k" in
      KUBECONFIG) printf 'export KUBECONFIG=%q\n' "$v" ;;
      *) printf 'export SQUALL_K8S_%s_%s=%q\n' "$(echo "$NAME" | tr 'a-z-' 'A-Z_')" "$k" "$v" ;;
    esac
  done
}

do_status() {
  local c s
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then s="running (pid $(pid_of "$c"))"; else s="stopped"; fi
    printf '%-8s %-24s %s\n' "$NAME" "$c" "$s"
  done
}

do_restart_apiserver() {
  load_info
  local down=${1:-0}
  kill_comp kube-apiserver
  log "kube-apiserver stopped"
  sleep "$down"
  relaunch kube-apiserver
  wait_for kube-apiserver "$TIMEOUT" readyz
  log "kube-apiserver ready again on $SERVER"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  start|stop|env|restart-apiserver)
    check_name "${1:-}"; NAME=$1; shift; D="$RUN/$NAME"
    case "$cmd" in
      start) do_start ;;
      stop) do_stop ;;
      env) do_env ;;
      restart-apiserver) do_restart_apiserver "$@" ;;
    esac ;;
  status)
    if [ -n "${1:-}" ]; then names=("$1"); else
      names=(); for d in "$RUN"/*/; do [ -f "$d/info.env" ] && names+=("$(basename "$d")"); done
    fi
    for NAME in "${names[@]}"; do D="$RUN/$NAME"; do_status; done ;;
  stop-all)
    for d in "$RUN"/*/; do
      [ -f "$d/info.env" ] || continue
      NAME=$(basename "$d"); D="$RUN/$NAME"; do_stop
    done ;;
  *) usage ;;
esac
