/**
 * The body we POST to Voicegain's `/asr/transcribe/async` to open one call's
 * transcription, and the reading of its answer. This is the one place the body
 * is built: the seed (a closed FreeSWITCH proxy) never published its request,
 * so every field below is reconstructed from Voicegain's public SDK, which is
 * generated from their OpenAPI spec, and from their examples. Each field names
 * its source:
 *   [SDK x.py]  voicegain/python-sdk @ cded732660d6c06fd407640903bd847486751c09, voicegain_speech/models/x.py
 *   [EX-WS]     voicegain/platform @ 4d65c112342a0e8f98d021a9c5485cf060ee8c25,
 *               new-examples/real-time/rt-websocket-ws-client-2chn-segment-ffmpeg.py l.46-92
 *               (the published example closest to ours: two REAL-TIME sessions, external results websocket)
 *   [EX-2CHN]   same commit, new-examples/real-time/rt-websocket-2chn-ffmpeg.py l.84-95
 *   [SEED]      test/fixtures/seed-config.ini, and the seed's results log in
 *               voicegain/platform freeswitch/transcription-proxy/README.md §10
 * The fixture test/fixtures/voicegain/request-example.json is [EX-WS] as JSON;
 * its README lists where the examples and the spec disagree. Where they do, we
 * follow the spec: `channels` (not `channel`), JSON booleans (not 'true'), and
 * the JWT only in `Authorization: Bearer`, never in the body. Pure, no I/O.
 */

export interface VoicegainSettings {
  /** VG_GATEWAY_URL, e.g. https://api.voicegain.ai/v1/asr/transcribe/async. Used by the caller, not in the body. */
  gatewayUrl: URL;
  /** WEBSOCKET_SERVER (wss:// or ws://): where Voicegain connects to send the results. */
  resultsUrl: URL;
  /** AUTH_NAME: the name of an Auth Configuration in the Voicegain Console. */
  authConf?: string;
  /** LEFT_CHANNEL_NAME */
  leftName: string;
  /** RIGHT_CHANNEL_NAME */
  rightName: string;
  /** CONTENT_INCREMENTAL, e.g. ['words']. */
  contentIncremental: readonly string[];
  /** SENSITIVITY, 0..1. */
  sensitivity?: number;
  /** AUDIO_CAPTURE */
  audioCapture: boolean;
  /** NOAUDIOTIMEOUT, 5000..1800000. */
  noAudioTimeoutMs: number;
}

export interface VoicegainCallIds {
  callId: string;
  linkedId: string;
  caller: string;
  callee: string;
  /** The call's own data (PASS_HEADERS, TRANSCRIPTION_META): session metadata pairs, after ours. */
  meta?: Readonly<Record<string, string>> | undefined;
}

export interface VoicegainNameValue {
  name: string;
  value: string;
}

export interface VoicegainSession {
  asyncMode: 'REAL-TIME';
  audioChannelSelector: 'left' | 'right';
  websocket: {
    mode: 'external';
    externalUrl: string;
    authConf?: string;
    useSTOMP: false;
    minimumDelay: 0;
  };
  content: { incremental: string[]; full: string[] };
  metadata: VoicegainNameValue[];
}

export interface VoicegainRequestBody {
  sessions: [VoicegainSession, VoicegainSession];
  audio: {
    source: { stream: { protocol: 'WSS'; noAudioTimeout: number } };
    format: 'L16';
    channels: 'stereo';
    rate: 8000;
    capture: boolean;
  };
  settings?: { asr: { sensitivity: number } };
}

/** The value of our channel names in the session metadata, as in the seed's results: {"name":"CALLER1","value":"CH1"}. */
export const LEFT_CHANNEL_VALUE = 'CH1';
export const RIGHT_CHANNEL_VALUE = 'CH2';

/** [SDK name_value_pair.py] `value` must be 1 to 1024 characters. */
const METADATA_VALUE_MAX = 1024;

