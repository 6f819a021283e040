import pino from 'pino';
import type { Writable } from 'node:stream';
import { logger } from '../log';
import { describeError } from '../errors';
import type { WorkloadInfo } from '../mesh/workload-identity';
import { provenPrincipal, securityPolicy } from './istio-labels';
import type { Reporter } from './reporter';

/**
 * Access logs: one JSON line per HTTP request and one per TCP connection, written with pino
 * to a file, to stdout, or to a stream (tests).
 *
 * Never blocking: files and stdout go through pino's asynchronous destination (sonic-boom),
 * which buffers lines while a write is in flight and writes them in batches. The buffer is
 * bounded (`maxBufferBytes`); a line that would overflow it is dropped and counted
 * (`dropped`), so a slow disk or a stalled stdout reader costs log lines, never the event
 * loop or unbounded memory. A stream destination gets the same bound on its
 * `writableLength`.
 *
 * ## Schema (every line carries every field; `null` where the value is unknown or does not
 * apply to the kind)
 *
 * | field                 | type            | meaning |
 * |-----------------------|-----------------|---------|
 * | component             | "access"        | constant, to filter the agent's streams |
 * | kind                  | "http" / "tcp"  | one HTTP request, or one TCP connection |
 * | start_time            | string          | ISO 8601, when the request (connection) started |
 * | duration_ms           | number          | until the last byte of the response (connection close) |
 * | source_workload       | string \| null  | |
 * | source_namespace      | string \| null  | |
 * | source_address        | string \| null  | downstream peer, "ip:port" |
 * | source_principal      | string \| null  | the source's SPIFFE ID, only when mTLS proved it |
 * | connection_security_policy | string     | destination side: "mutual_tls", "none" (plaintext); source side: "unknown" (as Istio) |
 * | destination_workload  | string \| null  | |
 * | destination_namespace | string \| null  | |
 * | destination_service   | string \| null  | FQDN, b.demo.svc.cluster.local |
 * | upstream_host         | string \| null  | the endpoint connected to, "ip:port" |
 * | route                 | string \| null  | the matched route, "HTTPRoute demo/b-canary#0" |
 * | method                | string \| null  | HTTP method (null for tcp) |
 * | path                  | string \| null  | path and query, at most 2048 characters (null for tcp) |
 * | protocol              | string \| null  | "HTTP/1.1", "HTTP/2" (null for tcp) |
 * | response_code         | number \| null  | HTTP status, 0 when none was sent (null for tcp) |
 * | grpc_status           | number \| null  | gRPC status when the request was gRPC |
 * | response_flags        | string          | Envoy's flags, "-" for none |
 * | response_code_details | string \| null  | why the proxy answered or closed itself, as Envoy's response code (tcp: connection termination) details: `rbac_access_denied_matched_policy[ns[demo]-policy[deny-admin]-rule[0]]` |
 * | audit_policies        | string \| null  | the AUDIT authorization policies that matched, "ns/name#rule" joined with "," |
 * | bytes_received        | number          | from the downstream: request body (http), client bytes (tcp) |
 * | bytes_sent            | number          | to the downstream: response body (http), server bytes (tcp) |
 * | request_id            | string \| null  | x-request-id |
 * | traceparent           | string \| null  | the traceparent sent upstream |
 * | user_agent            | string \| null  | at most 2048 characters |
 * | reporter              | string          | "source" (outbound leg) / "destination" (inbound leg) |
 * | attempts              | number          | upstream attempts, 1 + retries |
 */
export const ACCESS_LOG_FIELDS = {
  component: 'string',
  kind: 'string',
  start_time: 'string',
  duration_ms: 'number',
  source_workload: 'string|null',
  source_namespace: 'string|null',
  source_address: 'string|null',
  source_principal: 'string|null',
  connection_security_policy: 'string',
  destination_workload: 'string|null',
  destination_namespace: 'string|null',
  destination_service: 'string|null',
  upstream_host: 'string|null',
  route: 'string|null',
  method: 'string|null',
  path: 'string|null',
  protocol: 'string|null',
  response_code: 'number|null',
  grpc_status: 'number|null',
  response_flags: 'string',
  response_code_details: 'string|null',
  audit_policies: 'string|null',
  bytes_received: 'number',
  bytes_sent: 'number',
  request_id: 'string|null',
  traceparent: 'string|null',
  user_agent: 'string|null',
  reporter: 'string',
  attempts: 'number',
} as const;

export type AccessLogField = keyof typeof ACCESS_LOG_FIELDS;

/** A peer as the log names it; a WorkloadInfo fits. */
export interface AccessLogPeer {
  name?: string;
  namespace?: string;
}

