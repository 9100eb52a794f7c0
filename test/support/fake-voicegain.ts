/**
 * A fake Voicegain for tests, as strict as Voicegain's published spec: it
 * answers `POST /v1/asr/transcribe/async` and serves the audio websocket it
 * hands out, on one HTTP server on 127.0.0.1. Every request is recorded with
 * every way it deviates from the spec (header, unknown or ill-typed field,
 * enum spelling), so a test can assert there are none. The rules are written
 * out here from the spec on their own, not taken from the code under test:
 * voicegain/python-sdk @ cded732660d6c06fd407640903bd847486751c09,
 * voicegain_speech/models/<name>.py, named at each rule. What it does not do:
 * connect to `externalUrl` with results, or end a session on `noAudioTimeout`.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { field, isRecord, parseJson } from '../../app/transcription/voicegain-request.js';

export interface FakeVoicegainRequest {
  headers: IncomingHttpHeaders;
  body: unknown;
  /** Every way the request deviates from the spec; empty for a good one. */
  problems: string[];
}

export interface FakeVoicegainAudio {
  audioUrl: URL;
  /** Every binary frame received, concatenated. */
  bytes: Buffer;
  /** When each binary frame arrived (performance.now()). */
  frameArrivalMs: number[];
  textFrames: string[];
  /** Protocol problems on the audio websocket: text frames, a second connection. */
  problems: string[];
  closed: boolean;
  closeCode?: number;
  /** The left channel of the interleaved stereo L16 received, still little-endian. */
  left(): Buffer;
  right(): Buffer;
}

export type FakeVoicegainMode = 'ok' | 401 | 400 | 429 | 500 | 'hang';

export interface FakeVoicegain {
  /** http://127.0.0.1:PORT/v1/asr/transcribe/async */
  url: URL;
  requests: FakeVoicegainRequest[];
  /** One per accepted POST, in order. */
  sessions: FakeVoicegainAudio[];
  /** How to answer the next POSTs; 'hang' never answers. 'ok' still checks the token and the body. */
  respondWith(mode: FakeVoicegainMode): void;
  /** Resolves once `count` audio websockets have connected and closed. */
  waitForClosedAudio(count: number, timeoutMs?: number): Promise<FakeVoicegainAudio[]>;
  close(): Promise<void>;
}

const ENDPOINT = '/v1/asr/transcribe/async';
const AUDIO_PATH = /^\/v1\/0\/socket\/([0-9a-f-]{36})$/;
/** [streaming_protocol.py] the stream protocols whose audio is sent to `audio.stream.websocketUrl`. */
const WEBSOCKET_PROTOCOLS = ['WEBSOCKET', 'WSS', 'WS'];

// ---- The request schema, from the spec ----

type Rule =
  | { kind: 'string'; oneOf?: readonly string[]; minLength?: number; maxLength?: number }
  | { kind: 'integer' | 'number'; oneOf?: readonly number[]; min?: number; max?: number }
  | { kind: 'boolean' }
  | { kind: 'array'; items: Rule; minItems?: number; maxItems?: number }
  | { kind: 'object'; fields: Record<string, Rule>; required?: readonly string[] }
  | { kind: 'any' };

const ANY: Rule = { kind: 'any' };
const STRING: Rule = { kind: 'string' };
const BOOLEAN: Rule = { kind: 'boolean' };
const text = (minLength: number, maxLength: number): Rule => ({ kind: 'string', minLength, maxLength });
const oneOf = (...values: string[]): Rule => ({ kind: 'string', oneOf: values });
const integer = (min: number, max: number): Rule => ({ kind: 'integer', min, max });
const arrayOf = (items: Rule): Rule => ({ kind: 'array', items });

/** [content_type.py] */
const CONTENT_TYPE = oneOf('progress', 'words', 'word-tree', 'segments', 'transcript', 'captions', 'metadata');

