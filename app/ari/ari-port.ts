/**
 * The ARI operations and events the service uses, as an interface we own.
 * Only app/ari/ari-client-adapter.ts knows about `ari-client`; the call logic
 * depends on this, so it can be driven in memory and the library replaced.
 * Shapes follow Asterisk 22's ARI JSON (snake_case kept as Asterisk sends it).
 */

export interface AriCallerId {
  name: string;
  number: string;
}

export interface AriChannel {
  id: string;
  name: string;
  state: string;
  caller: AriCallerId;
  connected: AriCallerId;
  dialplan: { context: string; exten: string; priority: number; app_name?: string; app_data?: string };
  linkedid?: string;
  channelvars?: Record<string, string>;
}

export interface AriBridge {
  id: string;
  /** The name given at creation (ours: the ARI_APP that created it). */
  name: string;
  channels: string[];
}

/**
 * The event connection's state, as the service acts on it: `up` (again, after a loss:
 * `reconnected`; the events of the gap are gone), `down` (being re-established), and
 * `replaced`: another connection registered the same app, Asterisk sends it the app's
 * events from now on (ApplicationReplaced), and this one will never get them back.
 */
export type AriConnectionChange = { state: 'up'; reconnected: boolean } | { state: 'down' } | { state: 'replaced' };

export type AriEvent =
  | { type: 'StasisStart'; channel: AriChannel; args: string[] }
  | { type: 'StasisEnd'; channel: AriChannel }
  | { type: 'ChannelStateChange'; channel: AriChannel }
  | { type: 'ChannelHangupRequest'; channel: AriChannel; cause?: number }
  | { type: 'ChannelDestroyed'; channel: AriChannel; cause: number; cause_txt: string }
  | { type: 'Dial'; peer: AriChannel; caller?: AriChannel; dialstatus: string }
  | { type: 'ChannelVarset'; channel: AriChannel; variable: string; value: string }
  | { type: 'ChannelDtmfReceived'; channel: AriChannel; digit: string; duration_ms: number }
  /** A party put the call on hold (re-INVITE sendonly/inactive); Asterisk plays music on hold to the other. */
  | { type: 'ChannelHold'; channel: AriChannel; musicclass?: string }
  | { type: 'ChannelUnhold'; channel: AriChannel }
  /**
   * A SIP REFER on a channel with PJSIP_TRANSFER_HANDLING(ari-only) (docs/transfers.md): the app
   * does the transfer and reports its progress (transferProgress). The first one has no `state`;
   * each report comes back with its `state`.
   */
  | { type: 'ChannelTransfer'; state?: string; refer_to: AriReferTo; referred_by: AriReferredBy };

/** What a REFER asks for: a number (blind), or a dialog to replace (attended, with Replaces). */
export interface AriReferTo {
  requested_destination: {
    /** The Refer-To URI's user part. */
    destination?: string;
    /** Attended: the SIP Call-ID of the dialog to replace. */
    protocol_id?: string;
    additional_protocol_params?: { parameter_name: string; parameter_value: string }[];
  };
  /** Attended, when the dialog is on this Asterisk: its channel, to be replaced. */
  destination_channel?: AriChannel;
  /** ... the party bridged with it, who stays. */
  connected_channel?: AriChannel;
  bridge?: AriBridge;
}

export interface AriReferredBy {
  /** The channel the REFER arrived on: the transferer. */
  source_channel: AriChannel;
  /** The party bridged with it, who is transferred. */
  connected_channel?: AriChannel;
  bridge?: AriBridge;
}

/** A transfer's progress as reported to the transferer (a NOTIFY with a sipfrag: 100, 200, 603, 503). */
export type TransferProgress = 'channel_progress' | 'channel_answered' | 'channel_declined' | 'channel_unavailable';

export type AriEventType = AriEvent['type'];

/** One entry of `GET /ari/asterisk/modules`. */
export interface AriModule {
  /** As Asterisk lists it: `chan_rtp.so` for a loadable module, `http` for a built-in one. */
  name: string;
  description: string;
  use_count: number;
  /** "Running" for a module in use; a module that is not loaded is absent from the list. */
  status: string;
  support_level: string;
}

/**
 * Asterisk's own state, for `transcription-proxy check`. Kept apart from
 * AriPort so the call logic (and in-memory fakes of it) need not provide it.
 */
export interface AriAsteriskPort {
  /** The modules Asterisk has loaded (GET /ari/asterisk/modules). */
  listModules(): Promise<AriModule[]>;
}

/** Hangup reasons ARI accepts; each maps to a Q.850 cause and so to a SIP response. */
export type HangupReason = 'normal' | 'busy' | 'congestion' | 'no_answer' | 'timeout' | 'rejected' | 'unallocated' | 'failure';

