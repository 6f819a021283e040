import { parseFieldLine } from './head-parser';
import { H1ParseError } from './parse-error';

/**
 * An incremental, strict decoder of the chunked transfer coding (RFC 9112 §7.1). Body bytes
 * are handed out as zero-copy subarrays of the pushed buffers; framing bytes are checked one by
 * one, so any split of the input across push() calls gives the same result.
 */

export interface ChunkedLimits {
  /** The chunk-size line, extensions included, CRLF excluded. */
  maxLineBytes: number;
  /** The whole trailer section: every trailer line with its CRLF, and the final CRLF. */
  maxTrailerBytes: number;
}

const DEFAULT_LIMITS: ChunkedLimits = { maxLineBytes: 4096, maxTrailerBytes: 16384 };

/** More hex digits than this in a chunk size is refused (leading zeros count). */
const MAX_SIZE_DIGITS = 15;

/** Hex digit value, or 255. */
const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

// States
const SIZE = 0; //        hex digits of the chunk size
const SIZE_WS = 1; //     BWS after the size, before ";" or CR
const EXT = 2; //         chunk extensions, up to CR
const SIZE_LF = 3; //     the LF ending the chunk-size line
const DATA = 4; //        chunk data
const DATA_CR = 5; //     the CR after chunk data
const DATA_LF = 6; //     the LF after chunk data
const TRAILER = 7; //     a trailer line (or the final empty line), up to CR
const TRAILER_LF = 8; //  the LF ending a trailer line
const DONE = 9;
const FAILED = 10;

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

export class ChunkedDecoder {
  private readonly maxLineBytes: number;
  private readonly maxTrailerBytes: number;
  private state = SIZE;
  /** While in SIZE: the size parsed so far; in DATA: the bytes left in the chunk. */
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  /** The trailer line read so far (latin1). */
  private line = '';
  private readonly fields: string[] = [];

  constructor(limits?: Partial<ChunkedLimits>) {
    this.maxLineBytes = limits?.maxLineBytes ?? DEFAULT_LIMITS.maxLineBytes;
    this.maxTrailerBytes = limits?.maxTrailerBytes ?? DEFAULT_LIMITS.maxTrailerBytes;
  }

  /** True once the terminating last-chunk, trailers and final CRLF have been consumed. */
  get done(): boolean {
    return this.state === DONE;
  }

  /** Trailer fields after done, like RequestHead.headers: [name, value, ...] with lower-cased names. */
  get trailers(): string[] {
    return this.fields;
  }

  /**
   * Feeds the next bytes of a chunked body. Calls onData with zero-copy subarrays of `buf` for the body bytes.
   * Returns how many bytes of `buf` were consumed: buf.length, or less when the body's end (last chunk + trailers + final CRLF)
   * is inside buf (the rest belongs to the next message). Throws H1ParseError on bad framing (400) or too long trailers (431);
   * the decoder is unusable after a throw.
   */
  push(buf: Buffer, onData: (chunk: Buffer) => void): number {
    const n = buf.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case DATA: {
          const left = this.size;
          const avail = n - i;
          if (left <= avail) {
            this.size = 0;
            this.state = DATA_CR;
            onData(buf.subarray(i, i + left));
            i += left;
          } else {
            this.size = left - avail;
            onData(i === 0 ? buf : buf.subarray(i, n));
            i = n;
          }
          break;
        }
        case SIZE: {
          const c = buf[i];
          const d = HEX[c];
          if (d !== 255) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail(400, 'chunk size has too many digits');
            const size = this.size * 16 + d;
            if (size > Number.MAX_SAFE_INTEGER) this.fail(400, 'chunk size too large');
            this.size = size;
            i++;
            this.countLine();
          } else if (this.digits === 0) {
            this.fail(400, 'invalid chunk size');
          } else if (c === 0x0d) {
            this.state = SIZE_LF;
            i++;
          } else if (c === 0x3b) {
            this.state = EXT;
            i++;
            this.countLine();
          } else if (c === 0x20 || c === 0x09) {
            this.state = SIZE_WS;
            i++;
            this.countLine();
          } else {
            this.fail(400, c === 0x0a ? 'bare LF after chunk size' : 'invalid chunk size');
          }
          break;
        }
        case SIZE_WS: {
          const c = buf[i];
          if (c === 0x0d) {
            this.state = SIZE_LF;
            i++;
          } else {
            if (c === 0x3b) this.state = EXT;
            else if (c !== 0x20 && c !== 0x09) this.fail(400, 'invalid chunk size line');
            i++;
            this.countLine();
          }
          break;
        }
        case EXT: {
          // Extensions are ignored; quoted strings cannot hold CR or LF, so the line ends at the
          // first CR. Control characters other than HTAB are refused.
          let c = 0;
          const start = i;
          while (i < n && (c = buf[i]) !== 0x0d) {
            if ((c < 0x20 && c !== 0x09) || c === 0x7f) this.fail(400, c === 0x0a ? 'bare LF in chunk extension' : 'invalid character in chunk extension');
            i++;
          }
          this.lineBytes += i - start;
          if (this.lineBytes > this.maxLineBytes) this.fail(400, 'chunk-size line too long');
          if (i < n) {
            this.state = SIZE_LF;
            i++;
          }
          break;
        }
        case SIZE_LF: {
          if (buf[i] !== 0x0a) this.fail(400, 'bare CR in chunk-size line');
          i++;
          this.digits = 0;
          this.lineBytes = 0;
          if (this.size === 0) {
            this.state = TRAILER;
            this.trailerBytes = 0;
          } else {
            this.state = DATA;
          }
          break;
        }
        case DATA_CR:
          if (buf[i] !== 0x0d) this.fail(400, 'missing CRLF after chunk data');
          i++;
          this.state = DATA_LF;
          break;
        case DATA_LF:
          if (buf[i] !== 0x0a) this.fail(400, 'missing CRLF after chunk data');
          i++;
          this.state = SIZE;
          break;
        case TRAILER: {
          let c = 0;
          const start = i;
          while (i < n && (c = buf[i]) !== 0x0d) {
            if (c === 0x0a) this.fail(400, 'bare LF in trailer section');
            i++;
          }
          this.trailerBytes += i - start + (i < n ? 1 : 0);
          if (this.trailerBytes > this.maxTrailerBytes) this.fail(431, 'trailer section too large');
          if (i > start) this.line += (buf as Latin1Buffer).latin1Slice(start, i);
          if (i < n) {
            this.state = TRAILER_LF;
            i++;
          }
          break;
        }
        case TRAILER_LF: {
          if (buf[i] !== 0x0a) this.fail(400, 'bare CR in trailer section');
          i++;
          if (++this.trailerBytes > this.maxTrailerBytes) this.fail(431, 'trailer section too large');
          const line = this.line;
          if (line.length === 0) {
            this.state = DONE;
            return i;
          }
          this.line = '';
          this.state = TRAILER;
          try {
            const text = `${line}\r\n`;
            parseFieldLine(Buffer.from(text, 'latin1'), text, 0, this.fields, 'trailer');
          } catch (err) {
            this.state = FAILED;
            throw err;
          }
          break;
        }
        case DONE:
          return i;
        default:
          throw new H1ParseError(400, 'chunked body already failed to parse');
      }
    }
    return n;
  }

  private countLine(): void {
    if (++this.lineBytes > this.maxLineBytes) this.fail(400, 'chunk-size line too long');
  }

  private fail(status: 400 | 431, reason: string): never {
    this.state = FAILED;
    throw new H1ParseError(status, reason);
  }
}
