import type { Duplex } from 'node:stream';
import type { Cancellation } from '../http/cancellation';
import type { UpstreamResponse } from '../http/exchange';
import { H1ClientConnection, type ConnectionOwner, type H1Job, type H1UpstreamRequest } from './client-connection';

export interface H1PoolOptions {
  /** Connections to one endpoint at most; requests beyond wait in a queue. */
  maxConnections: number;
  /** Idle connections are closed after this. */
  keepAliveMs: number;
}

/**
 * Keep-alive HTTP/1.1 connections to one upstream endpoint over one transport. A request
 * takes the most recently used idle connection (warm, least likely to have been closed by
 * the server), else opens one while under the limit, else waits its turn.
 */
export class H1ClientPool implements ConnectionOwner {
  private readonly idle: H1ClientConnection[] = [];
  private readonly queue: H1Job[] = [];
  private total = 0;
  private closed = false;

  constructor(
    private readonly open: () => Promise<Duplex>,
    private readonly options: H1PoolOptions,
  ) {}

  request(req: H1UpstreamRequest, cancel?: Cancellation): Promise<UpstreamResponse> {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      this.dispatch({ req, cancel, resolve, reject, retried: false });
    });
  }

  private dispatch(job: H1Job): void {
    if (this.closed) {
      job.reject(Object.assign(new Error('the upstream pool is closed'), { code: 'ECONNREFUSED' }));
      return;
    }
    if (job.cancel?.cancelled) {
      job.reject(Object.assign(new Error('request cancelled'), { code: 'ERR_NM_CANCELLED' }));
      return;
    }
    const conn = job.retried ? undefined : this.idle.pop();
    if (conn) {
      conn.send(job);
      return;
    }
    if (this.total < this.options.maxConnections) {
      this.connect(job);
      return;
    }
    this.queue.push(job);
    job.cancel?.onCancel(() => {
      const i = this.queue.indexOf(job);
      if (i >= 0) {
        this.queue.splice(i, 1);
        job.reject(Object.assign(new Error('request cancelled while waiting for an upstream connection'), { code: 'ERR_NM_CANCELLED' }));
      }
    });
  }

  private connect(job: H1Job): void {
    this.total++;
    this.open().then(
      (stream) => {
        const conn = new H1ClientConnection(stream, this);
        if (this.closed || job.cancel?.cancelled) {
          this.release(conn);
          if (job.cancel?.cancelled) job.reject(Object.assign(new Error('request cancelled'), { code: 'ERR_NM_CANCELLED' }));
          else job.reject(Object.assign(new Error('the upstream pool is closed'), { code: 'ECONNREFUSED' }));
          return;
        }
        conn.send(job);
      },
      (err: Error) => {
        this.total--;
        job.reject(err);
        // Whoever waits may still get a connection (this failure may have been one-off).
        this.next();
      },
    );
  }

  private next(): void {
    const job = this.queue.shift();
    if (job) this.dispatch(job);
  }

  release(conn: H1ClientConnection): void {
    if (this.closed) {
      conn.close();
      return;
    }
    const job = this.queue.shift();
    if (job) {
      conn.send(job);
      return;
    }
    conn.idleSince = performance.now();
    this.idle.push(conn);
  }

  dead(conn: H1ClientConnection): void {
    this.total--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.next();
  }

  retry(job: H1Job): void {
    this.dispatch(job);
  }

  /** Agent hand-over: every idle connection leaves the pool, detached (its stream open, nobody reading). */
  takeIdle(): Duplex[] {
    const taken = this.idle.splice(0);
    this.total -= taken.length;
    return taken.map((c) => c.detach());
  }

  /** Agent hand-over: a kept-alive connection the previous agent had idle joins the pool as idle. */
  adoptIdle(stream: Duplex): void {
    if (this.closed || stream.destroyed) {
      stream.destroy();
      return;
    }
    this.total++;
    const conn = new H1ClientConnection(stream, this);
    // Kept alive across requests already (in the previous agent): a request that finds it
    // closed by the server meanwhile (its own keep-alive timeout) goes again on a fresh one.
    conn.served = 1;
    this.release(conn);
  }

  /** Closes connections idle for longer than the keep-alive time. */
  sweep(now: number): void {
    for (const conn of [...this.idle]) if (now - conn.idleSince > this.options.keepAliveMs) conn.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get connections(): number {
    return this.total;
  }

  /** Closes idle connections now and busy ones when their response ends; waiting requests fail. */
  close(): void {
    this.closed = true;
    for (const conn of [...this.idle]) conn.close();
    for (const job of this.queue.splice(0)) job.reject(Object.assign(new Error('the upstream pool is closed'), { code: 'ECONNREFUSED' }));
  }
}
