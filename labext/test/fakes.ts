/** Test doubles: an in-memory BroadcastChannel network and a scripted stream server. */
import { ChannelLike } from '../src/stream/hub';

export class ChannelNetwork {
  members = new Set<FakeChannel>();

  channel(): FakeChannel {
    const c = new FakeChannel(this);
    this.members.add(c);
    return c;
  }
}

/** Delivers to the other members later, like a BroadcastChannel (a timer task). */
export class FakeChannel implements ChannelLike {
  onmessage: ((event: { data: any }) => void) | null = null;
  constructor(private network: ChannelNetwork) {}
  postMessage(message: unknown): void {
    const copy = structuredClone(message);
    setTimeout(() => {
      for (const member of this.network.members) {
        if (member !== this && member.onmessage) {
          member.onmessage({ data: copy });
        }
      }
    }, 0);
  }
  close(): void {
    this.network.members.delete(this);
  }
}

/** A Response whose body the test writes to. */
export function streamResponse(status = 200): {
  response: Response;
  write: (text: string) => void;
  end: () => void;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    }
  });
  const encoder = new TextEncoder();
  return {
    response: new Response(body, { status }),
    write: text => controller.enqueue(encoder.encode(text)),
    end: () => controller.close()
  };
}

export function frame(id: number | null, topic: string, type: string, data: unknown): string {
  const head = id === null ? '' : `id: ${id}\n`;
  return `${head}event: ${type}\ndata: ${JSON.stringify({ id, topic, type, ts: 1, data })}\n\n`;
}

export const tick = (ms = 0) => new Promise(resolve => setTimeout(resolve, ms));

/** Wait (real time) until `predicate` holds; fail after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error('condition not reached');
    }
    await tick(5);
  }
}
