import { describe, expect, it } from 'vitest';
import { SseParser } from '../src/stream/parser';

describe('SseParser', () => {
  it('parses events split across arbitrary chunks', () => {
    const text = 'retry: 3000\n\nid: 7\nevent: state\ndata: {"a":1}\n\n: keepalive\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const parser = new SseParser();
      const a = parser.feed(text.slice(0, cut));
      const b = parser.feed(text.slice(cut));
      const messages = [...a.messages, ...b.messages];
      expect(messages).toEqual([{ id: '7', event: 'state', data: '{"a":1}' }]);
      expect(a.retry ?? b.retry).toBe(3000);
      expect(a.heartbeats + b.heartbeats).toBe(1);
    }
  });

  it('handles CRLF, multi-line data and events without id', () => {
    const parser = new SseParser();
    const out = parser.feed('event: sample\r\ndata: x\r\ndata: y\r\n\r\ndata: z\n\n');
    expect(out.messages).toEqual([
      { id: null, event: 'sample', data: 'x\ny' },
      { id: null, event: 'message', data: 'z' }
    ]);
  });

  it('waits for the LF after a CR at the end of a chunk', () => {
    const parser = new SseParser();
    expect(parser.feed('data: a\r').messages).toEqual([]);
    expect(parser.feed('\n\r\n').messages).toEqual([{ id: null, event: 'message', data: 'a' }]);
  });

  it('decodes UTF-8 split inside a character', () => {
    const parser = new SseParser();
    const bytes = new TextEncoder().encode('data: é—ü\n\n');
    const first = parser.feed(bytes.slice(0, 7));
    const second = parser.feed(bytes.slice(7));
    expect([...first.messages, ...second.messages][0].data).toBe('é—ü');
  });

  it('forgets a half event on reset', () => {
    const parser = new SseParser();
    parser.feed('id: 1\ndata: half');
    parser.reset();
    expect(parser.feed('data: whole\n\n').messages).toEqual([
      { id: null, event: 'message', data: 'whole' }
    ]);
  });
});