export function voicegainRequestBody(settings: VoicegainSettings, call: VoicegainCallIds): VoicegainRequestBody {
  return {
    // [SDK async_transcription_request.py] `sessions` and `audio` are required; `settings` is optional.
    // [SDK intro "Async Sessions"] "2x REAL-TIME - for example for separately transcribing left and right
    // channels of stereo audio". Left first, as in [EX-WS]: the caller's leg is the left channel.
    sessions: [
      session(settings, 'left', settings.leftName, LEFT_CHANNEL_VALUE, call),
      session(settings, 'right', settings.rightName, RIGHT_CHANNEL_VALUE, call),
    ],
    audio: {
      // [SDK stream_setup.py, streaming_protocol.py] `WSS` is the current name of the old `WEBSOCKET` (spec
      // intro "PCI-DSS Compliance"); [EX-2CHN] sends "WSS". `noAudioTimeout` is an integer in ms, 5000..1800000,
      // default 30000. `stream.authConf` is left out on purpose: without it Voicegain accepts the audio
      // websocket only from the IP that made this POST, which is us.
      source: { stream: { protocol: 'WSS', noAudioTimeout: settings.noAudioTimeoutMs } },
      // [SDK audio_format.py] upper case. Little-endian, as every Voicegain L16 example pairs it with ffmpeg `s16le`.
      format: 'L16',
      // [SDK audio_channels.py, audio_input_async_with_callback.py] the property is `channels` (plural);
      // [EX-WS] misspells it `channel`, [EX-2CHN] spells it right.
      channels: 'stereo',
      // [SDK sample_rate.py] one of 8000..48000; sent as a JSON integer, as in every example.
      rate: 8000,
      // [SDK audio_input_async_with_callback.py] a boolean (the examples send the string 'true').
      capture: settings.audioCapture,
    },
    // [SDK asr_settings_transcription_async.py] `sensitivity` float 0..1, default 0.5, may be overridden by the
    // Context; sent only when configured, so the Context's value applies otherwise.
    ...(settings.sensitivity === undefined ? {} : { settings: { asr: { sensitivity: settings.sensitivity } } }),
  };
}

function session(
  settings: VoicegainSettings,
  side: 'left' | 'right',
  channelName: string,
  channelValue: string,
  call: VoicegainCallIds,
): VoicegainSession {
  return {
    // [SDK async_mode_transcription.py] upper case with a hyphen.
    asyncMode: 'REAL-TIME',
    // [SDK audio_channel_selector_offline_async.py] lower case.
    audioChannelSelector: side,
    // [SDK websocket_init.py, results_websocket_mode.py] `mode` is lower-case `external`; `externalUrl` is
    // required with it. `authConf` (1..128) is optional: without it Voicegain connects unauthenticated.
    // `useSTOMP` defaults to true, so false must be sent for plain JSON messages; `minimumDelay` 0 as in [EX-WS].
    // `ssId` is left out: with it, sessions would share one results connection, whereas the seed's results
    // server sees one connection per session [SEED].
    websocket: {
      mode: 'external',
      externalUrl: settings.resultsUrl.href,
      ...(settings.authConf === undefined ? {} : { authConf: settings.authConf }),
      useSTOMP: false,
      minimumDelay: 0,
    },
    // [SDK requested_content.py, content_type.py] `metadata` in `incremental` is "useful in the case of sending
    // results to an external websocket server because it helps to identify the session": without it the results
    // server could not tell which call and channel a connection carries. The seed's results begin with
    // {"metadata":[{"name":"CALLER1","value":"CH1"}]} although its CONTENT_INCREMENTAL is only `words` [SEED], so
    // we add it when absent, first, as [EX-WS] lists it. `full: []` suppresses the final full result, as in [EX-WS].
    content: {
      incremental: settings.contentIncremental.includes('metadata')
        ? [...settings.contentIncremental]
        : ['metadata', ...settings.contentIncremental],
      full: [],
    },
    // [SDK session_init_transcription.py, name_value_pair.py] per session, not top level; names 1..64 characters
    // and unique, values 1..1024; "saved together with the result". The channel pair comes first, so a results
    // server that reads metadata[0] (or, like Voicegain's wss_server.py, matches by name) still sees the seed's
    // pair. Our call ids follow, so a result can be joined to the call's logs. The phone numbers are not sent:
    // Voicegain would store them with the result, and the seed's results echo only the channel pair [SEED].
    metadata: [
      { name: channelName, value: channelValue },
      ...metadataPairs({ callId: call.callId, linkedId: call.linkedId }),
      ...metadataPairs(Object.fromEntries(Object.entries(call.meta ?? {}).filter(([name]) => name !== 'callId' && name !== 'linkedId'))),
    ],
  };
}

function metadataPairs(values: Record<string, string>): VoicegainNameValue[] {
  return Object.entries(values)
    .filter(([, value]) => value.length >= 1 && value.length <= METADATA_VALUE_MAX)
    .map(([name, value]) => ({ name, value }));
}

