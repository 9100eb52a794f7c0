/**
 * More Asterisks beside the shared test bed: each "cell" is the test bed's
 * Asterisk 22 from the same chroot, run by `asterisk/testbed.sh cell-run`
 * inside a lab host's network namespace (test/support/netns.ts), with its own
 * configuration and its own run, log, spool and astdb directories under
 * CHROOT/var/tmp/atp-cells/. The shared test bed on the host's 127.0.0.1 is
 * not touched: the cell never reads /etc/asterisk, its control socket is in
 * its own run directory, and its /dev and /proc mounts live in a mount
 * namespace of its own that goes away with its process.
 *
 * By default a cell has the test bed's configuration (asterisk/conf/ and the
 * FreePBX files) with SIP on the host's address (ADDRESS:5060) taking calls
 * from every lab host into `transcription-proxy-inbound`, and ARI on port
 * 8088 of every address in the namespace; `files` replaces or adds files in
 * its etc/ directory. The lab removes the cell (process and directory) on
 * destroy, if the test did not.
 */
import { randomBytes } from 'node:crypto';
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARI_PASSWORD, ARI_USERNAME, TESTBED_SCRIPT } from './testbed.js';
import { processAlive, type LabHost } from './netns.js';

/** The test bed's chroot (asterisk/testbed.sh: $ATP_TESTBED_DIR/chroot). */
export const CHROOT = `${process.env.ATP_TESTBED_DIR ?? '/var/cache/asterisk-transcription-proxy'}/chroot`;
/** Where cell directories live, seen from inside the chroot. */
export const CELLS_DIR = '/var/tmp/atp-cells';

export interface AsteriskCellOptions {
  /** The cell's name: its Asterisk `systemname`, and part of its directory's name. */
  name: string;
  /** Files of the cell's etc/ directory to write (name → content), over the defaults. */
  files?: Record<string, string>;
  /** How long Asterisk may take to boot and open ARI. */
  bootTimeoutMs?: number;
}

export interface AsteriskCell {
  name: string;
  host: LabHost;
  /** The cell's directory as the chroot sees it (asterisk -C DIR/etc/asterisk.conf). */
  dir: string;
  /** The same directory on the host (CHROOT + dir): etc/, log/full, run/, ... */
  hostDir: string;
  /** Asterisk's pid (the process cell-run became). */
  pid: number;
  /** ARI's base URL as the test process reaches it, e.g. http://198.51.100.11:8088. */
  ariUrl: string;
  /**
   * ARI's password on this cell (user ARI_USERNAME): random per cell, since its ARI listens
   * beyond loopback, where the service refuses the placeholder password the project ships.
   */
  ariPassword: string;
  /** SIP address of the cell, `ADDRESS:5060`. */
  sip: string;
  /** Resolves with Asterisk's exit code (or null when killed by a signal). */
  exited: Promise<number | null>;
  /** `asterisk -rx COMMAND` on this cell's control socket. */
  cli(command: string): string;
  /** A plain ARI request to this cell; JSON in, JSON (or undefined) out. */
  ari<T = unknown>(method: 'GET' | 'POST' | 'DELETE', path: string): Promise<T>;
  /** Throws unless the cell's Asterisk has no channel and no bridge (waits up to timeoutMs). */
  expectNothingLeft(timeoutMs?: number): Promise<void>;
  /** The last lines of the cell's Asterisk log. */
  logTail(lines?: number): string;
  /** SIGKILL, as a crash: no hangups, no BYEs. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** `core stop now`, then removes the cell's directory. Idempotent. */
  stop(): Promise<void>;
}

/** ari.conf of a cell: the test bed's, with `password` for its user. */
function cellAri(password: string): string {
  const testbedAri = readFileSync(join(TESTBED_SCRIPT, '..', 'conf', 'ari.conf'), 'utf8');
  const replaced = testbedAri.replace(`password = ${ARI_PASSWORD}`, `password = ${password}`);
  if (replaced === testbedAri) throw new Error('asterisk/conf/ari.conf changed: update cellAri()');
  return replaced;
}

