import { describeError } from '../../errors';
import type { Logger } from '../../log';
import type { ConnectionInfo } from '../connection-info';
import type { ProxyConfig } from '../proxy-config';
import { Cancellation } from './cancellation';
import type { DownstreamExchange } from './exchange';
import { ProxyResponseError } from './proxy-response-error';
import { respondError } from './respond';
import type { RequestState } from './request-state';

/** A stage answered the request itself (a redirect, an injected fault): later stages do not run. */
export const RESPONDED = Symbol('responded');
export type StageOutcome = void | typeof RESPONDED;

/** What every stage sees of a request; a direction's pipeline extends it with its own facts. */
export interface StageContext {
  readonly ex: DownstreamExchange;
  readonly conn: ConnectionInfo;
  /** The configuration the request started with, kept to its end. */
  readonly config: ProxyConfig;
  readonly state: RequestState;
  readonly cancel: Cancellation;
  readonly method: string;
  readonly grpc: boolean;
  path: string;
}

/**
 * One step of the HTTP pipeline. `run` does the step (throwing a ProxyResponseError to
 * answer with an error); `finish` runs at the end of every request, in reverse order,
 * whether or not `run` did (it releases what `run` took, or reports).
 */
export interface HttpStage<C extends StageContext> {
  readonly name: string;
  run?(ctx: C): StageOutcome | Promise<StageOutcome>;
  finish?(ctx: C): void;
}

/** Whatever a handler of requests looks like to the HTTP servers that feed it. */
export interface RequestHandler {
  handle(ex: DownstreamExchange, conn: ConnectionInfo): Promise<void>;
}

/**
 * The HTTP pipeline as an ordered list of stages (for outbound: telemetry, route, client
 * policy, upstream; authorization slots in before upstream). The same code serves
 * HTTP/1.1 and HTTP/2 (h2c, gRPC) downstreams. A synchronous stage costs no await.
 */
export class StagedPipeline<C extends StageContext> implements RequestHandler {
  private readonly runs: Array<NonNullable<HttpStage<C>['run']>>;
  private readonly finishes: Array<NonNullable<HttpStage<C>['finish']>>;

  constructor(
    readonly stages: readonly HttpStage<C>[],
    private readonly config: { readonly current: ProxyConfig },
    private readonly makeContext: (ex: DownstreamExchange, conn: ConnectionInfo, config: ProxyConfig) => C,
    private readonly logger: Logger,
  ) {
    this.runs = stages.flatMap((s) => (s.run ? [s.run.bind(s)] : []));
    this.finishes = stages.flatMap((s) => (s.finish ? [s.finish.bind(s)] : [])).reverse();
  }

  async handle(ex: DownstreamExchange, conn: ConnectionInfo): Promise<void> {
    const ctx = this.makeContext(ex, conn, this.config.current);
    ex.onClose(() => {
      ctx.state.flags.push('DC');
      ctx.cancel.cancel();
    });
    try {
      for (const run of this.runs) {
        let outcome = run(ctx);
        if (outcome instanceof Promise) outcome = await outcome;
        if (outcome === RESPONDED) break;
      }
    } catch (err) {
      if (err instanceof ProxyResponseError) {
        ctx.state.flags.push(err.flag);
        respondError(ex, err.status, err.message, ctx.grpc, ctx.state);
      } else if (!ctx.cancel.cancelled) {
        this.logger.warn({ err: describeError(err), path: ctx.path, pod: conn.podKey }, 'request failed');
        respondError(ex, 502, describeError(err), ctx.grpc, ctx.state);
      }
    } finally {
      for (const finish of this.finishes) finish(ctx);
    }
  }
}
