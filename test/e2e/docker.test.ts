/**
 * Deployment as users do it, on a real Docker engine (started here when none
 * runs, and stopped again). The base images come from
 * scripts/docker-stand-ins.sh, since no registry is reachable from the test
 * machines; everything else is the repository's own Dockerfiles and
 * docker-compose.yml, unchanged.
 *
 * - The image: `--version`, a non-root user, STOPSIGNAL and HEALTHCHECK.
 * - The Voicegain proxy's own `docker run -v config.ini:/etc/config.ini
 *   --network=host` line, with the seed's config.ini (addresses pointed at the
 *   test bed), against the test bed's Asterisk: a call is transcribed, the
 *   caller's tone on the left channel, the callee's on the right.
 * - `docker compose --profile demo up`: the whole stack (its own Asterisk, the
 *   service, the receiver, the demo callee). It binds the standard ports, so
 *   the test bed is stopped meanwhile and started again afterwards, whatever
 *   happens. A SIPp call to 127.0.0.1:5060 becomes one WAV file per party,
 *   each with its own tone; `down` leaves no container, network or volume.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  SERVICE_IMAGE,
  composeCommand,
  docker,
  engineObjects,
  ensureBaseImages,
  ensureDockerEngine,
  run,
  waitForHealthy,
  waitForLogEntry,
} from '../support/docker.js';
import { startFakeVoicegain, type FakeVoicegain } from '../support/fake-voicegain.js';
import { auditLog, auditNumbers, auditSecrets } from '../support/log-audit.js';
import { closedTcpPort } from '../support/ports.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { expectFrameCountMatchesDuration, expectOwnTone } from '../support/stream-checks.js';
import { ARI_PASSWORD, ASTERISK_SIP, TESTBED_SCRIPT, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';

const CALLER_HZ = 440;
const CALLEE_HZ = 1330;
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let stopEngine: () => Promise<void> = async () => {};

beforeAll(async () => {
  stopEngine = await ensureDockerEngine();
  await ensureBaseImages();
  await docker(['build', '--tag', SERVICE_IMAGE, '.'], { timeoutMs: 600_000 });
}, 900_000);

afterAll(async () => {
  // Earlier builds of the project's images, untagged by this run's: no pile-up across runs.
  await docker(['image', 'prune', '--force', '--filter', 'label=org.opencontainers.image.title'], { allowFailure: true });
  await stopEngine();
});

/** A container's whole log, read now (before it is removed), for the log audit after the file (log-audit.ts). */
function auditContainerLog(container: string, name: string): void {
  const logs = spawnSync('docker', ['logs', container], { encoding: 'utf8' });
  const lines = `${logs.stdout ?? ''}\n${logs.stderr ?? ''}`.split('\n');
  auditLog({ name: `container ${name}`, lines: () => lines, showsPii: false });
}

/** The last lines a container wrote (stdout and stderr), for a failing test's output. */
function containerLog(container: string): string {
  const logs = spawnSync('docker', ['logs', '--tail', '80', container], { encoding: 'utf8' });
  return `${logs.stdout}${logs.stderr}`;
}

