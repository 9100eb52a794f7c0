/**
 * Vitest global setup of the end-to-end layer: starts the Asterisk test bed
 * once per run and stops it afterwards (also after failures: teardown runs
 * whatever the tests did). The start prints Asterisk's log tail if it fails.
 */
import { execFileSync } from 'node:child_process';
import { TESTBED_SCRIPT } from './testbed.js';

export function setup(): () => void {
  execFileSync('bash', [TESTBED_SCRIPT, 'start'], { stdio: 'inherit' });
  return () => {
    execFileSync('bash', [TESTBED_SCRIPT, 'stop'], { stdio: 'inherit' });
  };
}
