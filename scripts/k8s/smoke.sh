#!/usr/bin/env bash
# Smoke test of the test-cluster harness: two clusters at once, a namespace, a CRD and a custom
# resource, a Job that completes and one that fails (kwok stages), pod logs, an RBAC-forbidden
# request, an API server restart. Exits non-zero on the first failure.
# Usage: scripts/k8s/smoke.sh   (builds the binaries first if they are not cached)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SQUALL_K8S_RUN="${SQUALL_K8S_RUN:-/tmp/squall-k8s-smoke}"
A=smoke-a B=smoke-b
BIN=$("$HERE/build.sh" | tail -1)
export SQUALL_K8S_BIN="$BIN"

cleanup() { "$HERE/cluster.sh" stop "$A" >/dev/null 2>&1 || true; "$HERE/cluster.sh" stop "$B" >/dev/null 2>&1 || true; }
trap cleanup EXIT
step() { printf '\n==> %s\n' "$*"; }
t() { local s; s=$(date +%s%3N); "$@"; echo "    ($(( $(date +%s%3N) - s )) ms)"; }

step "start $A and $B at the same time"
s=$(date +%s)
"$HERE/cluster.sh" start "$A" > /tmp/.smoke-a.out &
pa=$!
"$HERE/cluster.sh" start "$B" > /tmp/.smoke-b.out &
pb=$!
wait $pa; wait $pb
KA=$(tail -1 /tmp/.smoke-a.out); KB=$(tail -1 /tmp/.smoke-b.out)
echo "    both ready in $(( $(date +%s) - s ))s: $KA $KB"
ka() { "$BIN/kubectl" --kubeconfig "$KA" "$@"; }
kb() { "$BIN/kubectl" --kubeconfig "$KB" "$@"; }
ka version
grep -h SERVER= "$SQUALL_K8S_RUN/$A/info.env" "$SQUALL_K8S_RUN/$B/info.env"
ka get nodes -o wide

step "namespace, CRD, custom resource on $A"
ka create namespace smoke
ka apply -f - <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.squall.test
spec:
  group: squall.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
EOF
ka wait --for=condition=Established crd/widgets.squall.test --timeout=30s
ka -n smoke apply -f - <<'EOF'
apiVersion: squall.test/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
EOF
ka -n smoke get widgets -o wide
ka -n smoke patch widget w1 --subresource=status --type=merge -p '{"status":{"phase":"Done"}}'
[ "$(ka -n smoke get widget w1 -o jsonpath='{.status.phase}')" = Done ]

step "a Job that completes, a Job that fails (kwok), on $A"
ka -n smoke apply -f - <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {squall.test/duration: 2s}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: [sh, -c, "echo hi"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {squall.test/exit-code: "3", squall.test/message: "boom"}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: [sh, -c, "exit 3"]}]
EOF
t ka -n smoke wait --for=condition=Complete job/ok --timeout=90s
t ka -n smoke wait --for=condition=Failed job/bad --timeout=90s
ka -n smoke get jobs,pods -o wide
ka -n smoke get pods -l job-name=bad -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated}'; echo
[ "$(ka -n smoke get pods -l job-name=bad -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}')" = 3 ]

step "pod logs through the kwok kubelet API"
logs=$(ka -n smoke logs job/ok); echo "$logs"; echo "$logs" | grep -q "kwok fake container log"

step "RBAC: user limited can read but not write"
ka --context "$A-limited" -n smoke get jobs >/dev/null
if out=$(ka --context "$A-limited" -n smoke delete job ok 2>&1); then echo "limited user could delete!"; exit 1; fi
echo "    $out"; echo "$out" | grep -q Forbidden

step "client-certificate context"
ka --context "$A-cert" auth whoami

step "the clusters are separate"
kb get namespace smoke >/dev/null 2>&1 && { echo "namespace leaked into $B"; exit 1; }
kb create namespace only-b >/dev/null
kb apply -f - <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: ok-b, namespace: only-b}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
EOF
t kb -n only-b wait --for=condition=Complete job/ok-b --timeout=90s

step "restart the API server of $A (state survives, same port)"
t "$HERE/cluster.sh" restart-apiserver "$A" 2
ka -n smoke get widget w1 >/dev/null

step "stop both"
"$HERE/cluster.sh" stop "$A"; "$HERE/cluster.sh" stop "$B"
"$HERE/cluster.sh" status
trap - EXIT
echo
echo "smoke: 1 passed, 0 failed"
