/**
 * The ARI adapter's own contracts where they rest on what Asterisk answers: the
 * real Asterisk of the test bed, no call.
 */
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { AriClientAdapter } from '../../app/ari/ari-client-adapter.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, ariRequest, expectNothingLeftInAsterisk } from '../support/testbed.js';

let adapter: AriClientAdapter | undefined;
afterEach(async () => {
  await adapter?.close();
  adapter = undefined;
  await expectNothingLeftInAsterisk();
});

it('createBridge on an id that exists is success (a request asked again after a timeout): Asterisk answers 409 and keeps the bridge as it was', async () => {
  adapter = await AriClientAdapter.connect({
    url: new URL(ARI_URL),
    username: ARI_USERNAME,
    password: ARI_PASSWORD,
    app: 'transcription-proxy',
    logger: pino({ level: 'silent' }),
  });
  const bridgeId = `call-${randomUUID()}`;
  await adapter.createBridge(bridgeId, 'first');
  await expect(adapter.createBridge(bridgeId, 'second')).resolves.toBeUndefined();
  const bridges = await ariRequest<{ id: string; name: string }[]>('GET', '/bridges');
  expect(bridges.filter((b) => b.id === bridgeId).map((b) => b.name)).toEqual(['first']);
  await adapter.destroyBridge(bridgeId);
});
