import { describe, expect, it } from 'vitest';
import { hex, codeOf } from '../support/bytes.js';
import { parseRtpPacket } from '../../app/media/rtp-packet.js';

describe('parseRtpPacket', () => {
  it('parses a minimal 12-byte header and its payload', () => {
    // V=2, no P/X/CC; M=0, PT=0; seq 0x0001; ts 0x000000a0; ssrc 0x11223344
    const packet = hex('80 00 0001 000000a0 11223344 0102 0304');
    const rtp = parseRtpPacket(packet);
    expect(rtp.payloadType).toBe(0);
    expect(rtp.marker).toBe(false);
    expect(rtp.sequenceNumber).toBe(1);
    expect(rtp.timestamp).toBe(0xa0);
    expect(rtp.ssrc).toBe(0x11223344);
    expect(rtp.csrcs).toEqual([]);
    expect(rtp.payload.toString('hex')).toBe('01020304');
  });

  it('accepts a header with an empty payload', () => {
    const rtp = parseRtpPacket(hex('80 0b 0000 00000000 00000000'));
    expect(rtp.payload.length).toBe(0);
    expect(rtp.payloadType).toBe(11);
  });

  it('reads the marker bit and the payload type separately', () => {
    // 0x8b: marker set, PT 11 (L16 mono); 0x0b: no marker, PT 11; 0xff: marker, PT 127
    expect(parseRtpPacket(hex('80 8b 0000 00000000 00000000 aa'))).toMatchObject({ marker: true, payloadType: 11 });
    expect(parseRtpPacket(hex('80 0b 0000 00000000 00000000 aa'))).toMatchObject({ marker: false, payloadType: 11 });
    expect(parseRtpPacket(hex('80 ff 0000 00000000 00000000 aa'))).toMatchObject({ marker: true, payloadType: 127 });
    expect(parseRtpPacket(hex('80 76 0000 00000000 00000000 aa'))).toMatchObject({ marker: false, payloadType: 118 });
  });

  it('reads sequence, timestamp and SSRC as unsigned big-endian values', () => {
    const rtp = parseRtpPacket(hex('80 00 fffe 89abcdef fedcba98 00'));
    expect(rtp.sequenceNumber).toBe(0xfffe);
    expect(rtp.timestamp).toBe(0x89abcdef);
    expect(rtp.ssrc).toBe(0xfedcba98);
  });

  it('reads CSRCs and starts the payload after them', () => {
    // CC=2
    const rtp = parseRtpPacket(hex('82 00 0005 00000010 0000abcd 01010101 02020202 dead beef'));
    expect(rtp.csrcs).toEqual([0x01010101, 0x02020202]);
    expect(rtp.ssrc).toBe(0xabcd);
    expect(rtp.payload.toString('hex')).toBe('deadbeef');
  });

  it('skips a header extension of 4 + 4*length bytes', () => {
    // X=1; extension profile 0xbede, length 2 words
    const rtp = parseRtpPacket(hex('90 00 0005 00000010 0000abcd bede 0002 11111111 22222222 cafe'));
    expect(rtp.csrcs).toEqual([]);
    expect(rtp.payload.toString('hex')).toBe('cafe');
  });

  it('skips a header extension of length 0 (just its 4-byte header)', () => {
    const rtp = parseRtpPacket(hex('90 00 0005 00000010 0000abcd bede 0000 cafe'));
    expect(rtp.payload.toString('hex')).toBe('cafe');
  });

  it('excludes padding bytes from the payload', () => {
    // P=1; payload 0102, then 3 bytes of padding, the last counting them
    const rtp = parseRtpPacket(hex('a0 00 0005 00000010 0000abcd 0102 0000 03'));
    expect(rtp.payload.toString('hex')).toBe('0102');
  });

  it('allows padding that fills everything after the header', () => {
    const rtp = parseRtpPacket(hex('a0 00 0005 00000010 0000abcd 0000 03'));
    expect(rtp.payload.length).toBe(0);
  });

  it('honours CSRCs, extension and padding together', () => {
    // V=2 P=1 X=1 CC=1; M=1 PT=11
    const packet = hex(
      'b1 8b 1234 00000640 deadbeef' + // fixed header
        ' 0a0b0c0d' + // one CSRC
        ' bede 0001 99999999' + // extension, 1 word
        ' 0011 2233' + // payload
        ' 00 02', // 2 bytes of padding
    );
    const rtp = parseRtpPacket(packet);
    expect(rtp).toMatchObject({
      marker: true,
      payloadType: 11,
      sequenceNumber: 0x1234,
      timestamp: 0x640,
      ssrc: 0xdeadbeef,
      csrcs: [0x0a0b0c0d],
    });
    expect(rtp.payload.toString('hex')).toBe('00112233');
  });

  it('returns the payload as a view into the packet, not a copy', () => {
    const packet = hex('80 00 0001 00000000 00000001 0102 0304');
    const rtp = parseRtpPacket(packet);
    expect(rtp.payload.buffer).toBe(packet.buffer);
    expect(rtp.payload.byteOffset).toBe(packet.byteOffset + 12);
    packet[12] = 0x7f;
    expect(rtp.payload[0]).toBe(0x7f);
  });

  describe('rejects malformed packets with RTP_PACKET_INVALID', () => {
    const cases: [string, string][] = [
      ['empty input', ''],
      ['shorter than the 12-byte fixed header', '80 00 0001 00000000 000000'],
      ['version 0', '00 00 0001 00000000 00000001 0102'],
      ['version 1', '40 00 0001 00000000 00000001 0102'],
      ['version 3', 'c0 00 0001 00000000 00000001 0102'],
      ['a CSRC count exceeding the length', '82 00 0001 00000000 00000001 01010101'],
      ['a CSRC count of 15 with no CSRCs', '8f 00 0001 00000000 00000001'],
      ['an extension header cut off', '90 00 0001 00000000 00000001 bede'],
      ['an extension bit with nothing after the fixed header', '90 00 0001 00000000 00000001'],
      ['an extension length beyond the packet', '90 00 0001 00000000 00000001 bede 0002 11111111'],
      ['the padding bit with a padding count of 0', 'a0 00 0001 00000000 00000001 0102 00'],
      ['the padding bit with no bytes after the header', 'a0 00 0001 00000000 00000001'],
      ['a padding count larger than the payload', 'a0 00 0001 00000000 00000001 0102 04'],
      ['padding reaching into the extension', 'b0 00 0001 00000000 00000001 bede 0000 02'],
    ];
    it.each(cases)('%s', (_name, text) => {
      expect(codeOf(() => parseRtpPacket(hex(text)))).toBe('RTP_PACKET_INVALID');
    });
  });
});
