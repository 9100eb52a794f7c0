/**
 * The service as its own process (the built CLI, `serve`) inside a lab host,
 * next to that host's Asterisk cell (test/support/asterisk-cell.ts): ARI on
 * the namespace's 127.0.0.1, configured through environment variables as a
 * deployment would be. Ready when its operations endpoint (OPS_LISTEN, on the
 * namespace's 127.0.0.1:9464) answers `GET /ready` with 200.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliProcess } from './cli-process.js';
import { ARI_USERNAME } from './testbed.js';
import type { AsteriskCell } from './asterisk-cell.js';

export const ARI_APP = 'transcription-proxy';
const OPS_LISTEN = '127.0.0.1:9464';

export interface CellService {
  process: CliProcess;
  /** The JSON log lines so far, for a failing test's output. */
  logTail(lines?: number): string;
  /** `GET /ready` of its operations endpoint: the HTTP status (0 when nothing answers). */
  readyStatus(): number;
  /** Sends SIGTERM and resolves with the exit code. */
  terminate(): Promise<number | null>;
}

/** Starts `serve` in the cell's namespace; `settings` act as environment variables. */
export async function startCellService(
  cell: AsteriskCell,
  settings: Record<string, string>,
  readyTimeoutMs = 20_000,
): Promise<CellService> {
  const cwd = mkdtempSync(join(tmpdir(), `atp-${cell.name}-service-`));
  const env = {
    ARI_URL: 'http://127.0.0.1:8088',
    ARI_USERNAME,
    ARI_PASSWORD: cell.ariPassword,
    ARI_APP,
    OPS_LISTEN,
    LOG_LEVEL: 'debug',
    ...settings,
  };
  const cli = runCli(['serve'], env, cwd, cell.host);
  const service: CellService = {
    process: cli,
    logTail: (lines = 60) => [...cli.stdoutLines.slice(-lines), cli.stderr()].join('\n'),
    readyStatus() {
      try {
        const code = cell.host.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '2', `http://${OPS_LISTEN}/ready`], 5000);
        return Number(code) || 0;
      } catch {
        return 0; // curl exits non-zero when nothing listens
      }
    },
    async terminate() {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
      return cli.exited;
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  let exited = false;
  void cli.exited.then(() => {
    exited = true;
  });
  while (service.readyStatus() !== 200) {
    if (exited || Date.now() > deadline) {
      cli.child.kill('SIGKILL');
      throw new Error(`the service of ${cell.name} did not become ready\n${service.logTail(40)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return service;
}
