#!/bin/sh
# The demo called party: a SIPp callee (test/sipp/callee.xml) on 127.0.0.1:5070
# that answers every call and plays a spoken sentence (espeak-ng) in a loop or,
# with CALLEE_TONE_HZ set, a pure tone of that frequency (what the tests use).
set -eu
cd "$(mktemp -d)"
if [ -n "${CALLEE_TONE_HZ:-}" ]; then
  sox -n -r 8000 -c 1 -e u-law -t raw tone.ulaw synth 60 sine "$CALLEE_TONE_HZ" vol 0.5
else
  espeak-ng -w speech.wav "Hello, this is the called party. Thank you for calling the transcription proxy."
  sox speech.wav -r 8000 -c 1 -e u-law -t raw tone.ulaw
fi
echo "demo callee: answering calls on 127.0.0.1:${CALLEE_PORT:-5070}" >&2
# SIPp's statistics screen goes to stdout: drop it; errors stay on stderr.
exec sipp -sf /demo-callee/callee.xml -i 127.0.0.1 -p "${CALLEE_PORT:-5070}" -mi 127.0.0.1 -mp "${CALLEE_MEDIA_PORT:-16100}" -nostdin >/dev/null
