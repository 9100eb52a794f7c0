/**
 * The injection table for the values that issue 13 added at the service's
 * boundaries (the routing tables are in inbound-plan.test.ts and
 * toll-fraud.test.ts): the call's data read from leg A (PASS_HEADERS values and
 * the TRANSCRIPTION_META hash), the pause variable TRANSCRIPTION_PAUSE, and the
 * operations API's call id and text. Each hostile value is refused or inert, never
 * spliced anywhere, and never quoted back in what is logged.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checkMeta, metaKeys } from '../../app/calls/call-meta.js';
import { PAUSE_VARIABLE } from '../../app/calls/call-session.js';
import { StasisApp } from '../../app/calls/stasis-app.js';
import { loadConfig } from '../../app/config/load-config.js';
import { addOperationsRoutes, MAX_TEXT_CHARS, parseText } from '../../app/ops/call-control.js';
import { createMetrics } from '../../app/ops/metrics.js';
import { OpsServer } from '../../app/ops/ops-server.js';
import { FakeAri, FakeStreams, FakeTransports, settle } from '../support/fake-ari.js';

const HOSTILE = ['a\r\nX-Evil: 1', 'a\u0000b', '${SHELL(id)}', 'a\u2028b', 'x'.repeat(300), '4567&PJSIP/evil', "'); DROP TABLE calls;--"];

describe('call data (PASS_HEADERS values, TRANSCRIPTION_META)', () => {
  it.each(['bad key', 'a)b', '${EXTEN}', 'a\r\nb', '', '9lives', 'k'.repeat(65)])('refuses the hash key %j', (key) => {
    expect(metaKeys(key).keys).toEqual([]);
  });
  it.each(HOSTILE)('a value %j either passes as printable text of bounded length or is refused, never quoted', (value) => {
    const { meta, refused } = checkMeta([['customer', value]]);
    if (meta.customer !== undefined) {
      expect(meta.customer).toBe(value);
      expect(value.length).toBeLessThanOrEqual(256);
      // eslint-disable-next-line no-control-regex
      expect(value).not.toMatch(/[\u0000-\u001f\u2028\u2029]/);
    } else {
      expect(refused).toEqual([{ key: 'customer', why: expect.any(String) }]);
      expect(refused[0]!.why).not.toContain(value.slice(0, 8));
    }
  });
});

const logger = pino({ level: 'silent' });
const config = loadConfig({ env: { ARI_PASSWORD: 'x', DESTINATION_DOMAIN: '127.0.0.1:5070' }, cwd: '/nonexistent' }).config;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function answeredCall() {
  const ari = new FakeAri();
  const streams = new FakeStreams();
  const metrics = createMetrics(
    { activeCalls: () => 0, liveStreams: () => [], callsAdopted: () => 0, ariReconnects: () => 0 },
    { defaultMetrics: false },
  );
  const app = new StasisApp({
    ari,
    config,
    logger,
    transports: new FakeTransports(),
    createStreams: streams.factory,
    metrics,
    reconcileIntervalMs: 3_600_000,
  });
  await app.start();
  cleanups.push(() => app.stop());
  const legA = ari.callerEnters({ args: ['number=4567'] });
  await settle();
  const legB = ari.ops('createChannel')[0]!.args.channelId as string;
  ari.calleeAnswers(legB);
  await settle(20);
  return { ari, app, legA: legA.id, legB };
}

describe('the pause variable TRANSCRIPTION_PAUSE', () => {
  it.each(HOSTILE.concat(['2', 'pause', ' 1 x']))('%j set on a leg does not pause, and is written nowhere', async (value) => {
    const { ari, app, legB } = await answeredCall();
    const before = ari.ops('setVariable').length;
    ari.dialplanSets(legB, PAUSE_VARIABLE, value);
    await settle();
    expect(app.calls[0]!.paused).toBe(false);
    for (const op of ari.ops('setVariable').slice(before)) expect(JSON.stringify(op.args)).not.toContain(value);
  });
});

describe('the operations API call id', () => {
  it.each([
    '..%2f..%2fetc',
    '%00',
    'x;rm',
    '0B0E2F6C-9D7A-4A8E-9A43-2F4A0C6D1E55',
    `${'a'.repeat(8)}-${'a'.repeat(4)}-${'a'.repeat(4)}-${'a'.repeat(4)}-${'a'.repeat(13)}`,
    '*',
  ])('POST /calls/%s/pause is refused (400) and pauses nothing', async (callId) => {
    const { app } = await answeredCall();
    const ops = await OpsServer.listen({ host: '127.0.0.1', port: 0, readiness: () => ({ ready: true }), logger });
    cleanups.push(() => ops.close());
    addOperationsRoutes(
      ops,
      app,
      createMetrics(
        { activeCalls: () => 0, liveStreams: () => [], callsAdopted: () => 0, ariReconnects: () => 0 },
        { defaultMetrics: false },
      ).registry,
    );
    const response = await fetch(`http://127.0.0.1:${ops.port}/calls/${callId}/pause`, { method: 'POST' });
    expect(response.status).toBe(400);
    expect(app.calls[0]!.paused).toBe(false);
  });
});

describe('the operations API text (POST /calls/CALL_ID/text)', () => {
  it.each(HOSTILE.concat(['x'.repeat(MAX_TEXT_CHARS + 1), '\u001b[2J', 'a\u007fb', '']))(
    '%j is refused, or passes unchanged as a JSON string value',
    (value) => {
      for (const [body, type] of [
        [JSON.stringify({ text: value }), 'application/json'],
        [value, 'text/plain'],
      ] as const) {
        const parsed = parseText(body, type);
        if (parsed.ok) {
          expect(parsed.text).toBe(value);
          expect(value.length).toBeLessThanOrEqual(MAX_TEXT_CHARS);
          // eslint-disable-next-line no-control-regex
          expect(value).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/);
          // On the wire it is one JSON string: it cannot add a field or end the message.
          expect(JSON.parse(JSON.stringify({ event: 'text', text: parsed.text }))).toEqual({ event: 'text', text: value });
        } else {
          expect(parsed.why).not.toContain(value.slice(0, 8) || '\u0000');
        }
      }
    },
  );
  it.each(['{"text":1}', '{"text":["a"]}', '{"text":{"toString":"x"}}', 'null', '{"__proto__":{"text":"x"}}'])(
    'a JSON body %j without a string text is refused',
    (body) => {
      expect(parseText(body, 'application/json')).toMatchObject({ ok: false });
    },
  );
});
