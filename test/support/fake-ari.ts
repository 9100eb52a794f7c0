/**
 * An in-memory Asterisk behind our AriPort, for call-flow unit tests that run
 * in milliseconds: it keeps channels, bridges and variables, records every
 * request, and emits the events the real one does in the order it does
 * (StasisStart of a created channel after the request returned; a channel
 * can join a bridge only once it is in Stasis, else 422 as on the real
 * Asterisk). Tests drive the other side: a party answers, rings, hangs up;
 * the connection drops or is replaced. The real behaviour is proven by the
 * end-to-end tests; this is for the state machines.
 */
import { AppError } from '../../app/errors.js';
import type {
  AriBridge,
  AriChannel,
  AriConnectionChange,
  AriEvent,
  AriPort,
  ExternalMediaRequest,
  OriginateRequest,
  HangupReason,
  TransferProgress,
} from '../../app/ari/ari-port.js';
import type { AudioHandler, TapTransport } from '../../app/media/tap-transport.js';
import type { TapTransportFactory } from '../../app/media/tap-transports.js';
import type { CallStreams, CallStreamsFactory } from '../../app/transcription/call-streams.js';
import type { StreamIdentity } from '../../app/transcription/stream-messages.js';

export interface FakeRequest {
  op: string;
  args: Record<string, unknown>;
}

interface FakeChannel extends AriChannel {
  inApp: boolean;
  variables: Map<string, string>;
}

const HANGUP_CAUSES: Record<HangupReason, number> = {
  normal: 16,
  busy: 17,
  congestion: 34,
  no_answer: 19,
  timeout: 19,
  rejected: 21,
  unallocated: 1,
  failure: 38,
};

/** Lets pending promise callbacks and timers of 0 ms run (events are delivered on a later tick). */
export const settle = async (rounds = 5): Promise<void> => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
};

export class FakeAri implements AriPort {
  readonly app: string;
  readonly requests: FakeRequest[] = [];
  readonly channels = new Map<string, FakeChannel>();
  readonly bridges = new Map<string, AriBridge>();
  /** Requests of these operations fail with this error (e.g. to model a lost connection). */
  readonly failing = new Map<string, Error>();
  /**
   * The next N requests of these operations take effect but answer too late: the adapter's
   * timeout error (an overloaded Asterisk). createBridge, answer, ringStop, addToBridge.
   */
  readonly answeringLate = new Map<string, number>();
  readonly #eventListeners = new Set<(event: AriEvent) => void>();
  readonly #connectionListeners = new Set<(change: AriConnectionChange) => void>();
  #eventsOpen = false;
  #uniqueId = 0;

  constructor(app = 'transcription-proxy') {
    this.app = app;
  }

  // --- what the test does: Asterisk's side -------------------------------------------------