/** [session_init_transcription.py] */
const SESSION: Rule = {
  kind: 'object',
  required: ['asyncMode'],
  fields: {
    asyncMode: oneOf('REAL-TIME', 'SEMI-REAL-TIME', 'OFF-LINE'), // [async_mode_transcription.py]
    audioChannelSelector: oneOf('left', 'right', 'mix', 'two-channel'), // [audio_channel_selector_offline_async.py]
    billingCode: text(3, 3),
    callback: ANY,
    content: { kind: 'object', fields: { full: arrayOf(CONTENT_TYPE), incremental: arrayOf(CONTENT_TYPE) } }, // [requested_content.py]
    diarization: ANY,
    externalId: text(1, 128),
    extraParams: STRING,
    initialPrompt: STRING,
    metadata: arrayOf({ kind: 'object', required: ['name', 'value'], fields: { name: text(1, 64), value: text(1, 1024) } }), // [name_value_pair.py]
    poll: ANY,
    portal: ANY,
    tags: arrayOf(STRING),
    vadMode: ANY,
    websocket: {
      kind: 'object', // [websocket_init.py]
      fields: {
        adHoc: BOOLEAN,
        authConf: text(1, 128),
        externalUrl: STRING,
        ifExists: oneOf('KILL', 'FAIL', 'TEST'),
        label: STRING,
        minimumDelay: integer(0, 60_000),
        mode: oneOf('external', 'transceiver', 'predefined', 'adHoc'), // [results_websocket_mode.py]
        name: STRING,
        protocol: oneOf('ws', 'wss'), // [websocket_protocol.py]
        ssId: text(1, 64),
        useSTOMP: BOOLEAN,
      },
    },
  },
};

/** [audio_input_async_with_callback.py] */
const AUDIO: Rule = {
  kind: 'object',
  required: ['source'],
  fields: {
    source: {
      kind: 'object', // [async_audio_input_source.py]
      fields: {
        dataStore: ANY,
        fromUrl: ANY,
        greg: ANY,
        grpc: ANY,
        inline: ANY,
        phone: ANY,
        s3: ANY,
        stream: {
          kind: 'object', // [stream_setup.py]
          fields: {
            authConf: text(1, 128),
            controlWebsocket: STRING,
            noAudioTimeout: integer(5000, 1_800_000),
            protocol: oneOf('WEBSOCKET', 'WSS', 'WS', 'TWIML', 'LAML', 'RTP', 'RTP-2CHN', 'ASCALON'), // [streaming_protocol.py]
          },
        },
      },
    },
    capture: BOOLEAN,
    channels: oneOf('mono', 'stereo'), // [audio_channels.py]
    format: oneOf('PCMA', 'PCMU', 'L8', 'L16', 'F32', 'FLAC', 'MP3', 'VGAF'), // [audio_format.py]
    // [sample_rate.py] The generated constants are strings, but every Voicegain example sends a JSON integer.
    rate: { kind: 'integer', oneOf: [8000, 11025, 16000, 22050, 32000, 44100, 48000] },
    callback: ANY,
  },
};

/** [settings_async_transcription.py] */
const SETTINGS: Rule = {
  kind: 'object',
  fields: {
    asr: {
      kind: 'object', // [asr_settings_transcription_async.py]
      fields: {
        acousticModelNonRealTime: STRING,
        acousticModelRealTime: STRING,
        confidenceThreshold: { kind: 'number' },
        languageDetection: ANY,
        languages: arrayOf(ANY),
        maxAlternatives: { kind: 'integer' },
        optimizedFor: oneOf('meeting', 'phone_call'),
        sensitivity: { kind: 'number', min: 0, max: 1 },
        speedVsAccuracy: { kind: 'number' },
        hints: arrayOf(STRING),
        diarization: ANY,
        identifySpeakerGender: BOOLEAN,
        completeTimeout: integer(-1, 15_000),
        noInputTimeout: integer(-1, 60_000),
        startInputTimers: BOOLEAN,
      },
    },
    compliance: ANY,
    debug: ANY,
    dtmf: ANY,
    formatters: arrayOf(ANY),
    preemptible: BOOLEAN,
  },
};

