#!/usr/bin/env bash
# Runs a benchmark on an Asterisk of its own, so that long runs (the soak, the
# 2-hour call) never hold the shared test bed: a network namespace with only
# its loopback up, a cell of the test bed's chroot inside it (the test bed's
# configuration unchanged: in the namespace, 127.0.0.1 is the namespace's own
# loopback), and COMMAND run inside the namespace too, with
# ATP_BENCH_ASTERISK_PID naming the cell's Asterisk. The namespace, the cell
# and every process left in the namespace are removed afterwards, also when
# COMMAND fails or the script is interrupted.
#   scripts/bench-cell.sh NAME COMMAND...      (root)
# e.g. scripts/bench-cell.sh soak node scripts/bench-soak.mjs
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 NAME COMMAND..." >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "bench-cell: must run as root" >&2; exit 1; }
name="$1"
shift
[[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "bench-cell: bad name $name" >&2; exit 2; }

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTBED="$ROOT_DIR/asterisk/testbed.sh"
CHROOT="${ATP_TESTBED_DIR:-/var/cache/asterisk-transcription-proxy}/chroot"
netns="atp-bench-$$-$name"
dir="/var/tmp/atp-cells/$$-bench-$name"
asterisk_pid=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$asterisk_pid" ]] && kill -0 "$asterisk_pid" 2>/dev/null; then
    bash "$TESTBED" cell-cli "$dir" "core stop now" >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$asterisk_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$asterisk_pid" 2>/dev/null || true
  fi
  if ip netns list | grep -qw "$netns"; then
    # Whatever still runs in the namespace (a SIPp or a service left by a failed run).
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.2
    ip netns del "$netns" || true
  fi
  bash "$TESTBED" cell-remove "$dir" >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$netns"
ip -n "$netns" link set lo up
bash "$TESTBED" cell-init "$dir" "bench-$name" >/dev/null
if [[ "${ATP_BENCH_NO_SESSION_TIMERS:-}" == 1 ]]; then
  # Long calls: SIPp's scenarios answer no session refresh (RFC 4028 re-INVITE or UPDATE).
  sed -i 's/^type = endpoint$/type = endpoint\ntimers = no/' "$CHROOT$dir/etc/pjsip.conf"
fi
bash "$TESTBED" cell-run "$dir" "$netns" >"$CHROOT$dir/log/console" 2>&1 &
asterisk_pid=$!

for _ in $(seq 300); do
  if ip netns exec "$netns" curl -fsS -u transcription-proxy:change-me-ari-secret \
    http://127.0.0.1:8088/ari/asterisk/info >/dev/null 2>&1; then
    break
  fi
  kill -0 "$asterisk_pid" 2>/dev/null || { echo "bench-cell: Asterisk exited:" >&2; tail -20 "$CHROOT$dir/log/console" >&2; exit 1; }
  sleep 0.1
done
echo "bench-cell: Asterisk pid $asterisk_pid in netns $netns" >&2

set +e
ip netns exec "$netns" env ATP_BENCH_ASTERISK_PID="$asterisk_pid" ATP_BENCH_CELL_DIR="$CHROOT$dir" "$@"
status=$?
set -e
exit "$status"
