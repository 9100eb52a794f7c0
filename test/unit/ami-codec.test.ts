import { describe, expect, it } from 'vitest';
import { AmiDecoder, encodeAction } from '../../app/ami/ami-codec.js';

describe('AMI codec', () => {
  it('encodes an action as CRLF lines ending with an empty line', () => {
    expect(encodeAction('Login', { Username: 'u', Secret: 'p;#' })).toBe('Action: Login\r\nUsername: u\r\nSecret: p;#\r\n\r\n');
  });

  it('refuses a field value that would end the line', () => {
    expect(() => encodeAction('Login', { Secret: 'p\r\nAction: Originate' })).toThrow('one line');
  });

  it('reads the banner, then messages split across chunks and several in one chunk', () => {
    const decoder = new AmiDecoder();
    expect(decoder.push('Asterisk Call Man')).toEqual([]);
    expect(decoder.push('ager/9.0.0\r\nResponse: Success\r\nMess')).toEqual([]);
    expect(decoder.banner).toBe('Asterisk Call Manager/9.0.0');
    expect(decoder.push('age: Authentication accepted\r\n\r\nEvent: Registry\r\nStatus: Registered\r\n\r\nEvent: X\r')).toEqual([
      { Response: 'Success', Message: 'Authentication accepted' },
      { Event: 'Registry', Status: 'Registered' },
    ]);
    expect(decoder.push('\n\r\n')).toEqual([{ Event: 'X' }]);
  });

  it('keeps colons inside values and skips lines without a key', () => {
    const decoder = new AmiDecoder();
    expect(decoder.push('B\r\nEvent: Registry\r\nUsername: sip:1000@127.0.0.1:5090\r\ngarbage\r\n\r\n')).toEqual([
      { Event: 'Registry', Username: 'sip:1000@127.0.0.1:5090' },
    ]);
  });
});