/** [async_transcription_request.py]; at most 2 sessions [spec intro "Async Sessions"]. */
const REQUEST: Rule = {
  kind: 'object',
  required: ['audio', 'sessions'],
  fields: { audio: AUDIO, sessions: { kind: 'array', items: SESSION, minItems: 1, maxItems: 2 }, settings: SETTINGS },
};

/** Every way `value` breaks `rule`, each naming its path. */
function check(rule: Rule, value: unknown, path: string, problems: string[]): void {
  const got = describe(value);
  switch (rule.kind) {
    case 'any':
      return;
    case 'string':
      if (typeof value !== 'string') return void problems.push(`${path} must be a string, got ${got}`);
      if (rule.oneOf && !rule.oneOf.includes(value)) problems.push(`${path} must be one of ${rule.oneOf.join(', ')}, got ${got}`);
      if (rule.minLength !== undefined && value.length < rule.minLength)
        problems.push(`${path} must have at least ${rule.minLength} characters`);
      if (rule.maxLength !== undefined && value.length > rule.maxLength)
        problems.push(`${path} must have at most ${rule.maxLength} characters`);
      return;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (rule.kind === 'integer' && !Number.isInteger(value))) {
        return void problems.push(`${path} must be a JSON ${rule.kind}, got ${got}`);
      }
      if (rule.oneOf && !rule.oneOf.includes(value)) problems.push(`${path} must be one of ${rule.oneOf.join(', ')}, got ${got}`);
      if ((rule.min !== undefined && value < rule.min) || (rule.max !== undefined && value > rule.max)) {
        problems.push(`${path} must be within ${rule.min ?? '-∞'}..${rule.max ?? '∞'}, got ${got}`);
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${path} must be a JSON boolean, got ${got}`);
      return;
    case 'array':
      if (!Array.isArray(value)) return void problems.push(`${path} must be an array, got ${got}`);
      if (rule.minItems !== undefined && value.length < rule.minItems) problems.push(`${path} must have at least ${rule.minItems} item(s)`);
      if (rule.maxItems !== undefined && value.length > rule.maxItems) problems.push(`${path} must have at most ${rule.maxItems} item(s)`);
      value.forEach((item, index) => check(rule.items, item, `${path}[${index}]`, problems));
      return;
    case 'object': {
      if (!isRecord(value)) return void problems.push(`${path} must be an object, got ${got}`);
      for (const key of rule.required ?? []) if (!(key in value)) problems.push(`${path}.${key} is required`);
      for (const [key, item] of Object.entries(value)) {
        const fieldRule = rule.fields[key];
        if (fieldRule === undefined) problems.push(`${path}.${key} is not a field of the spec`);
        else check(fieldRule, item, `${path}.${key}`, problems);
      }
      return;
    }
  }
}

/** The rules the schema cannot say: between fields, and what the spec says in prose. */
function checkMeaning(body: Record<string, unknown>, problems: string[]): void {
  const sessions = Array.isArray(body['sessions']) ? body['sessions'].filter(isRecord) : [];
  sessions.forEach((session, index) => {
    const path = `body.sessions[${index}]`;
    const websocket = isRecord(session['websocket']) ? session['websocket'] : {};
    // [websocket_init.py] externalUrl is "Required if mode is external"; authConf is "Applicable only if mode is external".
    if (websocket['mode'] === 'external') {
      const url = websocket['externalUrl'];
      if (typeof url !== 'string' || !URL.canParse(url) || !['ws:', 'wss:'].includes(new URL(url).protocol)) {
        problems.push(`${path}.websocket.externalUrl must be a ws:// or wss:// URL when mode is external`);
      }
    } else if ('authConf' in websocket) {
      problems.push(`${path}.websocket.authConf applies only when mode is external`);
    }
    // [session_init_transcription.py] metadata names must be unique.
    const names = Array.isArray(session['metadata']) ? session['metadata'].filter(isRecord).map((pair) => pair['name']) : [];
    if (new Set(names).size !== names.length) problems.push(`${path}.metadata names must be unique`);
  });
  // [spec intro "Async Sessions"] two sessions: REAL-TIME with REAL-TIME, SEMI-REAL-TIME or OFF-LINE.
  if (sessions.length === 2 && !sessions.some((s) => s['asyncMode'] === 'REAL-TIME')) {
    problems.push('body.sessions: two sessions must include a REAL-TIME one');
  }
  // [async_audio_input_source.py] one source of audio.
  const source = field(body, 'audio', 'source');
  if (isRecord(source) && Object.keys(source).length !== 1) problems.push('body.audio.source must have exactly one source');
}