/** A channel for AriPort.originate to dial. */
export interface OriginateRequest {
  channelId: string;
  endpoint: string;
  app: string;
  appArgs: string;
  callerId?: string;
  timeoutSeconds: number;
}

export interface ExternalMediaRequest {
  channelId: string;
  externalHost: string;
  format: 'slin' | 'slin16' | 'ulaw';
  encapsulation: 'rtp' | 'audiosocket' | 'none';
  transport: 'udp' | 'tcp' | 'websocket';
  data?: string;
  direction?: 'both' | 'in' | 'out';
  connectionType?: 'client' | 'server';
}

export interface AriPort {
  readonly app: string;
  /** Adds a listener for the app's events; returns its removal. */
  onEvent(listener: (event: AriEvent) => void): () => void;
  /** Adds a listener for changes of the event connection (ari-port's AriConnectionChange); returns its removal. */
  onConnection(listener: (change: AriConnectionChange) => void): () => void;
  /**
   * Opens the event connection, registering the app (its events flow from then on to the
   * listeners added before), and keeps it open until close(); resolves once it is first up.
   */
  openEvents(): Promise<void>;
  /**
   * Originates a channel (POST /channels): it is dialled at once and enters `app`
   * with `appArgs` when answered.
   */
  originate(request: OriginateRequest): Promise<AriChannel>;
  /** Subscribes this connection's app to an event source, e.g. `channel:ID`. */
  subscribe(eventSource: string): Promise<void>;
  /** Creates a channel in Stasis without dialling it (POST /channels/create). */
  createChannel(request: {
    channelId: string;
    endpoint: string;
    appArgs?: string;
    originator?: string;
    variables?: Record<string, string>;
  }): Promise<AriChannel>;
  dial(channelId: string, options: { caller?: string; timeoutSeconds: number }): Promise<void>;
  answer(channelId: string): Promise<void>;
  ring(channelId: string): Promise<void>;
  ringStop(channelId: string): Promise<void>;
  /** Hangs a channel up; a channel already gone is not an error. */
  hangup(channelId: string, reason?: HangupReason): Promise<void>;
  snoop(request: { channelId: string; snoopId: string; spy: 'in' | 'out' | 'both'; appArgs: string }): Promise<AriChannel>;
  externalMedia(request: ExternalMediaRequest): Promise<AriChannel>;
  /** A dynamic configuration object (res_pjsip TYPE NAME) as field → value; undefined when absent. */
  getConfigObject(type: string, name: string): Promise<Record<string, string> | undefined>;
  /** Creates or updates a dynamic configuration object (PUT /asterisk/config/dynamic/res_pjsip/TYPE/NAME). */
  putConfigObject(type: string, name: string, fields: Record<string, string>): Promise<void>;
  /** Deletes a dynamic configuration object; one already gone is not an error. */
  deleteConfigObject(type: string, name: string): Promise<void>;
  /** Sets a channel variable (its ChannelVarset event reaches subscribers of the channel). */
  setVariable(channelId: string, name: string, value: string): Promise<void>;
  /** A channel variable or dialplan function; undefined when unset or the channel is gone. */
  getVariable(channelId: string, name: string): Promise<string | undefined>;
  /** Creates a mixing bridge; one of that id existing already is not an error (a request asked again). */
  createBridge(bridgeId: string, name: string): Promise<void>;
  /** Adds a channel to a bridge (taking it out of the bridge it is in). */
  addToBridge(bridgeId: string, channelId: string): Promise<void>;
  /** Takes a channel out of a bridge; a channel or bridge already gone is not an error. */
  removeFromBridge(bridgeId: string, channelId: string): Promise<void>;
  /** Reports a transfer's progress to the transferer (POST /channels/{id}/transfer_progress, Asterisk 22.3+). */
  transferProgress(channelId: string, state: TransferProgress): Promise<void>;
  /** Plays `media` (e.g. `sound:pbx-transfer`) to one channel, also when it is in a bridge (only it hears it). */
  play(channelId: string, playbackId: string, media: string): Promise<void>;
  /** Stops a playback; one already over is not an error. */
  stopPlayback(playbackId: string): Promise<void>;
  /** Destroys a bridge; one already gone is not an error. */
  destroyBridge(bridgeId: string): Promise<void>;
  /** Hands a channel back to the dialplan (POST /channels/{id}/continue): Stasis() returns, SUCCESS. */
  continueInDialplan(channelId: string): Promise<void>;
  listChannels(): Promise<AriChannel[]>;
  listBridges(): Promise<AriBridge[]>;
  /** Ids of the channels in (subscribed to) this app (GET /applications/{app}); bridges created through ARI are not listed there. */
  listAppChannelIds(): Promise<string[]>;
}
