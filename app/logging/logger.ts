/**
 * The one root logger: pino JSON lines on stdout. Calls and legs log through
 * child loggers carrying their ids. Secrets are redacted by path as a second
 * line of defence; the first is never passing them to a logger at all. Phone
 * numbers go only under the `numbers` key, so a deployment can redact it.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'ARI_PASSWORD',
  '*.ARI_PASSWORD',
  'STREAM_TOKEN',
  '*.STREAM_TOKEN',
  'JWT_TOKEN',
  '*.JWT_TOKEN',
  'OUTBOUND_CALLS_SECRET',
  '*.OUTBOUND_CALLS_SECRET',
  'AMI_SECRET',
  '*.AMI_SECRET',
  'secret',
  '*.secret',
];

export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'transcription-proxy' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