function checkHeaders(headers: IncomingHttpHeaders, token: string, problems: string[]): boolean {
  // [spec intro "JWT Authentication"] "the JWT has to be included in the "Authorization: Bearer" header".
  const authorization = headers.authorization;
  const authorized = authorization === `Bearer ${token}`;
  if (authorization === undefined) problems.push('Authorization header is missing');
  else if (authorization === token) problems.push('Authorization header lacks the "Bearer " prefix');
  else if (!authorized) problems.push('Authorization header does not carry the expected JWT as "Bearer <JWT>"');
  // [api/transcribe_api.py] Content-Type and Accept are application/json.
  const contentType = headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/json') problems.push(`Content-Type must be application/json, got ${describe(headers['content-type'])}`);
  const accept = headers.accept;
  if (accept !== undefined && !/application\/json|application\/\*|\*\/\*/i.test(accept))
    problems.push(`Accept must allow application/json, got ${describe(accept)}`);
  return authorized;
}

/** Why the fake cannot answer with an audio URL, or undefined when it can. */
function unusable(body: unknown): string | undefined {
  if (!isRecord(body)) return 'the body is not a JSON object';
  if (!Array.isArray(body['sessions']) || !body['sessions'].some(isRecord)) return 'sessions is missing or empty';
  const protocol = field(body, 'audio', 'source', 'stream', 'protocol');
  if (typeof protocol !== 'string' || !WEBSOCKET_PROTOCOLS.includes(protocol)) {
    return `audio.source.stream.protocol must be one of ${WEBSOCKET_PROTOCOLS.join(', ')} for websocket audio`;
  }
  return undefined;
}

// ---- The server ----