describe('the image', () => {
  it('prints its version, runs as a non-root user, stops on SIGTERM and checks its health', async () => {
    expect((await docker(['run', '--rm', SERVICE_IMAGE, '--version'])).stdout.trim()).toBe(VERSION);
    const onPath = await docker(['run', '--rm', '--entrypoint', 'transcription-proxy', SERVICE_IMAGE, 'check', '--help']);
    expect(onPath.stdout).toContain('Usage: transcription-proxy check');
    const { stdout } = await docker(['image', 'inspect', '--format', '{{json .Config}}', SERVICE_IMAGE]);
    const config = JSON.parse(stdout) as { User: string; StopSignal: string; Healthcheck?: { Test: string[] } };
    expect(config.User).toBe('node');
    expect(config.StopSignal).toBe('SIGTERM');
    expect(config.Healthcheck?.Test).toEqual(['CMD', 'node', 'dist/app/cli/healthcheck.js']);
    // Its node runs on jemalloc (the image's LD_PRELOAD), with background purging on.
    const allocator = await docker([
      'run',
      '--rm',
      '--entrypoint',
      'node',
      SERVICE_IMAGE,
      '-e',
      "const maps = require('fs').readFileSync('/proc/self/maps', 'utf8'); console.log(/libjemalloc\\.so\\.2$/m.test(maps), process.env.MALLOC_CONF)",
    ]);
    expect(allocator.stdout.trim()).toMatch(/^true .*background_thread:true/);
  });

  it("runs the seed's `docker run -v config.ini:/etc/config.ini --network=host` unchanged: a call is transcribed, also through `docker stop`", async () => {
    const seed = readFileSync(join(REPO_ROOT, 'test/fixtures/seed-config.ini'), 'utf8');
    const jwt = /^JWT_TOKEN=(.*)$/m.exec(seed)![1]!.trim();
    const voicegain: FakeVoicegain = await startFakeVoicegain({ token: jwt });
    const calleePort = await freeUdpPort();
    const opsPort = await closedTcpPort();
    // The seed's file as its users have it, with only the addresses changed to the test bed's,
    // its gateways (SIP_GATEWAY_IP, OUT_SIP_GATEWAY_IP: other hosts) left out, and the ARI login added.
    const ini = seed
      .split('\n')
      .map((line) => {
        if (/^(SIP_GATEWAY_IP|OUT_SIP_GATEWAY_IP)=/.test(line)) return `# (test) ${line}`;
        if (line.startsWith('FREESWITCH_HOST_DOMAIN=')) return 'FREESWITCH_HOST_DOMAIN=127.0.0.1';
        if (line.startsWith('DESTINATION_DOMAIN=')) return `DESTINATION_DOMAIN=127.0.0.1:${calleePort}`;
        if (line.startsWith('VG_GATEWAY_URL=')) return `VG_GATEWAY_URL=${voicegain.url.href}`;
        return line;
      })
      .concat([`ARI_PASSWORD=${ARI_PASSWORD}`, `OPS_LISTEN=127.0.0.1:${opsPort}`, ''])
      .join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'atp-docker-seed-'));
    writeFileSync(join(dir, 'config.ini'), ini);
    const name = `atp-e2e-seed-${process.pid}`;
    auditNumbers(/^DIALED_NUMBER_MAPPING=(.*)$/m.exec(seed)?.[1]);
    auditSecrets(ARI_PASSWORD, jwt);
    try {
      await docker(['run', '-d', '--name', name, '-v', `${join(dir, 'config.ini')}:/etc/config.ini`, '--network=host', SERVICE_IMAGE]);
      const loaded = await waitForLogEntry(name, (e) => e.msg === 'configuration loaded');
      expect(loaded.files).toEqual(['/app/config.ini']);
      await waitForLogEntry(name, (e) => e.msg === 'service ready');
      // The image's HEALTHCHECK found OPS_LISTEN in /etc/config.ini and /ready answered 200.
      await waitForHealthy(name);

      const callee = await startSipp({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
      const caller = await startSipp({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '1233', holdMs: 8000, target: ASTERISK_SIP });
      // `docker stop` in the middle of the call: SIGTERM reaches the service (process 1), which
      // drains: the call stays transcribed to its end, and only then does the container exit, with 0.
      await waitForLogEntry(name, (e) => e.msg === 'Voicegain sessions started');
      const stopped = docker(['stop', '--time', '90', name]);
      const draining = await waitForLogEntry(name, (e) => e.msg === 'stopping: draining');
      expect(draining).toMatchObject({ signal: 'SIGTERM', calls: 1 });
      const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
      expect(callerResult.exitCode, callerResult.stderr).toBe(0);
      expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
      expect(calleeResult.messages, 'DIALED_NUMBER_MAPPING=1233:4567').toContain(`INVITE sip:4567@127.0.0.1:${calleePort}`);

      const [audio] = await voicegain.waitForClosedAudio(1);
      expect(voicegain.requests.at(-1)!.problems).toEqual([]);
      expect(audio!.closeCode).toBe(1000);
      expectFrameCountMatchesDuration(audio!);
      expect(audio!.frameArrivalMs.length, 'frames: the whole call of 8 s, drain included').toBeGreaterThan(350);
      expectOwnTone(audio!.left(), 8000, CALLER_HZ, CALLEE_HZ, 'left channel (CALLER1)');
      expectOwnTone(audio!.right(), 8000, CALLEE_HZ, CALLER_HZ, 'right channel (CALLER2)');
      await stopped;
      const { stdout: exitCode } = await docker(['inspect', '--format', '{{.State.ExitCode}}', name]);
      expect(exitCode.trim(), 'exit code after the drain').toBe('0');
      await expectNothingLeftInAsterisk();
      const { stdout: log } = await docker(['logs', name]);
      expect(log).not.toContain(ARI_PASSWORD);
      expect(log).not.toContain(jwt);
    } catch (error) {
      console.log(`--- container log\n${containerLog(name)}\n--- Asterisk log\n${asteriskLogTail()}`);
      throw error;
    } finally {
      auditContainerLog(name, 'seed service');
      await docker(['rm', '--force', name], { allowFailure: true });
      await voicegain.close();
    }
  }, 180_000);
});

