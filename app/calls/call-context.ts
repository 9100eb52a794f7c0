/**
 * The last line of defence: nothing one call does may end the process or
 * another call. Every call's work runs inside its own async context
 * (AsyncLocalStorage), so an error nobody caught (a rejected promise nobody
 * awaited, an exception thrown from a socket's event handler) can still be
 * traced to its call: it is logged with the call's ids, that call's streams
 * are ended, and the process goes on. The call itself is left to its parties
 * (they hang up as usual), never torn down by a bug in the service.
 *
 * An error outside any call (the service's own start-up or shutdown code) is
 * logged; an exception there exits with code 1 (the supervisor restarts the
 * service, and calls survive restarts), a rejection does not.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';

export interface CallContext {
  callId: string;
  channelId: string;
  /** Ends this call's streams (an unexpected error happened in its code). */
  onUnexpectedError(error: unknown): void;
}

const storage = new AsyncLocalStorage<CallContext>();

/** Runs `work` (and everything it starts) as part of the call `context`. */
export function runInCall<T>(context: CallContext, work: () => T): T {
  return storage.run(context, work);
}

export function currentCall(): CallContext | undefined {
  return storage.getStore();
}

let installed: ((reason: unknown) => void)[] | undefined;

/** Installs the process-wide handlers once (serve); returns their removal (tests). */
export function installLastResortHandlers(logger: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  if (installed !== undefined) return () => {};
  const onRejection = (reason: unknown) => handle(logger, reason, 'rejection', exit);
  const onException = (error: unknown) => handle(logger, error, 'exception', exit);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  installed = [onRejection, onException];
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    installed = undefined;
  };
}

function handle(logger: Logger, error: unknown, kind: 'rejection' | 'exception', exit: (code: number) => void): void {
  const call = currentCall();
  if (call !== undefined) {
    logger.error(
      { err: error, callId: call.callId, channelId: call.channelId, kind },
      'unexpected error in a call: its streams end, the call and the service go on',
    );
    try {
      call.onUnexpectedError(error);
    } catch (nested) {
      logger.error({ err: nested, callId: call.callId }, 'ending the streams after an unexpected error failed');
    }
    return;
  }
  if (kind === 'rejection') {
    logger.error({ err: error, kind }, 'unexpected rejection outside any call; the service goes on');
    return;
  }
  logger.fatal({ err: error, kind }, 'unexpected exception outside any call; exiting (the supervisor restarts the service, calls stay up)');
  exit(1);
}
