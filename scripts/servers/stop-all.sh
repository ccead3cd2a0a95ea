#!/usr/bin/env bash
# Kills test servers (moto, OpenBao, Consul) that tests/integration/servers.rs started and
# that outlived their test (the test binary was killed), and removes their directories.
# A process is only signalled when its environment carries SQUALL_TEST_SERVER_DIR=<its dir>,
# so a recycled PID is never hit.
# Usage: scripts/servers/stop-all.sh     (scripts/test.sh runs it on exit)
set -euo pipefail
BASE="${TMPDIR:-/tmp}/squall-test-servers"
[ -d "$BASE" ] || exit 0
n=0
for d in "$BASE"/*/; do
  d="${d%/}"
  [ -f "$d/pid" ] || continue
  pid=$(cat "$d/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/environ" ] &&
     tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "SQUALL_TEST_SERVER_DIR=$d"; then
    kill -9 "$pid" 2>/dev/null && n=$((n + 1)) || true
  fi
  rm -rf "$d"
done
[ "$n" = 0 ] || echo "[servers] stopped $n leftover test server(s)" >&2
