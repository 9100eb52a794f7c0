/**
 * The shipped Kamailio dispatcher (asterisk/kamailio/kamailio.cfg) run in a
 * lab host (test/support/netns.ts) with its site settings given as `-A`
 * defines, never as a system service: its own dispatcher.list, control
 * socket and runtime directory in a temporary directory, its log (stderr)
 * kept line by line so tests can await "cell down" and friends.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabHost } from './netns.js';

export const KAMAILIO_CFG = fileURLToPath(new URL('../../asterisk/kamailio/kamailio.cfg', import.meta.url));

export interface KamailioOptions {
  /** The cells' SIP addresses (`host:port`), in dispatcher.list order. */
  cells: string[];
  probeIntervalS: number;
  cellTimeoutMs: number;
}

export interface LogLine {
  atMs: number;
  text: string;
}

export interface Kamailio {
  /** Where callers send their INVITEs, `ADDRESS:5060`. */
  sip: string;
  log: LogLine[];
  /** Resolves with the first log line (from `fromIndex` on) that matches. */
  waitForLog(pattern: RegExp, timeoutMs: number, fromIndex?: number): Promise<LogLine>;
  /** `kamcmd` against this Kamailio's control socket. */
  rpc(...command: string[]): string;
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export async function startKamailio(host: LabHost, options: KamailioOptions): Promise<Kamailio> {
  const dir = mkdtempSync(join(tmpdir(), 'atp-kamailio-'));
  const list = join(dir, 'dispatcher.list');
  writeFileSync(list, options.cells.map((cell, i) => `1 sip:${cell} 0 0 name=cell${i + 1}\n`).join(''));
  const ctl = `unix:${join(dir, 'ctl')}`;
  const child = host.spawn(
    'kamailio',
    [
      '-f',
      KAMAILIO_CFG,
      '-DD', // foreground, the main process is ours
      '-E', // log to stderr
      '-Y',
      dir,
      '-A',
      `LISTEN=udp:${host.address}:5060`,
      '-A',
      `DISPATCHER_LIST="${list}"`,
      '-A',
      `CTL_SOCKET="${ctl}"`,
      '-A',
      `PROBE_INTERVAL_S=${options.probeIntervalS}`,
      '-A',
      `CELL_TIMEOUT_MS=${options.cellTimeoutMs}`,
      // One UDP worker: with several, a 180 and the 200 right behind it can be relayed
      // by two workers at once and arrive swapped, which phones ignore but SIPp aborts on.
      '-A',
      'CHILDREN=1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: LogLine[] = [];
  const waiters: (() => void)[] = [];
  let pending = '';
  const onData = (chunk: Buffer): void => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    const atMs = performance.now();
    for (const text of lines) if (text.trim() !== '') log.push({ atMs, text });
    for (const waiter of waiters.splice(0)) waiter();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      for (const waiter of waiters.splice(0)) waiter();
      resolve();
    }),
  );

  const rpc = (...command: string[]): string => host.run('kamcmd', ['-s', ctl, ...command], 5000);
  const logTail = (lines = 60): string =>
    log
      .slice(-lines)
      .map((l) => l.text)
      .join('\n');
  const kamailio: Kamailio = {
    sip: `${host.address}:5060`,
    log,
    rpc,
    logTail,
    waitForLog(pattern, timeoutMs, fromIndex = 0) {
      const deadline = performance.now() + timeoutMs;
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = log.slice(fromIndex).find((line) => pattern.test(line.text));
          if (found) return resolve(found);
          if (exited) return reject(new Error(`Kamailio exited before logging ${pattern}\n${logTail(20)}`));
          if (performance.now() > deadline) return reject(new Error(`Kamailio did not log ${pattern} within ${timeoutMs} ms`));
          waiters.push(check);
          setTimeout(check, Math.max(0, deadline - performance.now()) + 1).unref();
        };
        check();
      });
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await exit;
    },
  };

  // Ready once its control socket answers and it lists both cells.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`Kamailio exited at start-up\n${logTail(30)}`);
    try {
      const listing = rpc('dispatcher.list');
      if (options.cells.every((cell) => listing.includes(`sip:${cell}`))) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      await kamailio.stop();
      throw new Error(`Kamailio did not come up\n${logTail(30)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return kamailio;
}

/** The dispatcher's view of each cell: `sip:host:port` → flags (AP active+probing, IP inactive+probing, ...). */
export function cellStates(kamailio: Kamailio): Map<string, string> {
  const states = new Map<string, string>();
  const listing = kamailio.rpc('dispatcher.list');
  for (const match of listing.matchAll(/URI: (sip:\S+)\s+FLAGS: (\S+)/g)) states.set(match[1]!, match[2]!);
  return states;
}
