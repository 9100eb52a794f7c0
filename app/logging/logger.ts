/**
 * The one root logger: pino JSON lines on stdout. Calls and legs log through
 * child loggers carrying their ids. Secrets are redacted by path as a second
 * line of defence; the first is never passing them to a logger at all. Phone
 * numbers go only under the `numbers` key; every line (fields, child bindings
 * and message text) passes the personal-data policy of pii.ts: numbers masked,
 * digits and texts left out unless LOG_PII, URL credentials always redacted.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { redactUrlSecrets, sanitizeFields } from './pii.js';

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

export interface LoggerOptions {
  /** LOG_PII: numbers, DTMF digits and texts in clear (debugging only). */
  showPii?: boolean;
}

export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream, options: LoggerOptions = {}): Logger {
  const policy = { showPii: options.showPii ?? false };
  const root = pino(
    {
      level,
      base: { service: 'transcription-proxy' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        bindings: (bindings) => sanitizeFields(bindings, policy),
        log: (fields) => sanitizeFields(fields, policy),
      },
      // Errors are serialized by the policy above (message and stack included); not twice.
      serializers: { err: (value: unknown) => value },
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((arg: unknown) => (typeof arg === 'string' ? redactUrlSecrets(arg) : arg));
          method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
  // pino applies formatters.bindings to the root's bindings only: children's pass the policy here
  // (every child inherits this `child` from the root through its prototype).
  const originalChild = root.child;
  const sanitizedChild = function (this: Logger, bindings: Record<string, unknown>, childOptions?: Parameters<Logger['child']>[1]) {
    return originalChild.call(this, sanitizeFields(bindings, policy), childOptions);
  };
  root.child = sanitizedChild as Logger['child'];
  return root;
}
