#!/usr/bin/env bash
# Runs a command while holding the machine-wide lock of the local test bed, so
# that two end-to-end runs (two developers, or a developer and a helper) never
# share Asterisk's ports and Stasis app name at once:
#   scripts/e2e-lock.sh npx vitest run --project e2e test/e2e/some.test.ts
# A run against a test bed of its own (ATP_TESTBED_CELL, in a network namespace
# of its own: scripts/test.sh) takes that test bed's own lock.
lock="/tmp/asterisk-transcription-proxy-e2e${ATP_TESTBED_CELL:+$(echo "$ATP_TESTBED_CELL" | tr '/' '_')}.lock"
exec flock "$lock" "$@"
