/**
 * RTP packet parser (RFC 3550, section 5.1). Pure: bytes in, fields out.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                           timestamp                           |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |           synchronization source (SSRC) identifier            |
 *  +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *  |            contributing source (CSRC) identifiers             |
 *  |                             ....                              |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | header extension (when X): profile:16 | length in words:16    |
 *  |                     extension words ...                       |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                 payload ...   | padding (when P; last octet   |
 *  |                               |  counts the padding octets)   |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Asterisk's ExternalMedia sends a fixed 12-byte header today, but nothing in
 * the protocol promises that, so every header bit is honoured.
 */
import { AppError } from '../errors.js';

export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcs: number[];
  /** A view into the packet's buffer (no copy). */
  payload: Buffer;
}

const FIXED_HEADER_BYTES = 12;

function invalid(reason: string): AppError {
  return new AppError('RTP_PACKET_INVALID', `invalid RTP packet: ${reason}`);
}

/** Parses one RTP packet; throws AppError RTP_PACKET_INVALID on anything malformed. */
export function parseRtpPacket(packet: Buffer): RtpPacket {
  if (packet.length < FIXED_HEADER_BYTES) throw invalid(`${packet.length} bytes is shorter than the fixed header`);
  const first = packet.readUInt8(0);
  const version = first >> 6;
  if (version !== 2) throw invalid(`version ${version}`);
  const hasPadding = (first & 0x20) !== 0;
  const hasExtension = (first & 0x10) !== 0;
  const csrcCount = first & 0x0f;
  const second = packet.readUInt8(1);

  let offset = FIXED_HEADER_BYTES + csrcCount * 4;
  if (packet.length < offset) throw invalid(`${csrcCount} CSRCs do not fit in ${packet.length} bytes`);
  const csrcs: number[] = [];
  for (let i = 0; i < csrcCount; i++) csrcs.push(packet.readUInt32BE(FIXED_HEADER_BYTES + i * 4));

  if (hasExtension) {
    if (packet.length < offset + 4) throw invalid('header extension is cut off');
    const extensionWords = packet.readUInt16BE(offset + 2);
    offset += 4 + extensionWords * 4;
    if (packet.length < offset) throw invalid('header extension is longer than the packet');
  }

  let end = packet.length;
  if (hasPadding) {
    if (end === offset) throw invalid('padding bit set but no padding');
    const paddingBytes = packet.readUInt8(end - 1);
    if (paddingBytes === 0 || end - paddingBytes < offset) throw invalid(`padding of ${paddingBytes} bytes does not fit`);
    end -= paddingBytes;
  }

  return {
    payloadType: second & 0x7f,
    marker: (second & 0x80) !== 0,
    sequenceNumber: packet.readUInt16BE(2),
    timestamp: packet.readUInt32BE(4),
    ssrc: packet.readUInt32BE(8),
    csrcs,
    payload: packet.subarray(offset, end),
  };
}
