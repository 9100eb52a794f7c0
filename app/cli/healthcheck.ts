#!/usr/bin/env node
/**
 * The container health check (the image's HEALTHCHECK and the compose file's):
 * exits 0 when the running service's ops endpoint answers 200 on `/ready`, 1
 * otherwise, printing why. The endpoint's address, OPS_LISTEN, is read from the
 * same sources `serve` reads (./config.ini or `--config FILE`, .env, the
 * environment), so moving it needs no second setting. With OPS_LISTEN empty
 * (endpoint disabled) there is nothing to ask: exit 0. The image has no curl;
 * this is the whole probe.
 *   node dist/app/cli/healthcheck.js [--config FILE]
 */
import { loadConfig } from '../config/load-config.js';
import { ConfigError } from '../errors.js';
import { requestText } from '../net/http-request.js';

const TIMEOUT_MS = 3000;

/** http://HOST:PORT/ready for OPS_LISTEN; a wildcard address is asked on loopback. */
function readyUrl(listen: { host: string; port: number }): URL {
  const host = listen.host === '0.0.0.0' || listen.host === '' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${listen.port}/ready`);
}

async function main(): Promise<number> {
  const configIndex = process.argv.indexOf('--config');
  const configFile = configIndex >= 0 ? process.argv[configIndex + 1] : undefined;
  const { config } = loadConfig({ configFile });
  if (config.OPS_LISTEN === undefined) {
    process.stdout.write('ops endpoint disabled (OPS_LISTEN is empty): nothing to check\n');
    return 0;
  }
  if (config.OPS_LISTEN.port === 0)
    throw new Error('OPS_LISTEN has port 0 (any free port): the health check cannot know it; set a fixed port');
  const url = readyUrl(config.OPS_LISTEN);
  const response = await requestText(url, { timeoutMs: TIMEOUT_MS });
  const body = response.text.slice(0, 500);
  process.stdout.write(`${url.href}: ${response.status} ${body}\n`);
  return response.status === 200 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    const message = error instanceof ConfigError ? error.report() : error instanceof Error ? error.message + cause : String(error);
    process.stdout.write(`not ready: ${message}\n`);
    process.exit(1);
  },
);
