/**
 * How a call's outcome is told: the Q.850 cause of a leg B that failed, the
 * hangup reason leg A then gets (and so its SIP response), and the
 * TRANSCRIPTION_PROXY_OUTCOME variable on leg A that the `call` command (and
 * any dialplan after Stasis()) reads. One place for the service and the CLI.
 */
import type { HangupReason } from '../ari/ari-port.js';

/**
 * Set on leg A for whoever watches the call (the `call` command): `answered` when B
 * answers, else, just before A is hung up, `busy`, `no-answer` or `failed`.
 */
export const OUTCOME_VARIABLE = 'TRANSCRIPTION_PROXY_OUTCOME';

export type CallOutcome = 'answered' | 'busy' | 'no-answer' | 'failed';

/** Dial outcomes (ARI Dial event `dialstatus`) that end the call, and how A is hung up for each. */
export const FAILED_DIAL: Readonly<Record<string, HangupReason>> = {
  BUSY: 'busy',
  NOANSWER: 'no_answer',
  CHANUNAVAIL: 'congestion',
  CONGESTION: 'congestion',
  CANCEL: 'normal',
};

/** Q.850 cause of a B leg that ended before answering → how A is hung up. */
export function reasonForCause(cause: number | undefined): HangupReason {
  switch (cause) {
    case 17:
      return 'busy';
    case 18:
    case 19:
      return 'no_answer';
    case 1:
      return 'unallocated';
    case 21:
      return 'rejected';
    default:
      return 'congestion';
  }
}

/** The outcome a hangup reason of leg A tells. */
export function outcomeOf(reason: HangupReason): Exclude<CallOutcome, 'answered'> {
  if (reason === 'busy') return 'busy';
  if (reason === 'no_answer') return 'no-answer';
  return 'failed';
}

/** The outcome of an agent channel that ended without one from the service, by its Q.850 cause. */
export function outcomeOfCause(cause: number): CallOutcome {
  if (cause === 17) return 'busy';
  if (cause === 18 || cause === 19) return 'no-answer';
  return 'failed';
}
