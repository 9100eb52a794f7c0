/**
 * The local Asterisk test bed as the end-to-end tests see it: its fixed
 * addresses and credentials (asterisk/conf/), an ARI inspector that does not
 * go through the service's own ARI code, and the Asterisk log for failures.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const TESTBED_SCRIPT = fileURLToPath(new URL('../../asterisk/testbed.sh', import.meta.url));
export const ARI_URL = 'http://127.0.0.1:8088';
export const ASTERISK_HTTP_PORT = Number(new URL(ARI_URL).port);
export const ARI_USERNAME = 'transcription-proxy';
export const ARI_PASSWORD = 'change-me-ari-secret';
export const ASTERISK_SIP = '127.0.0.1:5060';
/** AMI (asterisk/conf/manager.conf), for the outbound registration's state. */
export const AMI_USERNAME = 'transcription-proxy';
export const AMI_SECRET = 'change-me-ami-secret';
export const AMI_PORT = 5038;

/** The Authorization header value for the test bed's ARI user. */
export const ARI_AUTHORIZATION = `Basic ${Buffer.from(`${ARI_USERNAME}:${ARI_PASSWORD}`).toString('base64')}`;

/** A plain ARI request, bypassing the service's own ARI code; JSON in, JSON (or undefined) out. */
export async function ariRequest<T = unknown>(method: 'GET' | 'POST' | 'DELETE', path: string): Promise<T> {
  const response = await fetch(`${ARI_URL}/ari${path}`, {
    method,
    headers: { Authorization: ARI_AUTHORIZATION },
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  const text = await response.text();
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

const ariGet = <T>(path: string) => ariRequest<T>('GET', path);

/** Sets a global dialplan variable (TESTBED_CALLEE: where the test bed's FreePBX stand-ins dial). */
export async function setDialplanGlobal(name: string, value: string): Promise<void> {
  await ariRequest('POST', `/asterisk/variable?variable=${encodeURIComponent(name)}&value=${encodeURIComponent(value)}`);
}

export const listChannels = () => ariGet<{ id: string; name: string }[]>('/channels');
export const listBridges = () => ariGet<{ id: string; channels: string[] }[]>('/bridges');

/**
 * Waits until Asterisk has no channel and no bridge left (teardown is asynchronous). When
 * something is left, it is described, then removed, so one failing test does not fail the
 * tests after it; and the test fails.
 */
export async function expectNothingLeftInAsterisk(timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [channels, bridges] = await Promise.all([listChannels(), listBridges()]);
    if (channels.length === 0 && bridges.length === 0) return;
    if (Date.now() > deadline) {
      const report = asteriskCli(['core show channels concise', ...channels.map((c) => `core show channel ${c.name}`)]);
      await Promise.allSettled([
        ...channels.map((c) => ariRequest('DELETE', `/channels/${encodeURIComponent(c.id)}`)),
        ...bridges.map((b) => ariRequest('DELETE', `/bridges/${encodeURIComponent(b.id)}`)),
      ]);
      throw new Error(
        `left behind in Asterisk (now removed): channels ${JSON.stringify(channels.map((c) => c.name))}, bridges ${JSON.stringify(bridges.map((b) => b.id))}\n${report}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Kills Asterisk the hard way (SIGKILL: no hangups, no StasisEnd, no BYE) and starts it again. */
export async function crashAndRestartAsterisk(): Promise<void> {
  const status = execFileSync('bash', [TESTBED_SCRIPT, 'status'], { encoding: 'utf8' });
  const pid = Number(/pid (\d+)/.exec(status)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no Asterisk pid in "${status.trim()}"`);
  process.kill(pid, 'SIGKILL');
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      break; // gone
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  execFileSync('bash', [TESTBED_SCRIPT, 'start'], { stdio: 'ignore' });
}

/** Asterisk's own answers to CLI commands, for a failing test's output (what ARI lists is a cache). */
export function asteriskCli(commands: string[]): string {
  return commands
    .map((command) => {
      try {
        return `--- asterisk -rx "${command}"\n${execFileSync('bash', [TESTBED_SCRIPT, 'cli', command], { encoding: 'utf8', timeout: 5000 })}`;
      } catch (error) {
        return `--- asterisk -rx "${command}" failed: ${(error as Error).message}`;
      }
    })
    .join('\n');
}

/** The last lines of Asterisk's log, for a failing test's output. */
export function asteriskLogTail(lines = 80): string {
  try {
    return execFileSync('bash', [TESTBED_SCRIPT, 'log', String(lines)], { encoding: 'utf8' });
  } catch (error) {
    return `(could not read the Asterisk log: ${(error as Error).message})`;
  }
}
