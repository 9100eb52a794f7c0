// Latency per frame and first audio, measured from outside the service with a
// loopback packet capture (tcpdump): each leg's tapped audio arriving at the
// service (an RTP datagram to its ExternalMedia port) is matched to the
// websocket frame that carries it out (a TCP segment towards the sink), by
// content: the frame's first samples, unmasked, are the datagram's first
// samples in little-endian order. SIP answers (200 OK to INVITE from the
// callee) are read from a second capture for first-audio times.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { sleep } from './bench-lib.mjs';

/** Starts tcpdump on lo; stop() ends it and resolves once the file is complete. */
export async function startCapture(file, filter, { snaplen = 160 } = {}) {
  const child = spawn('tcpdump', ['-i', 'lo', '-n', '-s', String(snaplen), '-B', '32768', '-U', '-w', file, filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  // tcpdump says "listening on lo" once the capture runs.
  for (let i = 0; i < 100 && !stderr.includes('listening on'); i++) await sleep(50);
  if (!stderr.includes('listening on')) throw new Error(`tcpdump did not start: ${stderr}`);
  const exited = once(child, 'exit');
  return {
    /** Idempotent. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
      return stderr;
    },
  };
}

/** The packets of a pcap file (Ethernet link type, as tcpdump writes for lo): time in ms, IPv4 + UDP/TCP fields. */
export function* readPcap(file) {
  const data = readFileSync(file);
  if (data.length < 24) return;
  const little = data.readUInt32LE(0) === 0xa1b2c3d4;
  const nano = data.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (offset) => (little || nano ? data.readUInt32LE(offset) : data.readUInt32BE(offset));
  const linkType = u32(20);
  const linkBytes = linkType === 1 ? 14 : linkType === 113 ? 16 : 0;
  let offset = 24;
  while (offset + 16 <= data.length) {
    const seconds = u32(offset);
    const fraction = u32(offset + 4);
    const captured = u32(offset + 8);
    const start = offset + 16;
    offset = start + captured;
    if (offset > data.length) break;
    const ip = start + linkBytes;
    if (ip + 20 > offset || data[ip] >> 4 !== 4) continue;
    const ihl = (data[ip] & 0x0f) * 4;
    const totalLength = data.readUInt16BE(ip + 2);
    const protocol = data[ip + 9];
    const l4 = ip + ihl;
    const timeMs = seconds * 1000 + (nano ? fraction / 1e6 : fraction / 1000);
    if (protocol === 17 && l4 + 8 <= offset) {
      yield {
        timeMs,
        udp: true,
        srcPort: data.readUInt16BE(l4),
        dstPort: data.readUInt16BE(l4 + 2),
        payload: data.subarray(l4 + 8, offset),
        length: totalLength - ihl - 8,
      };
    } else if (protocol === 6 && l4 + 20 <= offset) {
      const dataOffset = (data[l4 + 12] >> 4) * 4;
      yield {
        timeMs,
        udp: false,
        srcPort: data.readUInt16BE(l4),
        dstPort: data.readUInt16BE(l4 + 2),
        seq: data.readUInt32BE(l4 + 4),
        payload: data.subarray(l4 + dataOffset, offset),
        length: totalLength - ihl - dataOffset,
      };
    }
  }
}

const PREFIX_BYTES = 16;

/** A websocket frame header at the start of `bytes`: its length, the payload's offset and its mask. */
function wsHeader(bytes) {
  if (bytes.length < 2) return undefined;
  const opcode = bytes[0] & 0x0f;
  const masked = (bytes[1] & 0x80) !== 0;
  let length = bytes[1] & 0x7f;
  let at = 2;
  if (length === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    return undefined;
  }
  if (!masked || bytes.length < at + 4) return undefined;
  const mask = bytes.subarray(at, at + 4);
  return { opcode, fin: (bytes[0] & 0x80) !== 0, length, payloadAt: at + 4, mask };
}

/**
 * Pairs each leg's datagrams with the frames that carried them.
 * `legs`: rtp port → { stream: tcp port of the stream's connection, channel: 0 (mono, or stereo left) | 1 (stereo right), stereo }.
 * Returns the latencies in ms (frame departure − the earlier of its legs' arrivals), and counts.
 */
export function matchLatencies(file, legs) {
  const arrivals = new Map(); // rtp port → [{ timeMs, key }]
  const frames = new Map(); // tcp port → [{ timeMs, payload prefix (unmasked) }]
  const expectedSeq = new Map();
  let framesCut = 0;
  for (const packet of readPcap(file)) {
    if (packet.udp) {
      if (!legs.has(packet.dstPort) || packet.payload.length < 12 + PREFIX_BYTES) continue;
      const cc = packet.payload[0] & 0x0f;
      const samples = Buffer.from(packet.payload.subarray(12 + cc * 4, 12 + cc * 4 + PREFIX_BYTES)).swap16();
      let list = arrivals.get(packet.dstPort);
      if (!list) arrivals.set(packet.dstPort, (list = []));
      list.push({ timeMs: packet.timeMs, key: samples.toString('hex') });
      continue;
    }
    if (packet.length === 0) continue;
    // Each websocket frame is one write, so one segment; a segment that is not where the
    // previous frame ended (or two frames written together) starts a new count.
    const expected = expectedSeq.get(packet.srcPort);
    let bytes = packet.payload;
    let seq = packet.seq;
    if (expected !== undefined && expected !== seq) framesCut++;
    while (bytes.length > 0) {
      const header = wsHeader(bytes);
      if (!header) break;
      if (header.opcode === 2) {
        const payload = Buffer.from(bytes.subarray(header.payloadAt, header.payloadAt + PREFIX_BYTES * 2));
        for (let i = 0; i < payload.length; i++) payload[i] ^= header.mask[i & 3];
        let list = frames.get(packet.srcPort);
        if (!list) frames.set(packet.srcPort, (list = []));
        list.push({ timeMs: packet.timeMs, payload });
      }
      const frameBytes = header.payloadAt + header.length;
      seq = (seq + frameBytes) >>> 0;
      if (frameBytes >= bytes.length) break;
      bytes = bytes.subarray(frameBytes);
    }
    expectedSeq.set(packet.srcPort, (packet.seq + packet.length) >>> 0);
  }

  // Per stream and channel: the prefix a frame carries for that channel.
  const channelKey = (payload, channel, stereo) => {
    if (!stereo) return payload.subarray(0, PREFIX_BYTES).toString('hex');
    const out = Buffer.alloc(PREFIX_BYTES / 2);
    for (let i = 0; i < PREFIX_BYTES / 4; i++) {
      out[2 * i] = payload[4 * i + 2 * channel];
      out[2 * i + 1] = payload[4 * i + 2 * channel + 1];
    }
    return out.toString('hex');
  };
  const latest = new Map(); // `${stream}:${frameIndex}` → earliest arrival of its legs
  let matched = 0;
  let unmatched = 0;
  for (const [port, leg] of legs) {
    const legArrivals = arrivals.get(port) ?? [];
    const streamFrames = frames.get(leg.stream) ?? [];
    let from = 0;
    for (let f = 0; f < streamFrames.length; f++) {
      const frame = streamFrames[f];
      let key = channelKey(frame.payload, leg.channel, leg.stereo);
      if (leg.stereo) key = key.slice(0, PREFIX_BYTES);
      if (/^0+$/.test(key)) continue;
      while (from < legArrivals.length && legArrivals[from].timeMs < frame.timeMs - 90) from++;
      let hit;
      for (let a = from; a < legArrivals.length && legArrivals[a].timeMs <= frame.timeMs; a++) {
        if (legArrivals[a].key.startsWith(key)) hit = legArrivals[a];
      }
      if (hit === undefined) {
        unmatched++;
        continue;
      }
      matched++;
      const id = `${leg.stream}:${f}`;
      const previous = latest.get(id);
      latest.set(id, { departure: frame.timeMs, arrival: Math.min(previous?.arrival ?? Infinity, hit.timeMs) });
    }
  }
  const latencies = [...latest.values()].map(({ departure, arrival }) => departure - arrival);
  return {
    latencies,
    matched,
    unmatched,
    framesCut,
    datagrams: [...arrivals.values()].reduce((n, l) => n + l.length, 0),
    frames: [...frames.values()].reduce((n, l) => n + l.length, 0),
  };
}

/** SIP 200 OK answers to INVITE in a capture: Call-ID → time (ms). */
export function sipAnswers(file) {
  const answers = new Map();
  for (const packet of readPcap(file)) {
    if (!packet.udp) continue;
    const text = packet.payload.toString('latin1');
    if (!text.startsWith('SIP/2.0 200')) continue;
    if (!/^CSeq:\s*\d+\s+INVITE/im.test(text)) continue;
    const callId = /^(?:Call-ID|i):\s*(\S+)/im.exec(text)?.[1];
    if (callId !== undefined && !answers.has(callId)) answers.set(callId, packet.timeMs);
  }
  return answers;
}

/** The q-quantile (0..1) of a Prometheus histogram's buckets (linear within a bucket, as histogram_quantile does). */
export function histogramQuantile(buckets, q) {
  // buckets: [[le, cumulative count]], ascending, the last +Inf
  const total = buckets.at(-1)[1];
  if (total === 0) return NaN;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return lowerBound;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / Math.max(1, count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}

/** The buckets of histogram `name` between two scrapes (bench-lib scrape()), as [[le, count]]. */
export function histogramDelta(before, after, name) {
  const rows = [];
  for (const [key, value] of Object.entries(after)) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (!m) continue;
    rows.push([m[1] === '+Inf' ? Infinity : Number(m[1]), value - (before[key] ?? 0)]);
  }
  return rows.sort((a, b) => a[0] - b[0]);
}
