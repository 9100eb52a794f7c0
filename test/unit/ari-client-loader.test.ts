import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadAriClient, reachabilityCheck } from '../../app/ari/ari-client-loader.js';

const require = createRequire(import.meta.url);

function check(url: string): Promise<{ code: string | undefined; status: number | undefined }> {
  return new Promise((resolve) => {
    reachabilityCheck(url, (error, response) => resolve({ code: error?.code, status: response?.statusCode }));
  });
}

describe('reachabilityCheck', () => {
  it('answers without an error when the host answers, whatever the status', async () => {
    const server = createServer((_request, response) => {
      response.writeHead(401).end('no');
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      expect(await check(`http://127.0.0.1:${port}/ari/api-docs/resources.json`)).toEqual({ code: undefined, status: 401 });
    } finally {
      server.close();
    }
  });

  it('gives ECONNREFUSED, the code ari-client looks for, when nothing listens', async () => {
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    expect((await check(`http://127.0.0.1:${port}/`)).code).toBe('ECONNREFUSED');
  });
});

describe('loadAriClient', () => {
  it('loads ari-client once, with the stand-ins in place of request, its own ws and full lodash', () => {
    const client = loadAriClient();
    expect(typeof client.connect).toBe('function');
    expect(loadAriClient()).toBe(client);
    const libDirectory = require.resolve('ari-client/lib/client.js').replace(/client\.js$/, '');
    const from = (name: string) => require.resolve(name, { paths: [libDirectory] });
    expect(require.cache[from('request')]?.exports).toBe(reachabilityCheck);
    expect(require.cache[from('ws')]?.exports).toBe(require('ws'));
    expect(require.cache[from('lodash')]?.exports).toBe(require(require.resolve('lodash/lodash.min.js', { paths: [libDirectory] })));
  });
});