function testbed(args: string[], timeoutMs = 10_000): string {
  return execFileSync('bash', [TESTBED_SCRIPT, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** pjsip.conf of a default cell: the test bed's endpoints, SIP on the cell's own address. */
function defaultPjsip(address: string, subnet: string): string {
  const testbedPjsip = readFileSync(join(TESTBED_SCRIPT, '..', 'conf', 'pjsip.conf'), 'utf8');
  const replaced = testbedPjsip
    .replace('bind = 127.0.0.1:5060', `bind = ${address}:5060`)
    .replace(/^match = 127\.0\.0\.1$/m, `match = ${subnet}`);
  if (replaced === testbedPjsip || !replaced.includes(`match = ${subnet}`))
    throw new Error('asterisk/conf/pjsip.conf changed: update defaultPjsip()');
  return replaced;
}

const DEFAULT_HTTP = "[general]\nenabled = yes\n; every address of the cell's own namespace\nbindaddr = 0.0.0.0\nbindport = 8088\n";

/** Removes cell directories of test processes that were killed before their clean-up. */
function sweepStaleCells(): void {
  const cellsDir = `${CHROOT}${CELLS_DIR}`;
  if (!existsSync(cellsDir)) return;
  const entries = readdirSync(cellsDir);
  for (const entry of entries) {
    const owner = /^(\d+)-/.exec(entry)?.[1];
    if (owner !== undefined && !processAlive(Number(owner))) testbed(['cell-remove', `${CELLS_DIR}/${entry}`]);
  }
}

export async function startAsteriskCell(host: LabHost, options: AsteriskCellOptions): Promise<AsteriskCell> {
  if (!/^[A-Za-z0-9_-]+$/.test(options.name)) throw new Error(`bad cell name ${options.name}`);
  sweepStaleCells();
  const dir = `${CELLS_DIR}/${process.pid}-${options.name}`;
  const hostDir = `${CHROOT}${dir}`;
  const address = host.address;
  const ariUrl = `http://${address}:8088`;
  const ariPassword = randomBytes(18).toString('hex');
  const authorization = `Basic ${Buffer.from(`${ARI_USERNAME}:${ariPassword}`).toString('base64')}`;
  let stopped = false;

  const remove = (): void => {
    if (existsSync(hostDir)) testbed(['cell-remove', dir]);
  };
  host.onDestroy(() => {
    // The lab has killed every process of the namespace by now.
    try {
      remove();
    } catch (error) {
      console.error(`could not remove cell directory ${hostDir}: ${(error as Error).message}`);
    }
  });

  testbed(['cell-init', dir, options.name]);
  const files: Record<string, string> = {
    'pjsip.conf': defaultPjsip(address, host.subnet),
    'http.conf': DEFAULT_HTTP,
    'ari.conf': cellAri(ariPassword),
    ...options.files,
  };
  for (const [name, content] of Object.entries(files)) {
    if (name === 'asterisk.conf' || name.includes('/')) throw new Error(`a cell may not replace ${name}`);
    writeFileSync(join(hostDir, 'etc', name), content);
  }

  const consoleLog = openSync(join(hostDir, 'log', 'console'), 'a');
  const started = spawn('bash', [TESTBED_SCRIPT, 'cell-run', dir, host.netns], { stdio: ['ignore', consoleLog, consoleLog] });
  closeSync(consoleLog);
  const exited = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => {
    running = false;
  });

  const cli = (command: string): string => testbed(['cell-cli', dir, command]);
  const ari = async <T>(method: 'GET' | 'POST' | 'DELETE', path: string): Promise<T> => {
    const response = await fetch(`${ariUrl}/ari${path}`, { method, headers: { Authorization: authorization } });
    if (!response.ok) throw new Error(`${options.name}: ${method} ${path}: HTTP ${response.status} ${await response.text()}`);
    const text = await response.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  };
  const logTail = (lines = 80): string => {
    try {
      return readFileSync(join(hostDir, 'log', 'full'), 'utf8')
        .trim()
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch (error) {
      return `(no log: ${(error as Error).message})`;
    }
  };
  const kill = async (): Promise<void> => {
    if (!running) return;
    started.kill('SIGKILL');
    await exited;
  };

  const cell: AsteriskCell = {
    name: options.name,
    host,
    dir,
    hostDir,
    pid: started.pid ?? -1,
    ariUrl,
    ariPassword,
    sip: `${address}:5060`,
    exited,
    cli,
    ari,
    logTail,
    kill,
    async expectNothingLeft(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [channels, bridges] = await Promise.all([
          ari<{ name: string }[]>('GET', '/channels'),
          ari<{ id: string }[]>('GET', '/bridges'),
        ]);
        if (channels.length === 0 && bridges.length === 0) return;
        if (Date.now() > deadline) {
          throw new Error(
            `left behind in ${options.name}: channels ${JSON.stringify(channels.map((c) => c.name))}, bridges ${JSON.stringify(bridges.map((b) => b.id))}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (running) {
        try {
          cli('core stop now');
        } catch {
          // not answering: killed below
        }
        const timer = setTimeout(() => started.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      remove();
    },
  };

  // Booted: the control socket answers `core waitfullybooted`, and ARI answers HTTP.
  const deadline = Date.now() + (options.bootTimeoutMs ?? 30_000);
  const failed = (why: string): Error => new Error(`cell ${options.name}: ${why}\n${logTail(40)}\n--- console\n${readConsole(hostDir)}`);
  for (;;) {
    if (!running) throw failed(`Asterisk exited with ${String(await exited)} while booting`);
    if (Date.now() > deadline) {
      await kill();
      throw failed('Asterisk did not boot in time');
    }
    try {
      if (existsSync(join(hostDir, 'run', 'asterisk.ctl'))) {
        testbed(['cell-cli', dir, 'core waitfullybooted'], 5000);
        await ari('GET', '/asterisk/info');
        break;
      }
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const pidFile = readFileSync(join(hostDir, 'run', 'asterisk.pid'), 'utf8').trim();
  if (Number(pidFile) !== cell.pid) {
    await kill();
    throw failed(`asterisk.pid says ${pidFile}, but cell-run's process is ${cell.pid}`);
  }
  return cell;
}

function readConsole(hostDir: string): string {
  try {
    return readFileSync(join(hostDir, 'log', 'console'), 'utf8')
      .trim()
      .split('\n')
      .slice(-20)
      .join('\n');
  } catch {
    return '';
  }
}