export async function startFakeVoicegain(expected: { token: string }): Promise<FakeVoicegain> {
  const requests: FakeVoicegainRequest[] = [];
  const sessions: FakeVoicegainAudio[] = [];
  const audioByUuid = new Map<string, FakeVoicegainAudio>();
  const connectedUuids = new Set<string>();
  const events = new EventEmitter();
  let mode: FakeVoicegainMode = 'ok';
  let closing = false;

  const server = createServer((request, response) => {
    if (request.method !== 'POST' || request.url !== ENDPOINT) {
      return answer(response, 404, { reason: 'Not Found', detail: `no ${request.method} ${request.url}` });
    }
    readText(request).then(
      (bodyText) => handlePost(request.headers, bodyText, response),
      () => response.destroy(),
    );
  });
  const audioServer = new WebSocketServer({ noServer: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  function handlePost(headers: IncomingHttpHeaders, bodyText: string, response: ServerResponse): void {
    const problems: string[] = [];
    const authorized = checkHeaders(headers, expected.token, problems);
    const body = parseJson(bodyText);
    if (body === undefined) problems.push('the body is not JSON');
    else {
      check(REQUEST, body, 'body', problems);
      if (isRecord(body)) checkMeaning(body, problems);
    }
    // A token too short to be a JWT would match by chance.
    if (expected.token.length >= 16 && bodyText.includes(expected.token)) problems.push('the body contains the JWT');
    requests.push({ headers, body, problems });

    if (mode === 'hang') return;
    if (mode === 401 || !authorized) {
      return answer(response, 401, { reason: 'Unauthorized', detail: 'missing or invalid JWT in the Authorization: Bearer header' });
    }
    if (mode === 500) return answer(response, 500, { reason: 'Internal Server Error', detail: 'fake failure' });
    if (mode === 429) return answer(response, 429, { reason: 'Too Many Requests', detail: 'fake rate limit' }, { 'retry-after': '1' });
    const reason = mode === 400 ? 'fake rejection' : unusable(body);
    if (reason !== undefined) return answer(response, 400, { reason: 'Bad Request', detail: reason });
    answer(response, 200, accept(body as Record<string, unknown>));
  }

  /** [async_transc_post_response.py] the answer to an accepted request, and its audio websocket. */
  function accept(body: Record<string, unknown>): unknown {
    const uuid = randomUUID();
    const audio = newAudio(new URL(`ws://${origin}/v1/0/socket/${uuid}`));
    audioByUuid.set(uuid, audio);
    sessions.push(audio);
    const requested = (body['sessions'] as unknown[]).filter(isRecord);
    return {
      sessions: requested.map((session) => {
        const sessionId = `0-${randomUUID().replace(/-/g, '').slice(0, 28)}`;
        return {
          sessionId,
          asyncMode: session['asyncMode'],
          sessionUrl: `http://${origin}/v1/asr/transcribe/${sessionId}`,
          content: session['content'] ?? {},
        };
      }),
      audio: {
        ...(field(body, 'audio', 'capture') === true ? { capturedAudio: randomUUID() } : {}),
        stream: { websocketUrl: audio.audioUrl.href },
      },
      preemptible: false,
    };
  }

  server.on('upgrade', (request, socket, head) => {
    const uuid = AUDIO_PATH.exec(request.url ?? '')?.[1];
    const audio = uuid === undefined ? undefined : audioByUuid.get(uuid);
    if (uuid === undefined || audio === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    audioServer.handleUpgrade(request, socket, head, (websocket) => {
      if (connectedUuids.has(uuid)) audio.problems.push('a second connection to the same audio websocket');
      connectedUuids.add(uuid);
      websocket.on('message', (data, isBinary) => {
        const buffer = data as Buffer;
        if (isBinary) {
          audio.bytes = Buffer.concat([audio.bytes, buffer]);
          audio.frameArrivalMs.push(performance.now());
        } else {
          audio.textFrames.push(buffer.toString('utf8'));
          audio.problems.push('text frame on the audio websocket: Voicegain expects binary audio only');
        }
      });
      websocket.on('close', (code) => {
        audio.closed = true;
        audio.closeCode = code;
        events.emit('closed');
      });
    });
  });

  function waitForClosedAudio(count: number, timeoutMs = 10_000): Promise<FakeVoicegainAudio[]> {
    return new Promise((resolve, reject) => {
      const done = () => {
        const closed = sessions.filter((s) => s.closed);
        if (closed.length < count) return;
        clearTimeout(timer);
        events.off('closed', done);
        resolve(closed);
      };
      const timer = setTimeout(() => {
        events.off('closed', done);
        reject(new Error(`only ${sessions.filter((s) => s.closed).length} of ${count} audio websockets closed within ${timeoutMs} ms`));
      }, timeoutMs);
      events.on('closed', done);
      done();
    });
  }

  return {
    url: new URL(`http://${origin}${ENDPOINT}`),
    requests,
    sessions,
    respondWith: (next) => {
      mode = next;
    },
    waitForClosedAudio,
    close: async () => {
      if (closing) return;
      closing = true;
      for (const client of audioServer.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function newAudio(audioUrl: URL): FakeVoicegainAudio {
  const audio: FakeVoicegainAudio = {
    audioUrl,
    bytes: Buffer.alloc(0),
    frameArrivalMs: [],
    textFrames: [],
    problems: [],
    closed: false,
    left: () => channel(audio.bytes, 0),
    right: () => channel(audio.bytes, 1),
  };
  return audio;
}

/** One channel of interleaved 16-bit stereo; the bytes of each sample are copied as they are (little-endian). */
function channel(interleaved: Buffer, index: 0 | 1): Buffer {
  const frames = Math.floor(interleaved.length / 4);
  const out = Buffer.alloc(frames * 2);
  for (let i = 0; i < frames; i++) interleaved.copy(out, i * 2, i * 4 + index * 2, i * 4 + index * 2 + 2);
  return out;
}

function answer(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function readText(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return `${Array.isArray(value) ? 'array' : typeof value} ${json.length > 60 ? `${json.slice(0, 60)}…` : json}`;
}