describe('docker compose', () => {
  it('up: the whole stack carries a call to the demo callee, one WAV file per party; down leaves nothing behind', async () => {
    const compose = await composeCommand();
    const recordings = mkdtempSync(join(tmpdir(), 'atp-compose-'));
    const project = `atp-e2e-${process.pid}`;
    // The demo stack's own settings (deploy/demo.ini), given as a file of one's own is
    // (TRANSCRIPTION_PROXY_CONFIG), with the ops endpoint on a free port: others' tests use 9464.
    const config = join(recordings, 'config.ini');
    writeFileSync(config, `${readFileSync(join(REPO_ROOT, 'deploy/demo.ini'), 'utf8')}OPS_LISTEN=127.0.0.1:${await closedTcpPort()}\n`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RECORDINGS_DIR: recordings,
      CALLEE_TONE_HZ: String(CALLEE_HZ),
      TRANSCRIPTION_PROXY_CONFIG: config,
    };
    const composeRun = (args: string[], timeoutMs = 120_000) =>
      run(compose[0]!, [...compose.slice(1), '--project-name', project, '--profile', 'demo', ...args], { env, timeoutMs });
    const containerOf = async (service: string) => (await composeRun(['ps', '--quiet', service])).stdout.trim();

    const before = await engineObjects();
    await composeRun(['build'], 900_000);
    // The stack binds SIP 5060 and ARI 8088 as the test bed does: stop it meanwhile.
    const testbedWasRunning = spawnSync('bash', [TESTBED_SCRIPT, 'status'], { stdio: 'ignore' }).status === 0;
    execFileSync('bash', [TESTBED_SCRIPT, 'stop'], { stdio: 'ignore' });
    const containers = new Map<string, string>();
    // The service's and the receiver's logs, read before `down` removes them; the demo's numbers must not be in them.
    auditNumbers(/^DIALED_NUMBER_MAPPING=(.*)$/m.exec(readFileSync(config, 'utf8'))?.[1]);
    const auditStack = () => {
      for (const name of ['transcription-proxy', 'receiver']) {
        const id = containers.get(name);
        if (id !== undefined && id !== '') auditContainerLog(id, name);
      }
    };
    let down = false;
    try {
      await composeRun(['up', '--detach']);
      for (const name of ['asterisk', 'transcription-proxy', 'receiver', 'demo-callee']) containers.set(name, await containerOf(name));
      const [asterisk, service, receiver] = ['asterisk', 'transcription-proxy', 'receiver'].map((name) => containers.get(name)!);
      const { stdout: stop } = await docker(['inspect', '--format', '{{.Config.StopTimeout}} {{.Config.StopSignal}}', service!]);
      expect(stop.trim(), 'stop_grace_period and STOPSIGNAL').toBe('75 SIGTERM');
      await Promise.all([waitForHealthy(asterisk!), waitForHealthy(service!), waitForHealthy(receiver!)]);
      await waitForLogEntry(service!, (e) => e.msg === 'service ready');

      const caller = await startSipp({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '1233', holdMs: 5000, target: ASTERISK_SIP });
      const callerResult = await caller.done;
      expect(callerResult.exitCode, `${callerResult.stderr}\n${callerResult.messages.slice(-2000)}`).toBe(0);

      const ended = await Promise.all(
        ['CALLER1', 'CALLER2'].map((label) => waitForLogEntry(receiver!, (e) => e.msg === 'stream ended' && e.label === label)),
      );
      for (const [entry, own, other] of [
        [ended[0]!, CALLER_HZ, CALLEE_HZ],
        [ended[1]!, CALLEE_HZ, CALLER_HZ],
      ] as const) {
        const file = String(entry.file);
        expect(file.startsWith('/recordings/'), file).toBe(true);
        const wav = readFileSync(join(recordings, file.slice('/recordings/'.length)));
        expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
        const sampleRate = wav.readUInt32LE(24);
        expect(sampleRate).toBe(16000);
        expect(wav.length - 44).toBe(Number(entry.bytes));
        expectOwnTone(wav.subarray(44), sampleRate, own, other, String(entry.label));
      }
      await waitForLogEntry(service!, (e) => e.msg === 'call ended');

      auditStack();
      await composeRun(['down'], 180_000);
      down = true;
      const after = await engineObjects();
      expect(after, 'containers, networks and volumes after down').toEqual(before);
    } catch (error) {
      for (const [name, id] of containers) console.log(`--- ${name}\n${containerLog(id)}`);
      throw error;
    } finally {
      if (!down) {
        auditStack();
        await composeRun(['down', '--volumes'], 180_000).catch((error: unknown) => console.log(error));
      }
      if (testbedWasRunning) execFileSync('bash', [TESTBED_SCRIPT, 'start'], { stdio: 'ignore' });
    }
  }, 900_000);
});
