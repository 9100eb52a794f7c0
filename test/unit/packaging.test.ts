/**
 * How the service is shipped outside Docker: the npm package (`npm pack`,
 * then `npm install -g` of the tarball into an empty prefix, as on a clean
 * machine: its `bin` must run), and the systemd unit for running beside
 * FreePBX (`systemd-analyze verify`, and the settings the drain on stop
 * depends on). Needs dist/ (`npm test` builds it first).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNIT = join(ROOT, 'deploy/transcription-proxy.service');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
/** How main.js runs: node with the service's flags (app/cli/main.ts explains them). */
const SHEBANG = '#!/usr/bin/env -S node --max-semi-space-size=1';
const work = mkdtempSync(join(tmpdir(), 'atp-packaging-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm package', () => {
  it('packs only what runs and documents the service; installed globally, its bin answers --version and check --help', async () => {
    // --ignore-scripts: dist/ is already built (prepack would build it again).
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
    const paths = packed.files.map((file) => file.path);
    expect(paths).toContain('dist/app/cli/main.js');
    expect(paths).toContain('deploy/transcription-proxy.service');
    expect(paths).toContain('asterisk/freepbx/extensions_custom.conf');
    expect(paths.filter((path) => /^(app|test|scripts)\/|\.ts$|\.map$/.test(path))).toEqual([]);

    const prefix = join(work, 'prefix');
    await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', join(work, packed.filename)], {
      timeout: 150_000,
    });
    const bin = join(prefix, 'bin', 'transcription-proxy');
    expect((await run(bin, ['--version'])).stdout.trim()).toBe(manifest.version);
    const help = await run(bin, ['check', '--help']);
    expect(help.stdout).toContain('Usage: transcription-proxy check');
    const installed = JSON.parse(readFileSync(join(prefix, 'lib/node_modules', manifest.name, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(installed.version).toBe(manifest.version);
    // The installed bin runs node with the service's flags (its first line).
    expect(readFileSync(join(prefix, 'lib/node_modules', manifest.name, 'dist/app/cli/main.js'), 'utf8').split('\n', 1)[0]).toBe(SHEBANG);
  }, 180_000);
});

describe("node's flags for the service", () => {
  it("are on main.js's first line, and every way of starting the service starts it through that line", () => {
    expect(readFileSync(join(ROOT, 'app/cli/main.ts'), 'utf8').split('\n', 1)[0]).toBe(SHEBANG);
    expect(readFileSync(join(ROOT, 'dist/app/cli/main.js'), 'utf8').split('\n', 1)[0]).toBe(SHEBANG);
    expect(statSync(join(ROOT, 'dist/app/cli/main.js')).mode & 0o111, 'main.js is executable').toBe(0o111);
    // Docker runs the file itself (`node main.js` would drop the flags); so do npm start and systemd (the bin).
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^ENTRYPOINT \["\/app\/dist\/app\/cli\/main\.js"\]$/m);
    expect(readFileSync(join(ROOT, 'scripts/local.sh'), 'utf8')).toMatch(/^\s*dist\/app\/cli\/main\.js serve /m);
    expect(readFileSync(UNIT, 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/env transcription-proxy serve /m);
  });
});

describe('systemd unit', () => {
  const settings = new Map<string, string[]>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) settings.set(match[1]!, [...(settings.get(match[1]!) ?? []), match[2]!]);
  }
  const setting = (name: string) => settings.get(name)?.at(-1);

  it('passes systemd-analyze verify without a word', async () => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', UNIT]);
    expect(stdout + stderr).toBe('');
  });

  it("preloads jemalloc with the image's settings (the memory of ended calls goes back to the system)", () => {
    const environment = new Map(
      (settings.get('Environment') ?? []).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(environment.get('LD_PRELOAD')).toBe('libjemalloc.so.2');
    expect(environment.get('MALLOC_CONF')).toMatch(/(^|,)background_thread:true(,|$)/);
    // The image's ENV (one instruction, continued over lines) says the same.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\s*\\\n\s*/g, ' ');
    const env = /^ENV LD_PRELOAD=(\S+) MALLOC_CONF=(\S+)$/m.exec(dockerfile);
    expect(env?.slice(1)).toEqual([environment.get('LD_PRELOAD'), environment.get('MALLOC_CONF')]);
    expect(dockerfile).toMatch(/apt-get install .*libjemalloc2/);
  });

  it('restarts always, drains on stop (SIGTERM to the service alone, more time than DRAIN_TIMEOUT_MS) and logs to the journal', () => {
    expect(setting('ExecStart')).toMatch(/ transcription-proxy serve --config \/etc\/transcription-proxy\/config\.ini$/);
    expect(setting('Restart')).toBe('always');
    expect(setting('RestartPreventExitStatus'), 'a configuration error (exit 2) is not retried').toBe('2');
    expect(setting('KillMode')).toBe('mixed');
    expect(setting('KillSignal')).toBe('SIGTERM');
    expect(Number(setting('TimeoutStopSec'))).toBeGreaterThan(60);
    expect(setting('StandardOutput')).toBe('journal');
    expect(setting('User')).toBe('transcription-proxy');
  });
});
