#!/usr/bin/env bash
# Runs a command while holding the machine-wide lock of the local test bed, so
# that two end-to-end runs (two developers, or a developer and a helper) never
# share Asterisk's ports and Stasis app name at once:
#   scripts/e2e-lock.sh npx vitest run --project e2e test/e2e/some.test.ts
exec flock /tmp/asterisk-transcription-proxy-e2e.lock "$@"