  /** A caller entering Stasis(app,args) from the dialplan. */
  callerEnters(
    options: { id?: string; number?: string; exten?: string; args?: string[]; state?: string; variables?: Record<string, string> } = {},
  ): FakeChannel {
    const channel = this.#addChannel(options.id ?? `${1700000000 + ++this.#uniqueId}.${this.#uniqueId}`, {
      state: options.state ?? 'Ring',
      caller: { name: '', number: options.number ?? '1001' },
      exten: options.exten ?? '4567',
      app_data: [this.app, ...(options.args ?? [])].join(','),
    });
    channel.inApp = true;
    for (const [name, value] of Object.entries(options.variables ?? {})) channel.variables.set(name, value);
    this.#emitLater({ type: 'StasisStart', channel: this.#snapshot(channel), args: options.args ?? [] });
    return channel;
  }

  /** Leg B rings, then answers (Dial events as ARI sends them). */
  calleeRings(channelId: string): void {
    const channel = this.#get(channelId);
    channel.state = 'Ringing';
    this.#emit({ type: 'Dial', peer: this.#snapshot(channel), dialstatus: 'RINGING' });
  }

  calleeAnswers(channelId: string): void {
    const channel = this.#get(channelId);
    channel.state = 'Up';
    this.#emit({ type: 'ChannelStateChange', channel: this.#snapshot(channel) });
    this.#emit({ type: 'Dial', peer: this.#snapshot(channel), dialstatus: 'ANSWER' });
  }

  /** A party hangs up (BYE): the channel leaves its bridge and is destroyed. */
  partyHangsUp(channelId: string, cause = 16): void {
    this.#destroy(channelId, cause);
  }

  /** A party presses a key (ARI reports it once released). */
  pressDigit(channelId: string, digit: string): void {
    this.#emit({ type: 'ChannelDtmfReceived', channel: this.#snapshot(this.#get(channelId)), digit, duration_ms: 100 });
  }

  /** A party's phone puts the call on hold, or takes it off hold (re-INVITE), as Asterisk reports it. */
  partyHolds(channelId: string): void {
    this.#emit({ type: 'ChannelHold', channel: this.#snapshot(this.#get(channelId)), musicclass: 'default' });
  }

  partyUnholds(channelId: string): void {
    this.#emit({ type: 'ChannelUnhold', channel: this.#snapshot(this.#get(channelId)) });
  }

  /**
   * A party's phone sends REFER (PJSIP_TRANSFER_HANDLING ari-only): blind to `destination`, or,
   * with `replaces`, attended, replacing that channel's dialog (as Asterisk fills the event).
   */
  partyRefers(channelId: string, destination: string, replaces?: string): void {
    const bridgeOf = (id: string) => [...this.bridges.values()].find((bridge) => bridge.channels.includes(id));
    const side = (id: string) => {
      const bridge = bridgeOf(id);
      const peer = bridge?.channels.find((other) => other !== id);
      return {
        ...(peer !== undefined && this.channels.has(peer) && { connected_channel: this.#snapshot(this.#get(peer)) }),
        ...(bridge !== undefined && { bridge: { ...bridge, channels: [...bridge.channels] } }),
      };
    };
    this.#emit({
      type: 'ChannelTransfer',
      refer_to: {
        requested_destination: { destination, ...(replaces !== undefined && { protocol_id: `sip-call-id-of-${replaces}` }) },
        ...(replaces !== undefined &&
          this.channels.has(replaces) && { destination_channel: this.#snapshot(this.#get(replaces)), ...side(replaces) }),
      },
      referred_by: { source_channel: this.#snapshot(this.#get(channelId)), ...side(channelId) },
    });
  }

  /** What the app reported of each channel's transfer, in order. */
  transferStates(channelId: string): TransferProgress[] {
    return this.ops('transferProgress')
      .filter((request) => request.args.channelId === channelId)
      .map((request) => request.args.state as TransferProgress);
  }

  /** The dialplan (a feature code, an AMI Setvar) sets a variable on a channel. */
  dialplanSets(channelId: string, name: string, value: string): void {
    const channel = this.#get(channelId);
    channel.variables.set(name, value);
    this.#emit({ type: 'ChannelVarset', channel: this.#snapshot(channel), variable: name, value });
  }

  /** Asterisk loses a channel without telling anyone (events lost in an outage). */
  vanish(channelId: string): void {
    const channel = this.channels.get(channelId);
    if (channel === undefined) return;
    this.channels.delete(channelId);
    for (const bridge of this.bridges.values()) bridge.channels = bridge.channels.filter((id) => id !== channelId);
  }

  dropConnection(): void {
    this.#connection({ state: 'down' });
  }

  restoreConnection(): void {
    this.#connection({ state: 'up', reconnected: true });
  }

  replaceApp(): void {
    this.#connection({ state: 'replaced' });
  }

  /** Puts state into the fake as another instance would have left it. */
  seedChannel(
    id: string,
    options: { state?: string; inApp?: boolean; number?: string; variables?: Record<string, string>; appData?: string } = {},
  ): FakeChannel {
    const channel = this.#addChannel(id, {
      state: options.state ?? 'Up',
      caller: { name: '', number: options.number ?? '1001' },
      exten: '4567',
      app_data: options.appData ?? this.app,
    });
    channel.inApp = options.inApp ?? true;
    for (const [name, value] of Object.entries(options.variables ?? {})) channel.variables.set(name, value);
    return channel;
  }

  seedBridge(id: string, channels: string[], name = this.app): AriBridge {
    const bridge = { id, name, channels: [...channels] };
    this.bridges.set(id, bridge);
    return bridge;
  }

  ops(op: string): FakeRequest[] {
    return this.requests.filter((request) => request.op === op);
  }

  // --- AriPort -------------------------------------------------------------------------

  onEvent(listener: (event: AriEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  onConnection(listener: (change: AriConnectionChange) => void): () => void {
    this.#connectionListeners.add(listener);
    return () => this.#connectionListeners.delete(listener);
  }

  async openEvents(): Promise<void> {
    this.#record('openEvents', {});
    this.#eventsOpen = true;
    this.#connection({ state: 'up', reconnected: false });
  }

  async originate(request: OriginateRequest): Promise<AriChannel> {
    this.#record('originate', request);
    return this.#snapshot(this.#addChannel(request.channelId, { state: 'Down', exten: 's', app_data: '' }));
  }

  async subscribe(eventSource: string): Promise<void> {
    this.#record('subscribe', { eventSource });
  }

  async createChannel(request: {
    channelId: string;
    endpoint: string;
    appArgs?: string;
    originator?: string;
    variables?: Record<string, string>;
  }): Promise<AriChannel> {
    this.#record('createChannel', request);
    const channel = this.#addChannel(request.channelId, { state: 'Down', exten: 's', app_data: `${this.app},${request.appArgs ?? ''}` });
    this.#enterLater(channel, [request.appArgs ?? '']);
    return this.#snapshot(channel);
  }

  async dial(channelId: string, options: { caller?: string; timeoutSeconds: number }): Promise<void> {
    this.#record('dial', { channelId, ...options });
    this.#get(channelId);
  }

  async answer(channelId: string): Promise<void> {
    this.#record('answer', { channelId });
    this.#get(channelId).state = 'Up';
    this.#lateIf('answer');
  }

  async ring(channelId: string): Promise<void> {
    this.#record('ring', { channelId });
  }

  async ringStop(channelId: string): Promise<void> {
    this.#record('ringStop', { channelId });
    this.#lateIf('ringStop');
  }

  async hangup(channelId: string, reason: HangupReason = 'normal'): Promise<void> {
    this.#record('hangup', { channelId, reason });
    this.#destroy(channelId, HANGUP_CAUSES[reason]);
  }

  async snoop(request: { channelId: string; snoopId: string; spy: 'in' | 'out' | 'both'; appArgs: string }): Promise<AriChannel> {
    this.#record('snoop', request);
    this.#get(request.channelId);
    const channel = this.#addChannel(request.snoopId, { state: 'Up', exten: '', app_data: '' });
    this.#enterLater(channel, [request.appArgs]);
    return this.#snapshot(channel);
  }

  async externalMedia(request: ExternalMediaRequest): Promise<AriChannel> {
    this.#record('externalMedia', { ...request });
    const channel = this.#addChannel(request.channelId, { state: 'Up', exten: '', app_data: '' });
    channel.channelvars = { UNICASTRTP_LOCAL_ADDRESS: '127.0.0.1', UNICASTRTP_LOCAL_PORT: '10000' };
    this.#enterLater(channel, []);
    return this.#snapshot(channel);
  }

  async getConfigObject(): Promise<Record<string, string> | undefined> {
    return undefined;
  }

  async putConfigObject(type: string, name: string, fields: Record<string, string>): Promise<void> {
    this.#record('putConfigObject', { type, name, fields });
  }

  async deleteConfigObject(type: string, name: string): Promise<void> {
    this.#record('deleteConfigObject', { type, name });
  }

  async setVariable(channelId: string, name: string, value: string): Promise<void> {
    this.#record('setVariable', { channelId, name, value });
    const channel = this.#get(channelId);
    channel.variables.set(name, value);
    this.#emit({ type: 'ChannelVarset', channel: this.#snapshot(channel), variable: name, value });
  }

  async getVariable(channelId: string, name: string): Promise<string | undefined> {
    this.#record('getVariable', { channelId, name });
    return this.channels.get(channelId)?.variables.get(name);
  }

  async createBridge(bridgeId: string, name: string): Promise<void> {
    this.#record('createBridge', { bridgeId, name });
    // As the adapter: an existing bridge of that id is success (Asterisk's 409, nothing updated).
    if (!this.bridges.has(bridgeId)) this.bridges.set(bridgeId, { id: bridgeId, name, channels: [] });
    this.#lateIf('createBridge');
  }

  async addToBridge(bridgeId: string, channelId: string): Promise<void> {
    this.#record('addToBridge', { bridgeId, channelId });
    const bridge = this.bridges.get(bridgeId);
    if (bridge === undefined) throw new Error('Bridge not found');
    const channel = this.#get(channelId);
    if (!channel.inApp) throw new Error('Channel not in Stasis application');
    for (const other of this.bridges.values()) other.channels = other.channels.filter((id) => id !== channelId);
    bridge.channels.push(channelId);
    this.#lateIf('addToBridge');
  }

  async removeFromBridge(bridgeId: string, channelId: string): Promise<void> {
    this.#record('removeFromBridge', { bridgeId, channelId });
    const bridge = this.bridges.get(bridgeId);
    if (bridge !== undefined) bridge.channels = bridge.channels.filter((id) => id !== channelId);
  }

  async play(channelId: string, playbackId: string, media: string): Promise<void> {
    this.#record('play', { channelId, playbackId, media });
    this.#get(channelId);
  }

  async stopPlayback(playbackId: string): Promise<void> {
    this.#record('stopPlayback', { playbackId });
  }

  async transferProgress(channelId: string, state: TransferProgress): Promise<void> {
    this.#record('transferProgress', { channelId, state });
    const channel = this.#get(channelId);
    this.#emitLater({
      type: 'ChannelTransfer',
      state,
      refer_to: { requested_destination: {} },
      referred_by: { source_channel: this.#snapshot(channel) },
    });
  }

  async destroyBridge(bridgeId: string): Promise<void> {
    this.#record('destroyBridge', { bridgeId });
    this.bridges.delete(bridgeId);
  }

  async continueInDialplan(channelId: string): Promise<void> {
    this.#record('continueInDialplan', { channelId });
    const channel = this.#get(channelId);
    channel.inApp = false;
    this.#emitLater({ type: 'StasisEnd', channel: this.#snapshot(channel) });
  }

  async listChannels(): Promise<AriChannel[]> {
    this.#record('listChannels', {});
    this.#failIf('listChannels');
    return [...this.channels.values()].map((channel) => this.#snapshot(channel));
  }

  async listBridges(): Promise<AriBridge[]> {
    this.#record('listBridges', {});
    this.#failIf('listBridges');
    return [...this.bridges.values()].map((bridge) => ({ ...bridge, channels: [...bridge.channels] }));
  }

  async listAppChannelIds(): Promise<string[]> {
    this.#record('listAppChannelIds', {});
    this.#failIf('listAppChannelIds');
    return [...this.channels.values()].filter((channel) => channel.inApp).map((channel) => channel.id);
  }

  // --- internals -------------------------------------------------------------------------

  #record(op: string, args: object): void {
    this.requests.push({ op, args: { ...args } as Record<string, unknown> });
    this.#failIf(op);
  }

  #lateIf(op: string): void {
    const late = this.answeringLate.get(op) ?? 0;
    if (late === 0) return;
    this.answeringLate.set(op, late - 1);
    throw new AppError('ARI_REQUEST_FAILED', `ARI ${op}: no answer within 10000 ms`, { retryable: true });
  }

  #failIf(op: string): void {
    const error = this.failing.get(op);
    if (error !== undefined) throw error;
  }

  #addChannel(
    id: string,
    fields: { state: string; caller?: { name: string; number: string }; exten: string; app_data: string },
  ): FakeChannel {
    const channel: FakeChannel = {
      id,
      name: `PJSIP/fake-${id}`,
      state: fields.state,
      caller: fields.caller ?? { name: '', number: '' },
      connected: { name: '', number: '' },
      dialplan: { context: 'from-test', exten: fields.exten, priority: 1, app_name: 'Stasis', app_data: fields.app_data },
      linkedid: id,
      inApp: false,
      variables: new Map(),
    };
    this.channels.set(id, channel);
    return channel;
  }

  #get(id: string): FakeChannel {
    const channel = this.channels.get(id);
    if (channel === undefined) throw new Error('Channel not found');
    return channel;
  }

  #enterLater(channel: FakeChannel, args: string[]): void {
    setImmediate(() => {
      if (!this.channels.has(channel.id)) return;
      channel.inApp = true;
      this.#emit({ type: 'StasisStart', channel: this.#snapshot(channel), args });
    });
  }

  #destroy(channelId: string, cause: number): void {
    const channel = this.channels.get(channelId);
    if (channel === undefined) return;
    this.vanish(channelId);
    const snapshot = this.#snapshot(channel);
    this.#emitLater({ type: 'ChannelHangupRequest', channel: snapshot, cause });
    if (channel.inApp) this.#emitLater({ type: 'StasisEnd', channel: snapshot });
    this.#emitLater({ type: 'ChannelDestroyed', channel: snapshot, cause, cause_txt: `cause ${cause}` });
  }

  #snapshot(channel: FakeChannel): AriChannel {
    const { inApp: _inApp, variables: _variables, ...plain } = channel;
    return structuredClone(plain);
  }

  #emit(event: AriEvent): void {
    if (!this.#eventsOpen) return;
    for (const listener of this.#eventListeners) listener(event);
  }

  #emitLater(event: AriEvent): void {
    setImmediate(() => this.#emit(event));
  }

  #connection(change: AriConnectionChange): void {
    if (change.state !== 'up') this.#eventsOpen = false;
    else this.#eventsOpen = true;
    for (const listener of this.#connectionListeners) listener(change);
  }
}

