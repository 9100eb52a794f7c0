#!/usr/bin/env bash
# `npm test` (after its pretest: typecheck, lint, build): the unit layer, then
# the end-to-end layer on the real Asterisk, in two shards side by side to
# keep the run short:
#   shard 1  on this machine's 127.0.0.1, with the usual test bed;
#   shard 2  in a network namespace of its own (atp-e2e-2), with a second test
#            bed Asterisk from the same chroot (ATP_TESTBED_CELL): inside it,
#            127.0.0.1:5060, :8088 ... are that namespace's own, so every test
#            runs unchanged;
# and then, on their own, the Docker test (containers use this machine's network)
# and the stream-outage test (frame-exact order checks).
# Each file runs in one shard; new files go to shard 2 unless listed below.
# E2E_SHARDS=1 runs everything in one shard, one file at a time, as before.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ "${1:-}" == --e2e-only ]] || npx vitest run --project unit

# The end-to-end layer holds the test bed's lock (scripts/e2e-lock.sh) all
# through, so that no other run on this machine shares the test bed meanwhile;
# -o: the lock is not inherited by what the tests start (Asterisk, cells).
if [[ -z "${ATP_E2E_LOCKED:-}" ]]; then
  ATP_E2E_LOCKED=1 exec flock -o /tmp/asterisk-transcription-proxy-e2e.lock bash "${BASH_SOURCE[0]}" --e2e-only
fi

# Shard 1: about half of the time, the longest files balanced by hand (seconds as measured in CI).
shard1=(
  test/e2e/consecutive-calls.test.ts # 217
  test/e2e/stream-stall.test.ts # 98
  test/e2e/restarts.test.ts # 71
  test/e2e/transports.test.ts # 69
  test/e2e/routing.test.ts # 35
  test/e2e/outbound.test.ts # 37
  test/e2e/check.test.ts
  test/e2e/cli.test.ts
  test/e2e/concurrent-calls.test.ts
  test/e2e/dialplan-fallback.test.ts
  test/e2e/stereo-alignment.test.ts
)
# Order-and-completeness checks at frame level, alone: a loaded machine makes Asterisk's
# snoops slip a frame now and then (PROTOCOLS.md), which they would take for a fault.
serial=(test/e2e/docker.test.ts test/e2e/stream-outages.test.ts)
shard2=()
for file in test/e2e/*.test.ts; do
  [[ " ${shard1[*]} ${serial[*]} " == *" $file "* ]] || shard2+=("$file")
done

if [[ "${E2E_SHARDS:-2}" == 1 ]]; then
  exec npx vitest run --project e2e
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
netns=atp-e2e-2
cell=/var/tmp/atp-e2e-2
cleanup() {
  $SUDO env ATP_TESTBED_CELL="$cell" bash asterisk/testbed.sh stop >/dev/null 2>&1 || true
  $SUDO ip netns delete "$netns" 2>/dev/null || true
}
trap cleanup EXIT
$SUDO ip netns delete "$netns" 2>/dev/null || true
$SUDO ip netns add "$netns"
$SUDO ip -n "$netns" link set lo up

status=0
$SUDO ip netns exec "$netns" env ATP_TESTBED_CELL="$cell" PATH="$PATH" npx vitest run --project e2e "${shard2[@]}" &
shard2_pid=$!
npx vitest run --project e2e "${shard1[@]}" || status=$?
wait "$shard2_pid" || status=$?
npx vitest run --project e2e "${serial[@]}" || status=$?
exit "$status"
