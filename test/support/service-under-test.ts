/**
 * Starts the real service in the test process, configured like a user would
 * (through loadConfig, from environment-style values), pointed at the test
 * bed's Asterisk. Its JSON log goes to a file that a failing test can print,
 * and that the log audit (log-audit.ts) searches for personal data and secrets.
 */
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../app/config/load-config.js';
import { createLogger } from '../../app/logging/logger.js';
import { startService, type RunningService } from '../../app/service.js';
import { CONFIG_KEYS, isSecretKey, type Config, type ConfigKey } from '../../app/config/keys.js';
import { auditLog, auditNumbers, auditSecrets } from './log-audit.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME } from './testbed.js';

export interface ServiceUnderTest {
  service: RunningService;
  logFile: string;
  logTail(lines?: number): string;
  /** Throws unless the service has no call and holds no socket of one (check after each call). */
  expectIdle(): void;
  stop(): Promise<void>;
}

/** The configuration's secrets (passwords, tokens, the values of extra handshake headers). */
export function secretValues(config: Config): string[] {
  return (Object.keys(CONFIG_KEYS) as ConfigKey[]).filter(isSecretKey).flatMap((name) => {
    const value: unknown = config[name];
    if (typeof value === 'string') return [value];
    if (typeof value === 'object' && value !== null) return Object.values(value).filter((item): item is string => typeof item === 'string');
    return [];
  });
}

/** `settings` act as environment variables; `ini`, when given, is the service's ./config.ini (rules). */
export async function startServiceUnderTest(settings: Record<string, string>, ini?: string): Promise<ServiceUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'atp-service-'));
  if (ini !== undefined) writeFileSync(join(dir, 'config.ini'), ini);
  const logFile = join(dir, 'service.log');
  const { config } = loadConfig({
    cwd: dir,
    env: { ARI_URL, ARI_USERNAME, ARI_PASSWORD, LOG_LEVEL: 'debug', ...settings },
    required: ['ARI_PASSWORD'],
    requireRoute: true,
  });
  auditLog({ file: logFile, name: `service ${logFile}`, showsPii: config.LOG_PII });
  auditSecrets(...secretValues(config));
  auditNumbers(...[...config.DIALED_NUMBER_MAPPING].flat());
  const logStream = createWriteStream(logFile);
  const logger = createLogger(config.LOG_LEVEL, logStream, { showPii: config.LOG_PII });
  const service = await startService(config, logger);
  return {
    service,
    logFile,
    logTail: (lines = 60) => readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n'),
    expectIdle() {
      if (service.app.activeCalls !== 0) throw new Error(`${service.app.activeCalls} call(s) still active in the service`);
      if (service.app.holdsSockets) throw new Error('the service still holds a socket of a call');
    },
    async stop() {
      await service.stop();
      await new Promise((resolve) => logStream.end(resolve));
    },
  };
}
