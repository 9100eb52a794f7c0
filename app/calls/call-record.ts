/**
 * What a call needs to outlive the process that set it up, written on leg A
 * (and, once it is answered, on leg B too) as one channel variable
 * (TRANSCRIPTION_PROXY_CALL, JSON) while the call is set up: the call id, the
 * Stasis arguments it came with, its legs and the call bridge, and what the
 * stream metadata carries. A transfer changes a leg's channel: the record is
 * written again on the legs the call has then, and names both, so a bridge
 * whose channels are no longer the ones the call began with is still known. Asterisk keeps it with the
 * channel, so a new instance of the service (after a stop, a crash, or while an
 * older one still runs) reads it back and carries on with the same call id and
 * labels. Pure encoding and validation: a record that does not parse is no
 * record at all, never half of one.
 */
import { MEDIA_TRANSPORTS, type MediaTransportKind } from '../media/tap-transport.js';
import { checkMeta } from './call-meta.js';

export const CALL_RECORD_VARIABLE = 'TRANSCRIPTION_PROXY_CALL';

/** Where the call had got to when the record was last written. */
export type CallRecordState = 'routing' | 'dialling' | 'answered';

export interface CallRecord {
  version: 1;
  callId: string;
  state: CallRecordState;
  /** The Stasis arguments leg A entered the app with (to route it again if it never got further). */
  args: string[];
  /** Leg B's channel id, once it was created. */
  legB?: string;
  direction?: 'inbound' | 'outbound';
  transport?: MediaTransportKind;
  /** The number leg B was dialled as (the metadata's `callee`). */
  callee?: string;
  linkedId?: string;
  /** Stream labels of leg A and leg B, as configured when the call was answered. */
  labels?: [string, string];
  /** When leg B answered and streaming began (ms since the epoch): stream positions count from here. */
  answeredAt?: number;
  /** The call's own data the metadata carries (call-meta.ts: checked when read, checked again here). */
  meta?: Record<string, string>;
  /** Leg A's channel id (after a transfer, not the channel the call entered the app on). */
  legA?: string;
  /** The number of leg A's party, when a transfer changed it (the metadata's `caller`). */
  caller?: string;
  /** Which party each leg carries, when a transfer changed one: [A, B], 1 for the first (StreamIdentity.sequence). */
  sequences?: [number, number];
  /** The legs that have the call on hold. */
  onHold?: ('A' | 'B')[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CHANNEL_ID = /^[A-Za-z0-9._-]{1,150}$/;
const LABEL = /^[A-Za-z0-9_.-]{1,64}$/;
/** Bounds what a record may hold, whoever wrote the variable. */
const MAX_RECORD_CHARS = 8192;

export function encodeCallRecord(record: CallRecord): string {
  return JSON.stringify({ ...record, version: 1 });
}

/** The record in a variable's value; undefined when absent, not JSON, or not a valid record. */
export function decodeCallRecord(text: string | undefined): CallRecord | undefined {
  if (text === undefined || text === '' || text.length > MAX_RECORD_CHARS) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const r = value as Record<string, unknown>;
  if (r.version !== 1 || typeof r.callId !== 'string' || !UUID.test(r.callId)) return undefined;
  if (r.state !== 'routing' && r.state !== 'dialling' && r.state !== 'answered') return undefined;
  if (!Array.isArray(r.args) || !r.args.every((arg) => typeof arg === 'string' && arg.length <= 512)) return undefined;
  const record: CallRecord = { version: 1, callId: r.callId, state: r.state, args: r.args as string[] };
  if (r.legB !== undefined) {
    if (typeof r.legB !== 'string' || !CHANNEL_ID.test(r.legB)) return undefined;
    record.legB = r.legB;
  }
  if (r.direction !== undefined) {
    if (r.direction !== 'inbound' && r.direction !== 'outbound') return undefined;
    record.direction = r.direction;
  }
  if (r.transport !== undefined) {
    const transport = MEDIA_TRANSPORTS.find((kind) => kind === r.transport);
    if (transport === undefined) return undefined;
    record.transport = transport;
  }
  if (r.callee !== undefined) {
    if (typeof r.callee !== 'string' || r.callee.length > 128) return undefined;
    record.callee = r.callee;
  }
  if (r.linkedId !== undefined) {
    if (typeof r.linkedId !== 'string' || !CHANNEL_ID.test(r.linkedId)) return undefined;
    record.linkedId = r.linkedId;
  }
  if (r.labels !== undefined) {
    const labels = r.labels;
    if (!Array.isArray(labels) || labels.length !== 2 || !labels.every((label) => typeof label === 'string' && LABEL.test(label)))
      return undefined;
    record.labels = [labels[0] as string, labels[1] as string];
  }
  if (r.legA !== undefined) {
    if (typeof r.legA !== 'string' || !CHANNEL_ID.test(r.legA)) return undefined;
    record.legA = r.legA;
  }
  if (r.caller !== undefined) {
    if (typeof r.caller !== 'string' || r.caller.length > 128) return undefined;
    record.caller = r.caller;
  }
  if (r.sequences !== undefined) {
    const sequences = r.sequences;
    if (!Array.isArray(sequences) || sequences.length !== 2 || !sequences.every((n) => Number.isSafeInteger(n) && n >= 1 && n <= 10_000))
      return undefined;
    record.sequences = [sequences[0] as number, sequences[1] as number];
  }
  if (r.onHold !== undefined) {
    if (!Array.isArray(r.onHold) || r.onHold.length > 2 || !r.onHold.every((leg) => leg === 'A' || leg === 'B')) return undefined;
    record.onHold = [...new Set(r.onHold as ('A' | 'B')[])];
  }
  if (r.meta !== undefined) {
    if (typeof r.meta !== 'object' || r.meta === null || Array.isArray(r.meta)) return undefined;
    const checked = checkMeta(Object.entries(r.meta).map(([key, value]) => [key, typeof value === 'string' ? value : undefined] as const));
    if (checked.refused.length > 0) return undefined;
    record.meta = checked.meta;
  }
  if (r.answeredAt !== undefined) {
    if (typeof r.answeredAt !== 'number' || !Number.isSafeInteger(r.answeredAt) || r.answeredAt <= 0) return undefined;
    record.answeredAt = r.answeredAt;
  }
  return record;
}
