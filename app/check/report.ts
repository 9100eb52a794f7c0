/**
 * Turns the results of `transcription-proxy check` into the text it prints and
 * its verdict. Pure: no I/O, so every wording and the exit code are unit
 * tested. Secret values are masked here as a second line of defence; the first
 * is never putting them into a result.
 */
import { redactUrlSecrets } from '../logging/pii.js';

export type CheckStatus = 'ok' | 'fail' | 'skipped';

export interface CheckResult {
  /** Short name of what was checked: "configuration", "ARI", "modules", "stream". */
  name: string;
  status: CheckStatus;
  /** One line: what was found, or why it failed. */
  summary: string;
  /** Further lines printed under the summary (one per missing module, the fix). */
  details?: readonly string[];
}

export interface CheckReport {
  text: string;
  /** 0 when every check passed; 1 when any failed or could not run. */
  exitCode: 0 | 1;
}

const LABEL: Readonly<Record<CheckStatus, string>> = { ok: 'OK', fail: 'FAIL', skipped: 'SKIP' };

/** Secrets shorter than this are not masked: replacing every "ab" would garble the report. */
const MIN_MASKED_SECRET_LENGTH = 4;

function mask(text: string, secrets: readonly string[]): string {
  // Credentials in a URL (STREAM_URL?token=...) are redacted as in the logs.
  let out = redactUrlSecrets(text);
  for (const secret of secrets) {
    if (secret.length >= MIN_MASKED_SECRET_LENGTH) out = out.split(secret).join('[secret]');
  }
  return out;
}

export function formatReport(results: readonly CheckResult[], options: { title?: string; secrets?: readonly string[] } = {}): CheckReport {
  const secrets = options.secrets ?? [];
  const nameWidth = Math.max(0, ...results.map((result) => result.name.length));
  const lines: string[] = [];
  if (options.title !== undefined) lines.push(options.title);
  for (const result of results) {
    lines.push(`${LABEL[result.status].padEnd(4)}  ${result.name.padEnd(nameWidth)}  ${result.summary}`);
    for (const detail of result.details ?? []) lines.push(`${' '.repeat(nameWidth + 8)}${detail}`);
  }
  const failed = results.filter((result) => result.status === 'fail').length;
  const skipped = results.filter((result) => result.status === 'skipped').length;
  const passed = results.length > 0 && failed === 0 && skipped === 0;
  lines.push('');
  if (passed) {
    lines.push(`All ${results.length} checks passed.`);
  } else {
    const notRun = skipped > 0 ? `, ${skipped} could not run` : '';
    lines.push(`${failed} of ${results.length} checks failed${notRun}.`);
  }
  return { text: `${lines.map((line) => mask(line, secrets)).join('\n')}\n`, exitCode: passed ? 0 : 1 };
}
