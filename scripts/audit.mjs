#!/usr/bin/env node
// The dependency audit of CI (.ci/run): `npm audit` of the production
// dependencies, judged against the reviewed allow-list docs/security-allowlist.json
// (docs/security.md says for each entry why the advisory does not reach us).
// Exit 1 when an advisory is not on the list; allow-list entries npm no longer
// reports are printed as stale. When npm's advisory service cannot be reached
// (some registries answer the audit request with an error), the audit is
// reported as NOT done and the exit code is 0, or 1 with AUDIT_REQUIRED=yes.
// AUDIT_REPORT_FILE=FILE judges a saved `npm audit --json` instead (tests).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const allowList = JSON.parse(readFileSync(process.env.AUDIT_ALLOWLIST_FILE ?? `${root}docs/security-allowlist.json`, 'utf8'));
const required = ['yes', 'true', '1'].includes((process.env.AUDIT_REQUIRED ?? '').toLowerCase());

function runAudit() {
  if (process.env.AUDIT_REPORT_FILE) return readFileSync(process.env.AUDIT_REPORT_FILE, 'utf8');
  try {
    return execFileSync('npm', ['audit', '--omit=dev', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    // npm audit exits non-zero when it finds something; its JSON is still on stdout.
    return error.stdout ?? '';
  }
}

let report;
try {
  report = JSON.parse(runAudit());
} catch {
  report = undefined;
}
if (report === undefined || report.vulnerabilities === undefined) {
  const why = report?.error?.summary || report?.message || 'no JSON report';
  console.log(`audit: NOT DONE: npm's advisory service did not answer (${String(why).split('\n')[0]})`);
  process.exit(required ? 1 : 0);
}

// Every advisory behind every vulnerable package, by its GHSA id.
const found = new Map();
for (const vulnerability of Object.values(report.vulnerabilities)) {
  for (const via of vulnerability.via ?? []) {
    if (typeof via !== 'object') continue;
    const id = /GHSA-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}/i.exec(via.url ?? '')?.[0] ?? String(via.source);
    found.set(id, { id, package: via.name, severity: via.severity, title: via.title, range: via.range });
  }
}
const allowed = new Map(allowList.map((entry) => [entry.id, entry]));
const unreviewed = [...found.values()].filter((advisory) => !allowed.has(advisory.id));
const stale = allowList.filter((entry) => !found.has(entry.id));

for (const advisory of found.values()) {
  const mark = allowed.has(advisory.id) ? 'allowed (docs/security.md)' : 'NOT REVIEWED';
  console.log(`audit: ${advisory.id} ${advisory.package} ${advisory.range ?? ''} ${advisory.severity}: ${advisory.title}: ${mark}`);
}
for (const entry of stale) console.log(`audit: ${entry.id} (${entry.package}) is on the allow-list but no longer reported: remove it`);
if (unreviewed.length > 0) {
  console.log(
    `audit: ${unreviewed.length} advisory(ies) not reviewed: fix them (npm update, overrides) or review them in docs/security.md`,
  );
  process.exit(1);
}
console.log(`audit: OK (${found.size} advisory(ies), all reviewed)`);
