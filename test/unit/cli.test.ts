import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runCli } from '../support/cli-process.js';

it('exits 2 on a bad configuration, naming every bad key with its file and line, on stderr only', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atp-cli-'));
  const ini = join(dir, 'bad.ini');
  writeFileSync(ini, '; comment\nSAMPLE_RATE=44100\nARI_PASSWORD=secret;with#marks\nSTREAM_URL=http://wrong\n');
  const cli = runCli(['serve', '--config', ini, '--set', 'RTP_PORT_START=x'], {}, dir);
  expect(await cli.exited).toBe(2);
  const stderr = cli.stderr();
  expect(stderr).toContain(`SAMPLE_RATE (${ini}:2)`);
  expect(stderr).toContain(`STREAM_URL (${ini}:4)`);
  expect(stderr).toContain('RTP_PORT_START (command line)');
  expect(stderr).toContain('DESTINATION_DOMAIN (defaults): no route');
  expect(stderr).not.toContain('secret;with#marks');
  expect(cli.stdoutLines).toEqual([]);
});

it('exits 2 on an unknown command or option', async () => {
  expect(await runCli(['serve', '--no-such-option']).exited).toBe(2);
  expect(await runCli(['frobnicate']).exited).toBe(2);
});

it('exits 0 for --help', async () => {
  const cli = runCli(['--help']);
  expect(await cli.exited).toBe(0);
  expect(cli.stdoutLines.join('\n')).toContain('serve');
});
