/**
 * Incremental Server-Sent Events parser (the WHATWG event-stream format).
 *
 * Bytes arrive in arbitrary chunks; `feed` returns the complete events found so far.
 * Comments (`: keepalive`) are reported as heartbeats so a caller can tell a live
 * connection from a stalled one.
 */

export interface SseMessage {
  /** The `id:` field, or null when the event had none (ephemeral events). */
  id: string | null;
  event: string;
  data: string;
}

export interface ParseResult {
  messages: SseMessage[];
  /** A `retry:` value in milliseconds, when one arrived. */
  retry: number | null;
  heartbeats: number;
}

export class SseParser {
  private buffer = '';
  private decoder = new TextDecoder();
  private eventType = '';
  private dataLines: string[] = [];
  private id: string | null = null;

  /** Feed raw bytes (or text) and collect the events completed by them. */
  feed(chunk: Uint8Array | string): ParseResult {
    this.buffer +=
      typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const result: ParseResult = { messages: [], retry: null, heartbeats: 0 };
    let start = 0;
    for (;;) {
      const end = nextLineEnd(this.buffer, start);
      if (end < 0) {
        break;
      }
      if (this.buffer[end] === '\r' && end + 1 === this.buffer.length) {
        break; // a CR at the very end may be followed by LF in the next chunk: wait for it
      }
      const line = this.buffer.slice(start, end);
      // a CR LF pair is one line end
      start = this.buffer[end] === '\r' && this.buffer[end + 1] === '\n' ? end + 2 : end + 1;
      this.line(line, result);
    }
    this.buffer = this.buffer.slice(start);
    return result;
  }

  /** Forget a half-received event (the connection was cut). */
  reset(): void {
    this.buffer = '';
    this.decoder = new TextDecoder();
    this.eventType = '';
    this.dataLines = [];
    this.id = null;
  }

  private line(line: string, result: ParseResult): void {
    if (line === '') {
      if (this.dataLines.length) {
        result.messages.push({
          id: this.id,
          event: this.eventType || 'message',
          data: this.dataLines.join('\n')
        });
      }
      this.eventType = '';
      this.dataLines = [];
      this.id = null;
      return;
    }
    if (line[0] === ':') {
      result.heartbeats += 1;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') {
      value = value.slice(1);
    }
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.id = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          result.retry = parseInt(value, 10);
        }
        break;
    }
  }
}

function nextLineEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      return i;
    }
  }
  return -1;
}