/** A tap transport that delivers what the test pushes. */
export class FakeTapTransport implements TapTransport {
  readonly kind = 'rtp';
  readonly request = { externalHost: '127.0.0.1:40000', format: 'slin16', encapsulation: 'rtp', transport: 'udp' } as const;
  #handler: AudioHandler | undefined;
  closed = false;

  async attach(): Promise<void> {}

  onAudio(handler: AudioHandler): void {
    this.#handler = handler;
  }

  /** A frame, with the losses the transport would report before it (undefined: cannot say). */
  deliver(frame: Buffer, lostBefore?: number): void {
    if (!this.closed) this.#handler?.(frame, lostBefore);
  }

  stats(): Record<string, number> {
    return {};
  }

  get holdsSocket(): boolean {
    return !this.closed;
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeTransports implements TapTransportFactory {
  readonly opened: FakeTapTransport[] = [];

  async open(): Promise<FakeTapTransport> {
    const transport = new FakeTapTransport();
    this.opened.push(transport);
    return transport;
  }
}

/** One call's streams as the fake records them. */
export interface FakeCallStreams extends CallStreams {
  identities: [StreamIdentity, StreamIdentity];
  resumedAtMs: number | undefined;
  opened: boolean;
  frames: Record<'A' | 'B', number>;
  /** Frames of each leg that were all zeros (a paused call's silence). */
  silentFrames: Record<'A' | 'B', number>;
  events: Record<string, unknown>[];
  digits: string[];
  /** Party changes, in order (participant()). */
  participants: { leg: 'A' | 'B'; identity: StreamIdentity; reason: string }[];
  /** Frames of each leg since its last party change (its party's audio). */
  framesSinceParticipant: Record<'A' | 'B', number>;
  /** What came with each leg's frames as lost before them (the transport's count, as the session passed it on). */
  lostBefore: Record<'A' | 'B', (number | undefined)[]>;
  finishedWith: string | undefined;
}

export class FakeStreams {
  readonly created: FakeCallStreams[] = [];

  readonly factory: CallStreamsFactory = (a, b, options) => {
    const streams: FakeCallStreams = {
      identities: [a, b],
      resumedAtMs: options.resumedAtMs,
      opened: false,
      frames: { A: 0, B: 0 },
      silentFrames: { A: 0, B: 0 },
      events: [],
      digits: [],
      participants: [],
      framesSinceParticipant: { A: 0, B: 0 },
      lostBefore: { A: [], B: [] },
      finishedWith: undefined,
      holdsSockets: false,
      provider: 'websocket',
      open() {
        streams.opened = true;
        options.onConnected?.();
      },
      audio(leg, frame, _receivedAtMs, lostBefore) {
        streams.lostBefore[leg].push(lostBefore);
        streams.frames[leg]++;
        streams.framesSinceParticipant[leg]++;
        if (frame.every((byte) => byte === 0)) streams.silentFrames[leg]++;
      },
      dtmf(_leg, digit) {
        streams.digits.push(digit);
      },
      event(message) {
        streams.events.push(message);
        return true;
      },
      participant(leg, identity, reason) {
        streams.participants.push({ leg, identity, reason });
        streams.identities[leg === 'A' ? 0 : 1] = identity;
        streams.framesSinceParticipant[leg] = 0;
      },
      summaries() {
        return [];
      },
      async finish(reason) {
        streams.finishedWith ??= reason;
      },
    };
    this.created.push(streams);
    return streams;
  };
}
