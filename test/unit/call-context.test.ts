/**
 * The last-resort handlers, in a process of their own (vitest has its own):
 * an error nobody caught inside a call is logged with the call's ids and ends
 * that call's streams only; the process and every other call go on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CONTEXT = fileURLToPath(new URL('../../dist/app/calls/call-context.js', import.meta.url));

function run(body: string): { lines: Record<string, unknown>[]; stdout: string; status: number } {
  const dir = mkdtempSync(join(tmpdir(), 'atp-context-'));
  const script = join(dir, 'script.mjs');
  writeFileSync(
    script,
    `import { pino } from ${JSON.stringify(fileURLToPath(new URL('../../node_modules/pino/pino.js', import.meta.url)))};
import { installLastResortHandlers, runInCall } from ${JSON.stringify(CONTEXT)};
const logger = pino({ base: null, timestamp: false }, pino.destination({ fd: 1, sync: true }));
installLastResortHandlers(logger, (code) => { console.log(JSON.stringify({ exit: code })); process.exit(code); });
const ended = [];
const call = (callId) => ({ callId, channelId: 'ch-' + callId, onUnexpectedError: () => { ended.push(callId); console.log(JSON.stringify({ ended: callId })); } });
${body}
`,
  );
  try {
    const stdout = execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 10_000 });
    return {
      stdout,
      status: 0,
      lines: stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    };
  } catch (error) {
    const failed = error as { stdout: string; status: number };
    return {
      stdout: failed.stdout,
      status: failed.status,
      lines: failed.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    };
  }
}

describe('last-resort handlers', () => {
  it('a rejection nobody awaited inside a call: logged with its ids, that call ends its streams, the process goes on', () => {
    const { lines, status } = run(`
runInCall(call('A'), () => { void (async () => { await null; throw new Error('boom in A'); })(); });
runInCall(call('B'), () => { setTimeout(() => console.log(JSON.stringify({ alive: 'B' })), 50); });
setTimeout(() => console.log(JSON.stringify({ alive: 'process' })), 100);
`);
    expect(status).toBe(0);
    expect(lines).toContainEqual(
      expect.objectContaining({
        callId: 'A',
        channelId: 'ch-A',
        kind: 'rejection',
        msg: expect.stringContaining('unexpected error in a call'),
      }),
    );
    expect(lines).toContainEqual({ ended: 'A' });
    expect(lines).not.toContainEqual({ ended: 'B' });
    expect(lines).toContainEqual({ alive: 'B' });
    expect(lines).toContainEqual({ alive: 'process' });
  });

  it('an exception thrown from a timer of a call is handled the same way', () => {
    const { lines, status } = run(`
runInCall(call('C'), () => { setTimeout(() => { throw new Error('sync boom'); }, 10); });
setTimeout(() => console.log(JSON.stringify({ alive: 'process' })), 100);
`);
    expect(status).toBe(0);
    expect(lines).toContainEqual(expect.objectContaining({ callId: 'C', kind: 'exception' }));
    expect(lines).toContainEqual({ ended: 'C' });
    expect(lines).toContainEqual({ alive: 'process' });
  });

  it('outside any call: a rejection is logged and the process goes on; an exception exits 1 for the supervisor', () => {
    const rejection = run(`
void Promise.reject(new Error('stray'));
setTimeout(() => console.log(JSON.stringify({ alive: 'process' })), 100);
`);
    expect(rejection.status).toBe(0);
    expect(rejection.lines).toContainEqual(
      expect.objectContaining({ kind: 'rejection', msg: expect.stringContaining('outside any call') }),
    );
    expect(rejection.lines).toContainEqual({ alive: 'process' });
    const exception = run(`setTimeout(() => { throw new Error('stray'); }, 10); setTimeout(() => {}, 1000);`);
    expect(exception.status).toBe(1);
    expect(exception.lines).toContainEqual({ exit: 1 });
  });
});