export type VoicegainAnswer = { ok: true; audioUrl: URL; sessionIds: string[] } | { ok: false; message: string };

/** How much of an unexpected body a message quotes. */
const QUOTED_BODY_CHARS = 200;

/**
 * Reads the HTTP answer: 2xx with sessions and audio.stream.websocketUrl (ws/wss) → ok; anything else → a
 * one-line message with the status and Voicegain's reason/detail (or the start of the body text).
 * [SDK async_transc_post_response.py, async_transc_session_established.py, stream_resp.py] `sessions[].sessionId`
 * and `audio.stream.websocketUrl`; [SDK error.py] errors are {reason, detail}. Voicegain's examples judge success
 * by the presence of `sessions`, not by the status (200 vs 201 is unconfirmed), so any 2xx is read the same way.
 */
export function readVoicegainAnswer(status: number, bodyText: string): VoicegainAnswer {
  const body = parseJson(bodyText);
  if (status < 200 || status > 299) return failure(`Voicegain answered ${status}: ${errorText(body, bodyText)}`);
  if (!isRecord(body)) return failure(`Voicegain answered ${status} with a body that is not a JSON object: ${quote(bodyText)}`);
  const sessions = body['sessions'];
  if (!Array.isArray(sessions) || sessions.length === 0) return failure(`Voicegain answered ${status} without sessions`);
  const sessionIds = sessions.map((s) => (isRecord(s) ? s['sessionId'] : undefined));
  if (!sessionIds.every((id): id is string => typeof id === 'string' && id !== '')) {
    return failure(`Voicegain answered ${status} with a session that has no sessionId`);
  }
  const websocketUrl = field(body, 'audio', 'stream', 'websocketUrl');
  if (typeof websocketUrl !== 'string') return failure(`Voicegain answered ${status} without audio.stream.websocketUrl`);
  const audioUrl = URL.canParse(websocketUrl) ? new URL(websocketUrl) : undefined;
  if (audioUrl === undefined || (audioUrl.protocol !== 'ws:' && audioUrl.protocol !== 'wss:')) {
    return failure(
      `Voicegain answered ${status} with an audio.stream.websocketUrl that is not a ws:// or wss:// URL: ${JSON.stringify(websocketUrl.slice(0, QUOTED_BODY_CHARS))}`,
    );
  }
  return { ok: true, audioUrl, sessionIds };
}

function errorText(body: unknown, bodyText: string): string {
  if (isRecord(body) && typeof body['reason'] === 'string') {
    const detail = body['detail'];
    return typeof detail === 'string' && detail !== '' ? `${body['reason']}: ${detail}` : body['reason'];
  }
  return quote(bodyText);
}

function failure(message: string): VoicegainAnswer {
  return { ok: false, message: message.replace(/\s+/g, ' ') };
}

function quote(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  if (line === '') return '(empty body)';
  return line.length > QUOTED_BODY_CHARS ? `${line.slice(0, QUOTED_BODY_CHARS)}…` : line;
}

// Small readers of untrusted JSON, shared with test/support/fake-voicegain.ts.

/** The parsed value, or undefined when `text` is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The value at `path` inside nested objects, or undefined where the path breaks. */
export function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = isRecord(current) ? current[key] : undefined;
  return current;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether a failed session request is worth repeating while the call lasts, and when: a
 * network error or timeout (`status` undefined), a 5xx, or a 429 (after its Retry-After,
 * seconds or an HTTP date, at most 60 s) are; anything else (401, 400, ...) is not, since
 * asking again would get the same answer. Backoff otherwise: 1 s, 2 s, 4 s ... at most
 * 30 s, each scaled by a random 0.5–1.
 */
export function voicegainRetryDelayMs(
  status: number | undefined,
  retryAfter: string | null | undefined,
  attempt: number,
  now = Date.now(),
  random: () => number = Math.random,
): number | undefined {
  if (status !== undefined && status !== 429 && (status < 500 || status > 599)) return undefined;
  const backoff = Math.round(Math.min(30_000, 1000 * 2 ** Math.min(attempt, 10)) * (0.5 + random() / 2));
  if (status !== 429 || retryAfter === null || retryAfter === undefined || retryAfter.trim() === '') return backoff;
  const text = retryAfter.trim();
  const waitMs = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  if (!Number.isFinite(waitMs)) return backoff;
  return Math.min(60_000, Math.max(0, waitMs));
}
