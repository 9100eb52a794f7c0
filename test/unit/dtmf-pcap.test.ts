import { describe, expect, it } from 'vitest';
import { dtmfPcap } from '../support/dtmf-pcap.js';

/** The RTP packets of a pcap written by dtmfPcap: time, sequence, timestamp, event, end, duration. */
function readPcap(file: Buffer) {
  expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4);
  const packets = [];
  for (let offset = 24; offset < file.length;) {
    const atMs = (file.readUInt32LE(offset) - 1_700_000_000) * 1000 + file.readUInt32LE(offset + 4) / 1000;
    const length = file.readUInt32LE(offset + 8);
    const rtp = file.subarray(offset + 16 + 42, offset + 16 + length);
    packets.push({
      atMs,
      marker: rtp[1]! >> 7,
      payloadType: rtp[1]! & 0x7f,
      sequence: rtp.readUInt16BE(2),
      timestamp: rtp.readUInt32BE(4),
      event: rtp[12],
      end: rtp[13]! >> 7,
      duration: rtp.readUInt16BE(14),
    });
    offset += 16 + length;
  }
  return packets;
}

describe('dtmfPcap (test support: a phone keying RFC 4733 DTMF, for SIPp)', () => {
  it('each digit a new event: its own timestamp, a marker, three end packets; # twice is two events', () => {
    const packets = readPcap(dtmfPcap('##4', { durationMs: 100, intervalMs: 300 }));
    expect(packets).toHaveLength(3 * 7);
    const starts = packets.filter((p) => p.marker === 1);
    expect(starts.map((p) => [p.event, p.timestamp, p.atMs])).toEqual([
      [11, 160_000, 20],
      [11, 162_400, 320],
      [4, 164_800, 620],
    ]);
    const first = packets.slice(0, 7);
    expect(first.map((p) => p.duration)).toEqual([160, 320, 480, 640, 800, 800, 800]);
    expect(first.map((p) => p.end)).toEqual([0, 0, 0, 0, 1, 1, 1]);
    expect(first.map((p) => p.sequence)).toEqual([1000, 1001, 1002, 1003, 1004, 1004, 1004]);
    expect(packets[7]!.sequence).toBe(1005);
    expect(new Set(packets.map((p) => p.payloadType))).toEqual(new Set([101]));
  });
});
