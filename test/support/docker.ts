/**
 * A real Docker engine for the deployment tests: starts `dockerd` when none
 * answers (and stops it again afterwards), builds the local stand-ins for the
 * base images no registry can serve here (scripts/docker-stand-ins.sh), and
 * runs `docker`, Compose (v2's `docker compose` when present, else Debian's
 * `docker-compose`) and container logs as the tests need them.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SERVICE_IMAGE = 'asterisk-transcription-proxy:latest';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; rejects (with its output) on a non-zero exit unless `allowFailure`. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; allowFailure?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (code === 0 || options.allowFailure === true) resolve(result);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`));
    });
  });
}

export const docker = (args: readonly string[], options: Parameters<typeof run>[2] = {}) => run('docker', args, options);

/** `docker compose` (v2) when the CLI has it, else Debian's `docker-compose` (1.29). */
export async function composeCommand(): Promise<string[]> {
  const v2 = await run('docker', ['compose', 'version'], { allowFailure: true });
  return v2.code === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

async function engineAnswers(): Promise<boolean> {
  return (await docker(['info', '--format', '{{.ServerVersion}}'], { allowFailure: true, timeoutMs: 10_000 })).code === 0;
}

/**
 * A Docker engine that answers. Returns how to put things back: stops the
 * `dockerd` this started (nothing when one was already running).
 */
export async function ensureDockerEngine(): Promise<() => Promise<void>> {
  if (await engineAnswers()) return async () => {};
  const logFile = join(tmpdir(), `atp-dockerd-${process.pid}.log`);
  const log = openSync(logFile, 'a');
  const daemon = spawn('dockerd', [], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  while (!(await engineAnswers())) {
    if (daemon.exitCode !== null || Date.now() > deadline) {
      daemon.kill('SIGKILL');
      throw new Error(`dockerd did not come up; its log:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return async () => {
    daemon.kill('SIGTERM');
    await exited;
  };
}

/** The base images the Dockerfiles name, made locally when missing (cached: seconds once made). */
export async function ensureBaseImages(): Promise<void> {
  await run('bash', ['scripts/docker-stand-ins.sh'], { timeoutMs: 600_000 });
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Follows a command's stdout line by line (`docker logs --follow`, `docker
 * events`) until `match` returns a value for a line; rejects with `what` after
 * `timeoutMs` or when the command ends first.
 */
function firstLine<T>(what: string, args: string[], match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let pending = '';
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      outcome();
    };
    const timer = setTimeout(() => settle(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const value = match(line);
        if (value !== undefined) return settle(() => resolve(value));
      }
    });
    child.on('close', () => settle(() => reject(new Error(`docker ${args.join(' ')} ended before ${what}`))));
  });
}

/** Waits for the container's first JSON log line for which `match` is true (from its start, then as it comes). */
export function waitForLogEntry(
  container: string,
  match: (entry: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  return firstLine(
    `a log line of ${container}`,
    ['logs', '--follow', container],
    (line) => {
      const entry = parseLogLine(line);
      return entry !== undefined && match(entry) ? entry : undefined;
    },
    timeoutMs,
  );
}

/** The container's health (`healthy`, `starting`, `unhealthy`), or its state when it has no health check. */
export async function containerHealth(container: string): Promise<string> {
  const { stdout } = await docker([
    'inspect',
    '--format',
    '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}',
    container,
  ]);
  return stdout.trim();
}

/** Waits for the engine's `health_status: healthy` event of the container (or finds it healthy already). */
export async function waitForHealthy(container: string, timeoutMs = 90_000): Promise<void> {
  const { stdout } = await docker(['inspect', '--format', '{{.Id}}', container]);
  const id = stdout.trim();
  // --since replays what happened while `docker events` was connecting: no change is missed.
  const since = String(Math.floor(Date.now() / 1000) - 1);
  const event = firstLine(
    `${container} to become healthy`,
    ['events', '--since', since, '--filter', `container=${id}`, '--filter', 'event=health_status', '--format', '{{.Status}}'],
    (line) => (line.trim() === 'health_status: healthy' ? true : undefined),
    timeoutMs,
  );
  if ((await containerHealth(id)) === 'healthy') {
    event.catch(() => {});
    return;
  }
  await event;
}

/** Ids of every container, network and volume of the engine: what a test must leave as it found. */
export async function engineObjects(): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
  const list = async (args: string[]) => (await docker(args)).stdout.split('\n').filter(Boolean).sort();
  return {
    containers: await list(['ps', '--all', '--quiet', '--no-trunc']),
    networks: await list(['network', 'ls', '--quiet', '--no-trunc']),
    volumes: await list(['volume', 'ls', '--quiet']),
  };
}
