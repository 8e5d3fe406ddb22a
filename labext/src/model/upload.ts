/**
 * Upload a browser file of any size through the registry's resumable protocol:
 * `POST assets/uploads` declares it, `PATCH assets/uploads/{id}` sends chunks at
 * `Upload-Offset`, `HEAD` tells the offset reached after a failure, `POST .../complete`
 * checks and registers it.
 */

export interface UploadTransport {
  create(body: { category: string; name: string; size: number }): Promise<{ id: string }>;
  send(id: string, offset: number, chunk: Blob): Promise<{ offset: number }>;
  offset(id: string): Promise<number>;
  complete(id: string): Promise<any>;
  abort(id: string): Promise<void>;
}

export interface UploadOptions {
  chunkBytes?: number;
  retries?: number;
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

/** The byte ranges to send from `offset`. */
export function chunkRanges(size: number, offset: number, chunkBytes: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = offset; start < size; start += chunkBytes) {
    ranges.push([start, Math.min(size, start + chunkBytes)]);
  }
  return ranges;
}

export async function uploadFile(
  transport: UploadTransport,
  category: string,
  file: Blob & { name: string },
  options: UploadOptions = {}
): Promise<any> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const retries = options.retries ?? 5;
  const sleep = options.sleep ?? ((ms: number) => new Promise(r => setTimeout(r, ms)));
  const { id } = await transport.create({ category, name: file.name, size: file.size });
  let offset = 0;
  let failures = 0;
  options.onProgress?.(0, file.size);
  try {
    while (offset < file.size) {
      if (options.signal?.aborted) {
        throw new Error('upload cancelled');
      }
      const end = Math.min(file.size, offset + chunkBytes);
      try {
        const answer = await transport.send(id, offset, file.slice(offset, end));
        offset = answer.offset;
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures > retries || (error as any)?.permanent) {
          throw error;
        }
        await sleep(Math.min(8000, 250 * 2 ** failures));
        offset = await transport.offset(id); // resume where the server is
      }
      options.onProgress?.(offset, file.size);
    }
    return await transport.complete(id);
  } catch (error) {
    await transport.abort(id).catch(() => undefined);
    throw error;
  }
}
