/**
 * Dependencies: the versions with published advisories that ari-client pulled
 * in (request 2.88, tough-cookie 2.5, form-data 2.3, cookiejar 1.3, uuid 3.4) are
 * replaced by overrides in package.json, and the lock must keep it so; and the
 * CI audit (scripts/audit.mjs) fails on any advisory not reviewed in
 * docs/security.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; name?: string }>;
};

function installed(name: string): { path: string; version: string; alias?: string }[] {
  return Object.entries(lock.packages)
    .filter(([path]) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`))
    .map(([path, entry]) => ({ path, version: entry.version ?? '', ...(entry.name !== undefined && { alias: entry.name }) }));
}

const atLeast = (version: string, minimum: string) => {
  const [a, b] = [version, minimum].map((text) => text.split('.').map(Number));
  for (let i = 0; i < 3; i++) if ((a![i] ?? 0) !== (b![i] ?? 0)) return (a![i] ?? 0) > (b![i] ?? 0);
  return true;
};

describe('the lock', () => {
  it('has no request 2.x: ari-client gets the maintained fork @cypress/request', () => {
    expect(installed('request').map((entry) => entry.alias)).toEqual(['@cypress/request']);
    for (const entry of installed('request')) expect(atLeast(entry.version, '3.0.0')).toBe(true);
  });
  it.each([
    ['tough-cookie', '4.1.3'],
    ['form-data', '4.0.4'],
    ['cookiejar', '2.1.4'],
    ['qs', '6.5.3'],
    ['uuid', '11.1.1'],
  ])('has %s at %s or later only', (name, minimum) => {
    expect(installed(name).length).toBeGreaterThan(0);
    for (const entry of installed(name)) expect({ ...entry, fixed: atLeast(entry.version, minimum) }).toMatchObject({ fixed: true });
  });
});

function audit(report: unknown, allowList: unknown[], env: Record<string, string> = {}): { code: number; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'atp-audit-'));
  writeFileSync(join(dir, 'report.json'), typeof report === 'string' ? report : JSON.stringify(report));
  writeFileSync(join(dir, 'allow.json'), JSON.stringify(allowList));
  try {
    const out = execFileSync(process.execPath, [join(root, 'scripts/audit.mjs')], {
      env: {
        PATH: process.env.PATH ?? '',
        AUDIT_REPORT_FILE: join(dir, 'report.json'),
        AUDIT_ALLOWLIST_FILE: join(dir, 'allow.json'),
        ...env,
      },
      encoding: 'utf8',
    });
    return { code: 0, out };
  } catch (error) {
    const failed = error as { status: number; stdout: string };
    return { code: failed.status, out: failed.stdout };
  }
}

const REPORT = {
  vulnerabilities: {
    shred: {
      name: 'shred',
      via: [
        {
          source: 1,
          name: 'shred',
          title: 'Something',
          url: 'https://github.com/advisories/GHSA-aaaa-bbbb-cccc',
          severity: 'moderate',
          range: '<1',
        },
      ],
    },
  },
};

describe('scripts/audit.mjs', () => {
  it('fails on an advisory that is not on the allow-list, naming it', () => {
    const { code, out } = audit(REPORT, []);
    expect(code).toBe(1);
    expect(out).toContain('GHSA-aaaa-bbbb-cccc shred');
    expect(out).toContain('NOT REVIEWED');
  });
  it('passes when every advisory is reviewed, and names stale entries', () => {
    const { code, out } = audit(REPORT, [
      { id: 'GHSA-aaaa-bbbb-cccc', package: 'shred' },
      { id: 'GHSA-dddd-eeee-ffff', package: 'old' },
    ]);
    expect(code).toBe(0);
    expect(out).toContain('GHSA-dddd-eeee-ffff (old) is on the allow-list but no longer reported');
  });
  it('reports an audit it could not do, failing only when AUDIT_REQUIRED=yes', () => {
    expect(audit({ message: '405 Method Not Allowed' }, [])).toMatchObject({ code: 0, out: expect.stringContaining('NOT DONE') });
    expect(audit({ message: '405 Method Not Allowed' }, [], { AUDIT_REQUIRED: 'yes' }).code).toBe(1);
  });
  it('the shipped allow-list is well-formed: each entry has an id, a package and why it does not reach us', () => {
    const list = JSON.parse(readFileSync(join(root, 'docs/security-allowlist.json'), 'utf8')) as Record<string, unknown>[];
    for (const entry of list)
      expect(entry).toMatchObject({ id: expect.stringMatching(/^GHSA-/), package: expect.any(String), why: expect.any(String) });
  });
});
