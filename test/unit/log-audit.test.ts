/**
 * The e2e log audit itself (test/support/log-audit.ts): it must catch a number
 * in clear, DTMF digits, server text and secrets, and let masked forms, ids
 * and unrelated digit runs pass; otherwise the suite-wide check proves nothing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditLog, auditNumbers, auditRegisteredLogs, auditSecrets, auditTexts, leaksOf } from '../support/log-audit.js';

const sensitive = { numbers: ['4567', '1001', '3349301234567'], secrets: ['change-me-ari-secret'], texts: ['my card number is'] };

describe('leaksOf', () => {
  it.each([
    ['{"numbers":{"caller":"1001"}}', 'number 1001'],
    ['{"reason":"rule \\"x\\" produced the number \\"4567\\": empty"}', 'number 4567'],
    ['{"requestUri":"sip:4567@127.0.0.1:5060"}', 'number 4567'],
    ['{"msg":"dialling 3349301234567"}', 'number 3349301234567'],
    ['{"packets":400,"caller":"1001"}', 'number 1001'],
    ['{"leg":"A","digit":"7"}', 'DTMF under "digit"'],
    ['{"serverText":"{\\"text\\":\\"hi\\"}"}', 'text under "serverText"'],
    ['{"message":"my card number is nine"}', 'text "my card numb…"'],
    ['{"err":"401 ws://h/ari/events?api_key=u:change-me-ari-secret"}', 'secret cha…'],
  ])('finds %s', (line, what) => {
    expect(leaksOf(line, sensitive, false)).toContain(what);
  });
  it.each([
    '{"numbers":{"caller":"**01","dialled":"*********4567"}}',
    '{"callId":"0a4567b1-4567-4567-8567-000000004567","time":"2026-12-01T10:45:67.100Z"}',
    '{"port":34567,"bytes":"145670","file":"/tmp/atp-Ab4567x/x.wav"}',
    '{"digit":"[hidden]","serverText":"[hidden]"}',
    '{"media":{"packets":1001,"bytes":4567},"framesSent":4567}',
  ])('lets %s pass', (line) => {
    expect(leaksOf(line, sensitive, false)).toEqual([]);
  });
  it('with LOG_PII lets personal data pass, never secrets', () => {
    expect(leaksOf('{"numbers":{"caller":"1001"},"digit":"7"}', sensitive, true)).toEqual([]);
    expect(leaksOf('{"x":"change-me-ari-secret"}', sensitive, true)).toEqual(['secret cha…']);
  });
});

describe('auditRegisteredLogs', () => {
  it('reads every registered log and reports each leak with its line, then starts afresh', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'atp-audit-')), 'service.log');
    writeFileSync(file, '{"msg":"ok"}\n{"numbers":{"callee":"14155550100"}}\n');
    auditLog({ file, name: 'service', showsPii: false });
    auditLog({ lines: () => ['{"token":"tk-123456"}'], name: 'child', showsPii: true });
    auditNumbers('14155550100&PJSIP');
    auditSecrets('tk-123456');
    auditTexts('never said');
    expect(auditRegisteredLogs().map(({ log, line, what }) => ({ log, line, what }))).toEqual([
      { log: 'service', line: 2, what: 'number 14155550100' },
      { log: 'child', line: 1, what: 'secret tk-…' },
    ]);
    expect(auditRegisteredLogs()).toEqual([]);
  });
});
