/**
 * Runs the built `transcription-proxy` command (dist/, made by `npm run
 * build`, which `npm test` runs first) as a child process, collecting its
 * stdout as JSON log lines so tests can await a given line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isSecretKey } from '../../app/config/keys.js';
import { auditLog, auditNumbers, auditSecrets } from './log-audit.js';
import type { LabHost } from './netns.js';

export const CLI = fileURLToPath(new URL('../../dist/app/cli/main.js', import.meta.url));

/** Node's flags from main.js's first line (`#!/usr/bin/env -S node FLAGS`): the service runs as it is shipped. */
export function nodeFlags(main = CLI): string[] {
  const first = readFileSync(main, 'utf8').split('\n', 1)[0] ?? '';
  return first.split(/\s+/).slice(first.split(/\s+/).indexOf('node') + 1);
}

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  stdoutLines: string[];
  stderr(): string;
  /** Resolves with the first JSON log line for which `match` is true. */
  line(match: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/**
 * Registers the child's JSON log lines (stdout, and stderr for `call`) with the log audit, with
 * the secrets it was given (environment, --set) and the numbers of `call NUMBER --from EXT`.
 */
function auditCli(args: readonly string[], env: Record<string, string>, lines: () => string[]): void {
  const given = { ...env };
  args.forEach((arg, index) => {
    const value = args[index + 1];
    if ((arg === '--set' || arg === '-s') && value?.includes('='))
      given[value.slice(0, value.indexOf('='))] = value.slice(value.indexOf('=') + 1);
  });
  auditSecrets(
    ...Object.entries(given)
      .filter(([name]) => isSecretKey(name))
      .map(([, value]) => value),
  );
  if (args[0] === 'call') auditNumbers(args[1], args[args.indexOf('--from') + 1], args[args.indexOf('--caller-id') + 1]);
  const showsPii = ['yes', 'true', '1', 'on'].includes((given.LOG_PII ?? '').toLowerCase());
  auditLog({ name: `${args[0] ?? 'cli'} (pid of a child)`, lines: () => lines().filter((line) => line.startsWith('{')), showsPii });
}

/** `host`: run it inside that lab host's network namespace (test/support/netns.ts); same pid, same signals. */
export function runCli(args: string[], env: Record<string, string> = {}, cwd?: string, host?: LabHost): CliProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" (npm test does it first)`);
  const options = { env: { PATH: process.env.PATH ?? '', ...env }, cwd };
  const child = host
    ? (host.spawn(process.execPath, [...nodeFlags(), CLI, ...args], options) as ChildProcessWithoutNullStreams)
    : spawn(process.execPath, [...nodeFlags(), CLI, ...args], options);
  const stdoutLines: string[] = [];
  let stderr = '';
  auditCli(args, env, () => [...stdoutLines, ...stderr.split('\n')]);
  let pending = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    stdoutLines.push(...lines.filter((l) => l.length > 0));
    for (const waiter of waiters.splice(0)) waiter();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (pending) stdoutLines.push(pending);
      for (const waiter of waiters.splice(0)) waiter();
      resolve(code);
    }),
  );
  let done = false;
  void exited.then(() => {
    done = true;
  });

  function line(match: (entry: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        for (const text of stdoutLines) {
          try {
            const entry = JSON.parse(text) as Record<string, unknown>;
            if (match(entry)) return resolve(entry);
          } catch {
            // not JSON: the test that checks stdout reports it
          }
        }
        if (done) return reject(new Error(`process exited before the expected log line; stderr: ${stderr}`));
        if (Date.now() > deadline) return reject(new Error(`expected log line not seen within ${timeoutMs} ms`));
        waiters.push(check);
        setTimeout(check, Math.max(0, deadline - Date.now()) + 1).unref();
      };
      check();
    });
  }
  return { child, stdoutLines, stderr: () => stderr, line, exited };
}
