/**
 * Loads ari-client without two of the things it drags in and that we never
 * use, which together were a sixth of the service's idle memory:
 *
 * - `request` (deprecated, with ajv, sshpk, tough-cookie, mime-db, psl and
 *   some 150 more files): ari-client calls it once, in connect(), only to see
 *   whether the host answers before swagger-client loads the API. A plain
 *   http(s) GET with the same callback stands in for it.
 * - its own copy of `ws` (6.x): only its start() uses it, for the event
 *   websocket, and we never call start() (ari-event-socket.ts has our own).
 *   It gets the service's `ws`, so no second copy is loaded.
 *
 * - `lodash` from its full, readable source (540 kB, kept by V8 as a 1 MB
 *   two-byte string): ari-client gets the same build of the same version
 *   minified (`lodash/lodash.min.js`, 73 kB), about 2 MB less memory.
 *
 * All three are put in Node's CommonJS module cache under the paths ari-client
 * would load them from, before ari-client is first required; nothing else
 * resolves those paths. Everything ari-client does for us (swagger-client and
 * its API model, bluebird, lodash) is loaded as the library ships it.
 */
import { createRequire, Module } from 'node:module';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { dirname } from 'node:path';
import type * as AriClientModule from 'ari-client';

const require = createRequire(import.meta.url);

/** ari-client's one use of `request`: `request(url, (err) => ...)`, err with its `code` when the host cannot be reached. */
export function reachabilityCheck(url: string, callback: (error: NodeJS.ErrnoException | null, response?: IncomingMessage) => void): void {
  const get = url.startsWith('https:') ? httpsGet : httpGet;
  let done = false;
  const finish = (error: NodeJS.ErrnoException | null, response?: IncomingMessage) => {
    if (done) return;
    done = true;
    callback(error, response);
  };
  get(url, (response) => {
    response.resume();
    finish(null, response);
  }).on('error', (error) => finish(error));
}

function prime(path: string, exports: unknown): void {
  if (require.cache[path] !== undefined) return;
  const module = new Module(path);
  module.filename = path;
  module.loaded = true;
  module.exports = exports;
  require.cache[path] = module;
}

/** A path ari-client's require() would load `name` from, or undefined where it is not installed. */
function resolveFrom(directory: string, name: string): string | undefined {
  try {
    return require.resolve(name, { paths: [directory] });
  } catch {
    return undefined;
  }
}

let loaded: typeof AriClientModule | undefined;

/** The ari-client module, loaded once with the stand-ins above. */
export function loadAriClient(): typeof AriClientModule {
  if (loaded !== undefined) return loaded;
  const libDirectory = dirname(require.resolve('ari-client/lib/client.js'));
  const requestPath = resolveFrom(libDirectory, 'request');
  if (requestPath !== undefined) prime(requestPath, reachabilityCheck);
  const wsPath = resolveFrom(libDirectory, 'ws');
  const ourWs = require.resolve('ws');
  if (wsPath !== undefined && wsPath !== ourWs) prime(wsPath, require('ws'));
  const lodashPath = resolveFrom(libDirectory, 'lodash');
  if (lodashPath !== undefined) prime(lodashPath, require(require.resolve('lodash/lodash.min.js', { paths: [libDirectory] })));
  loaded = require('ari-client') as typeof AriClientModule;
  return loaded;
}