interface AccessLogEntryBase {
  /** Epoch milliseconds (Date.now()) or a Date. */
  startTime: number | Date;
  durationMs: number;
  reporter: Reporter;
  source?: AccessLogPeer | WorkloadInfo;
  /** "ip:port" */
  sourceAddress?: string;
  /** Whether the leg's connection was mutual TLS (true), plaintext (false), or not known here (undefined): the metrics' rule (istio-labels.ts). */
  mtls?: boolean;
  destination?: AccessLogPeer | WorkloadInfo;
  /** FQDN of the destination Service. */
  destinationService?: string;
  /** "ip:port" */
  upstreamHost?: string;
  route?: string;
  /** Envoy response flags; "-" when none (the default). */
  responseFlags?: string;
  bytesReceived: number;
  bytesSent: number;
  /** Upstream attempts (1 + retries); default 1. */
  attempts?: number;
  /** Envoy's response code details (an authorization denial: which policy). */
  details?: string;
  /** AUDIT policies that matched. */
  audited?: string;
}

export interface HttpAccessEntry extends AccessLogEntryBase {
  method: string;
  path: string;
  /** "HTTP/1.1", "HTTP/2", ... */
  protocol: string;
  /** 0 when no response was sent. */
  responseCode: number;
  grpcStatus?: number;
  requestId?: string;
  traceparent?: string;
  userAgent?: string;
}

export type TcpAccessEntry = AccessLogEntryBase;

export type AccessLogDestination = 'stdout' | { path: string } | Writable;

export interface AccessLogOptions {
  destination: AccessLogDestination;
  /** Most bytes waiting to be written; lines beyond are dropped and counted. Default 16 MiB. */
  maxBufferBytes?: number;
  /**
   * Files and stdout: gather this many bytes before a write (fewer syscalls at high rates);
   * what is gathered is written at least every `flushIntervalMs` (default 1000). At most
   * 16383. Default 0: write as soon as the previous write completed.
   */
  minWriteBytes?: number;
  flushIntervalMs?: number;
}

const MAX_TEXT = 2048;
const DEFAULT_MAX_BUFFER = 16 * 1024 * 1024;
const MAX_MIN_WRITE = 16 * 1024 - 1;

