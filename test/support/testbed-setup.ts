/**
 * Vitest global setup of the end-to-end layer: starts the Asterisk test bed
 * once per run and stops it afterwards (teardown runs whatever the tests did).
 * A test bed that was already running (someone's `npm start`) is used as it is
 * and left running: the setup stops only what it started.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { TESTBED_SCRIPT } from './testbed.js';

export function setup(): () => void {
  const alreadyRunning = spawnSync('bash', [TESTBED_SCRIPT, 'status'], { stdio: 'ignore' }).status === 0;
  execFileSync('bash', [TESTBED_SCRIPT, 'start'], { stdio: 'inherit' });
  return () => {
    if (!alreadyRunning) execFileSync('bash', [TESTBED_SCRIPT, 'stop'], { stdio: 'inherit' });
  };
}
