#!/usr/bin/env bash
# `npm start`: the whole product on this machine with its embedded defaults.
# Installs what is missing (scripts/setup.sh), starts the local Asterisk test
# bed, the built-in receiver (WAV files in ./recordings), a SIPp "called party"
# that answers and speaks, and the service. Ctrl-C stops everything, including
# Asterisk. Then call it: see README.md, "Place a call".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
npm run build --silent

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
work="$(mktemp -d)"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  $SUDO bash asterisk/testbed.sh stop || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

$SUDO bash asterisk/testbed.sh start

# The called party: answers every call to 127.0.0.1:5070 and says a sentence, in a loop.
espeak-ng -w "$work/speech.wav" "Hello, this is the called party. Thank you for calling the transcription proxy."
sox "$work/speech.wav" -r 8000 -c 1 -e u-law -t raw "$work/tone.ulaw"
(cd "$work" && exec sipp -sf "$OLDPWD/test/sipp/callee.xml" -i 127.0.0.1 -p 5070 -mp 30000 -nostdin -d 600000 >/dev/null 2>&1) &
pids+=($!)

node dist/app/cli/main.js receive --port 8090 --dir recordings &
pids+=($!)

# On jemalloc with the systemd unit's settings, as the image and the unit run
# it (docs/deployment.md, "Memory"), when Debian's libjemalloc2 is installed
# (scripts/setup.sh installs it).
allocator=()
if ldconfig -p | grep -q 'libjemalloc\.so\.2 '; then
  allocator=(LD_PRELOAD=libjemalloc.so.2 "$(grep -m1 '^Environment=MALLOC_CONF=' deploy/transcription-proxy.service | cut -d= -f2-)")
fi

# Embedded defaults, plus the two values that have none: the test bed's ARI
# password and where the called party listens.
env "${allocator[@]}" ARI_PASSWORD=change-me-ari-secret DESTINATION_DOMAIN=127.0.0.1:5070 \
  dist/app/cli/main.js serve "$@" & # through its first line (node and its flags)
pids+=($!)

wait -n "${pids[@]}"
