/**
 * A pcap file of RFC 4733 (RFC 2833) telephone-events, for SIPp's
 * play_pcap_audio: a phone keying DTMF out of band, several digits in one
 * file. SIPp's own dtmf_2833_*.pcap files are one digit each with fixed
 * sequence numbers and timestamp: the same file played twice (`##`) repeats
 * an event that has just ended, which a receiver may drop as a
 * retransmission. Here each digit is a new event: its own timestamp,
 * sequence numbers running on.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |     event     |E|R| volume    |          duration             |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * SIPp sends only the UDP payload (its own addresses and ports), so the
 * Ethernet and IP headers here are placeholders.
 */
const EVENTS: Record<string, number> = { '*': 10, '#': 11, A: 12, B: 13, C: 14, D: 15 };
const PACKET_MS = 20;
const SAMPLES_PER_MS = 8;

export interface DtmfPcapOptions {
  /** How long each digit is held (ms, a multiple of 20). */
  durationMs?: number;
  /** From the start of one digit to the start of the next (ms). */
  intervalMs?: number;
  /** The telephone-event payload type the SDP agreed (Asterisk offers 101). */
  payloadType?: number;
}

function eventOf(digit: string): number {
  const event = /^[0-9]$/.test(digit) ? Number(digit) : EVENTS[digit];
  if (event === undefined) throw new Error(`"${digit}" is not a DTMF digit`);
  return event;
}

function ipChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** One UDP datagram of `payload` in an Ethernet frame (placeholder addresses: SIPp uses only the payload). */
function frame(payload: Buffer): Buffer {
  const ethernet = Buffer.alloc(14);
  ethernet.writeUInt16BE(0x0800, 12);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(17, 9);
  Buffer.from([192, 0, 2, 1, 192, 0, 2, 2]).copy(ip, 12);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(40002, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ethernet, ip, udp, payload]);
}

/** The pcap file of `digits` keyed one after another, RFC 4733 events only. */
export function dtmfPcap(digits: string, options: DtmfPcapOptions = {}): Buffer {
  const durationMs = options.durationMs ?? 160;
  const intervalMs = options.intervalMs ?? 300;
  const payloadType = options.payloadType ?? 101;
  const ssrc = 0x5eed2833;
  const packets: { atMs: number; data: Buffer }[] = [];
  let sequence = 1000;
  [...digits].forEach((digit, index) => {
    const startMs = index * intervalMs;
    const timestamp = 160_000 + startMs * SAMPLES_PER_MS;
    const steps = durationMs / PACKET_MS;
    for (let step = 1; step <= steps + 2; step++) {
      // The end packet is sent three times (RFC 4733 2.5.1.4), with the same sequence number.
      const end = step >= steps;
      const rtp = Buffer.alloc(16);
      rtp.writeUInt8(0x80, 0);
      rtp.writeUInt8((step === 1 ? 0x80 : 0) | payloadType, 1);
      rtp.writeUInt16BE(sequence & 0xffff, 2);
      if (step < steps) sequence++;
      rtp.writeUInt32BE(timestamp, 4);
      rtp.writeUInt32BE(ssrc, 8);
      rtp.writeUInt8(eventOf(digit), 12);
      rtp.writeUInt8((end ? 0x80 : 0) | 10, 13);
      rtp.writeUInt16BE(Math.min(step, steps) * PACKET_MS * SAMPLES_PER_MS, 14);
      packets.push({ atMs: startMs + Math.min(step, steps) * PACKET_MS, data: frame(rtp) });
    }
    sequence++;
  });
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20);
  const records = packets.map(({ atMs, data }) => {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(1_700_000_000 + Math.floor(atMs / 1000), 0);
    record.writeUInt32LE((atMs % 1000) * 1000, 4);
    record.writeUInt32LE(data.length, 8);
    record.writeUInt32LE(data.length, 12);
    return Buffer.concat([record, data]);
  });
  return Buffer.concat([header, ...records]);
}
