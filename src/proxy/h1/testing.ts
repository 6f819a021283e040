import type { BodySource } from '../http/exchange';
import type { HeaderRecord } from '../http/headers';

/** For tests: reads a body whole, as latin1 text, with its trailers ('' when there is no body). */
export function readBody(body: BodySource | undefined): Promise<{ data: string; trailers: HeaderRecord | undefined }> {
  if (!body) return Promise.resolve({ data: '', trailers: undefined });
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    body.start({
      write(chunk) {
        parts.push(Buffer.from(chunk));
        return true;
      },
      end: (trailers) => resolve({ data: Buffer.concat(parts).toString('latin1'), trailers }),
      fail: reject,
    });
  });
}
