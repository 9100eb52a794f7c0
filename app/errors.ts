/**
 * Errors of the service. Each has a stable `code` that tests and the CLI match
 * on (never the message), and says whether retrying could help. Exit codes are
 * decided in one place only: app/cli/main.ts.
 */

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'ARI_UNREACHABLE'
  | 'ARI_REQUEST_FAILED'
  | 'RTP_PACKET_INVALID'
  | 'AUDIOSOCKET_FRAME_INVALID'
  | 'MEDIA_PORTS_EXHAUSTED'
  | 'DIAL_TARGET_INVALID'
  | 'CHANNEL_EVENT_TIMEOUT'
  | 'CHANNEL_EVENT_CANCELLED'
  | 'USAGE_INVALID'
  | 'OPS_UNREACHABLE'
  | 'CALL_NOT_FOUND'
  | 'TWILIO_MESSAGE_INVALID';

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** One problem with one configuration key, as found in one source. */
export interface ConfigProblem {
  key: string;
  /** Where the offending value came from: a file path, "environment", "command line" or "defaults". */
  source: string;
  message: string;
}

export class ConfigError extends AppError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.length} problem(s)`);
    this.name = 'ConfigError';
    this.problems = problems;
  }

  /** Every problem on its own line, each naming its key and source. */
  report(): string {
    return this.problems.map((p) => `  ${p.key} (${p.source}): ${p.message}`).join('\n');
  }
}
