/**
 * Setup file of the e2e project: after each e2e file, every log its services
 * wrote is searched for personal data and secrets (log-audit.ts); a leak fails
 * that file. Registered first, this afterAll runs after the file's own, once
 * its services have stopped and flushed their logs.
 */
import { afterAll } from 'vitest';
import { auditRegisteredLogs, describeLeaks } from './log-audit.js';

afterAll(() => {
  const leaks = auditRegisteredLogs();
  if (leaks.length > 0) {
    throw new Error(`personal data or secrets in the logs (${leaks.length} finding(s); LOG_PII is off):\n${describeLeaks(leaks)}`);
  }
});
