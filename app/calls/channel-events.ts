/**
 * Routes ARI events to the owner of each channel, and lets an owner wait for a
 * channel's event that has not happened yet. Waiting must start before the
 * request that creates the channel: its StasisStart can arrive before that
 * HTTP call returns (PROTOCOLS.md, "Verified on this machine").
 */
import type { AriEvent } from '../ari/ari-port.js';
import { AppError } from '../errors.js';

type Handler = (event: AriEvent) => void;

interface Waiter {
  type: AriEvent['type'];
  resolve: (event: AriEvent) => void;
  reject: (error: AppError) => void;
  timer: NodeJS.Timeout;
}

/** The channel an event is about: the dialled peer for Dial events, the transferer for ChannelTransfer. */
export function eventChannelId(event: AriEvent): string {
  if (event.type === 'Dial') return event.peer.id;
  if (event.type === 'ChannelTransfer') return event.referred_by.source_channel.id;
  return event.channel.id;
}

export class ChannelEvents {
  readonly #owners = new Map<string, Handler>();
  readonly #waiters = new Map<string, Waiter[]>();

  /** Sends every later event of `channelId` to `handler`; returns the release. */
  own(channelId: string, handler: Handler): () => void {
    this.#owners.set(channelId, handler);
    return () => {
      if (this.#owners.get(channelId) === handler) this.#owners.delete(channelId);
    };
  }

  isOwned(channelId: string): boolean {
    return this.#owners.has(channelId) || this.#waiters.has(channelId);
  }

  /** Resolves with the next `type` event of `channelId`; rejects after timeoutMs. */
  expect(channelId: string, type: AriEvent['type'], timeoutMs: number): Promise<AriEvent> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        type,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#removeWaiter(channelId, waiter);
          reject(new AppError('CHANNEL_EVENT_TIMEOUT', `no ${type} for channel ${channelId} within ${timeoutMs} ms`, { retryable: true }));
        }, timeoutMs),
      };
      const list = this.#waiters.get(channelId) ?? [];
      list.push(waiter);
      this.#waiters.set(channelId, list);
    });
  }

  /** Delivers an event; false when no one owns or waits for its channel. */
  route(event: AriEvent): boolean {
    const channelId = eventChannelId(event);
    let delivered = false;
    for (const waiter of [...(this.#waiters.get(channelId) ?? [])]) {
      if (waiter.type !== event.type) continue;
      this.#removeWaiter(channelId, waiter);
      clearTimeout(waiter.timer);
      waiter.resolve(event);
      delivered = true;
    }
    const owner = this.#owners.get(channelId);
    if (owner) {
      owner(event);
      delivered = true;
    }
    return delivered;
  }

  #removeWaiter(channelId: string, waiter: Waiter): void {
    const list = (this.#waiters.get(channelId) ?? []).filter((w) => w !== waiter);
    if (list.length === 0) this.#waiters.delete(channelId);
    else this.#waiters.set(channelId, list);
  }

  /** Rejects and forgets every wait on `channelId` (its owner is closing). */
  cancel(channelId: string): void {
    for (const waiter of this.#waiters.get(channelId) ?? []) {
      clearTimeout(waiter.timer);
      waiter.reject(new AppError('CHANNEL_EVENT_CANCELLED', `wait for ${waiter.type} of ${channelId} cancelled`));
    }
    this.#waiters.delete(channelId);
  }
}