interface Sink {
  write(line: string): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class AccessLog {
  private readonly pino: pino.Logger;
  private readonly sink: Sink;
  private droppedLines = 0;
  private writeErrors = 0;
  private closed = false;
  private readonly log = logger('telemetry');

  constructor(options: AccessLogOptions) {
    const maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER;
    const dest = options.destination;
    const minWrite = options.minWriteBytes ?? 0;
    const interval = options.flushIntervalMs ?? 1000;
    if (dest === 'stdout') this.sink = this.sonicSink(1, maxBuffer, minWrite, interval);
    else if (typeof (dest as Writable).write === 'function') this.sink = this.streamSink(dest as Writable, maxBuffer);
    else this.sink = this.sonicSink((dest as { path: string }).path, maxBuffer, minWrite, interval);
    // No level, time, pid or hostname: the line is exactly the schema above. The level
    // formatter is where pino lets a constant lead the line, so `component` goes there.
    this.pino = pino(
      { base: null, timestamp: false, formatters: { level: () => ({ component: 'access' }) } },
      { write: (line: string) => this.sink.write(line) },
    );
  }

  /** Lines dropped because the buffer was full (or the log was closed). */
  get dropped(): number {
    return this.droppedLines;
  }

  /** Writes that failed (disk full, closed pipe, ...). */
  get errors(): number {
    return this.writeErrors;
  }

  http(e: HttpAccessEntry): void {
    if (this.closed) {
      this.droppedLines++;
      return;
    }
    this.pino.info({
      kind: 'http',
      start_time: isoTime(e.startTime),
      duration_ms: e.durationMs,
      source_workload: e.source?.name || null,
      source_namespace: e.source?.namespace || null,
      source_address: e.sourceAddress || null,
      source_principal: provenPrincipal((e.source as WorkloadInfo | undefined)?.principal, e.mtls) ?? null,
      connection_security_policy: securityPolicy(e.reporter, e.mtls),
      destination_workload: e.destination?.name || null,
      destination_namespace: e.destination?.namespace || null,
      destination_service: e.destinationService || null,
      upstream_host: e.upstreamHost || null,
      route: e.route || null,
      method: e.method || null,
      path: clip(e.path),
      protocol: e.protocol || null,
      response_code: e.responseCode,
      grpc_status: e.grpcStatus ?? null,
      response_flags: e.responseFlags || '-',
      response_code_details: e.details || null,
      audit_policies: e.audited || null,
      bytes_received: e.bytesReceived,
      bytes_sent: e.bytesSent,
      request_id: e.requestId || null,
      traceparent: e.traceparent || null,
      user_agent: clip(e.userAgent),
      reporter: e.reporter,
      attempts: e.attempts ?? 1,
    });
  }

  tcp(e: TcpAccessEntry): void {
    if (this.closed) {
      this.droppedLines++;
      return;
    }
    this.pino.info({
      kind: 'tcp',
      start_time: isoTime(e.startTime),
      duration_ms: e.durationMs,
      source_workload: e.source?.name || null,
      source_namespace: e.source?.namespace || null,
      source_address: e.sourceAddress || null,
      source_principal: provenPrincipal((e.source as WorkloadInfo | undefined)?.principal, e.mtls) ?? null,
      connection_security_policy: securityPolicy(e.reporter, e.mtls),
      destination_workload: e.destination?.name || null,
      destination_namespace: e.destination?.namespace || null,
      destination_service: e.destinationService || null,
      upstream_host: e.upstreamHost || null,
      route: e.route || null,
      method: null,
      path: null,
      protocol: null,
      response_code: null,
      grpc_status: null,
      response_flags: e.responseFlags || '-',
      response_code_details: e.details || null,
      audit_policies: e.audited || null,
      bytes_received: e.bytesReceived,
      bytes_sent: e.bytesSent,
      request_id: null,
      traceparent: null,
      user_agent: null,
      reporter: e.reporter,
      attempts: e.attempts ?? 1,
    });
  }

  /** Resolves when every line logged so far has been handed to the destination. */
  flush(): Promise<void> {
    return this.sink.flush();
  }

  /** Flushes, then closes a file (stdout and an injected stream stay open). Later lines are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sink.close();
  }

  private onError(err: unknown): void {
    this.writeErrors++;
    // Once per power of two, so that a dead destination does not flood the agent's own log.
    if ((this.writeErrors & (this.writeErrors - 1)) === 0) {
      this.log.warn({ errors: this.writeErrors }, `access log write failed: ${describeError(err)}`);
    }
  }

  private sonicSink(dest: number | string, maxBuffer: number, minWriteBytes: number, flushIntervalMs: number): Sink {
    // minLength >= 1 so that sonic-boom's flush(cb) waits for the buffer to drain (with 0 it
    // calls back at once); no line is 1 byte, so 1 behaves as "write right away".
    // sonic-boom requires minLength below its largest single write (16 KiB).
    const minLength = Math.min(Math.max(1, minWriteBytes), MAX_MIN_WRITE);
    const sonic = pino.destination({
      dest,
      sync: false,
      mkdir: typeof dest === 'string',
      minLength,
      maxLength: maxBuffer,
      ...(minWriteBytes > 0 ? { periodicFlush: flushIntervalMs } : {}),
    });
    sonic.on('drop', (data: string | Buffer) => {
      this.droppedLines += countLines(data);
    });
    sonic.on('error', (err: unknown) => this.onError(err));

    // Lines logged in one event-loop turn go to sonic-boom as one string: its write() costs
    // about as much per call as pino's serialisation does (it measures the byte length of
    // its whole pending chunk each time), so one call per turn instead of one per line.
    let batch: string[] = [];
    let batchChars = 0;
    let scheduled = false;
    const handOver = (): void => {
      scheduled = false;
      if (batch.length === 0 || ended) return;
      const data = batch.length === 1 ? batch[0]! : batch.join('');
      batch = [];
      batchChars = 0;
      sonic.write(data);
    };

    let ended: Promise<void> | undefined;
    const flush = (): Promise<void> =>
      new Promise((resolve) => {
        if (ended) return resolve();
        handOver();
        // sonic-boom fsyncs after draining; pipes and ttys refuse (EINVAL): the lines are
        // written all the same.
        sonic.flush(() => resolve());
      });
    return {
      write: (line) => {
        if (batchChars + line.length > maxBuffer) {
          this.droppedLines++;
          return;
        }
        batch.push(line);
        batchChars += line.length;
        if (!scheduled) {
          scheduled = true;
          setImmediate(handOver);
        }
      },
      flush,
      close: async () => {
        await flush();
        ended ??= new Promise<void>((resolve) => {
          sonic.once('close', () => resolve());
          // A destination that never opened (bad path) closes with an error instead.
          sonic.once('error', () => resolve());
          sonic.end();
        });
        await ended;
      },
    };
  }

  private streamSink(stream: Writable, maxBuffer: number): Sink {
    stream.on('error', (err) => this.onError(err));
    const flush = (): Promise<void> =>
      new Promise((resolve) => {
        if (stream.destroyed || stream.writableEnded || stream.writableLength === 0) return resolve();
        // Chunks complete in order: when this empty one is done, every line before it is.
        stream.write('', () => resolve());
      });
    return {
      write: (line) => {
        if (stream.destroyed || stream.writableEnded || stream.writableLength + line.length > maxBuffer) {
          this.droppedLines++;
          return;
        }
        stream.write(line);
      },
      flush,
      close: flush,
    };
  }
}

function isoTime(t: number | Date): string {
  const ms = typeof t === 'number' ? t : t.getTime();
  // An invalid time must not throw out of the request path: log the time of logging.
  return new Date(Number.isFinite(ms) ? ms : Date.now()).toISOString();
}

function countLines(data: string | Buffer): number {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function clip(s: string | undefined): string | null {
  if (!s) return null;
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
}
