import type { HeaderRecord } from '../../http/headers';
import { forwardH2, forwardHttp1, type AttemptRequest } from '../../http/forward';
import type { UpstreamResponse } from '../../http/exchange';
import type { H2Sessions } from '../../upstream/h2-sessions';
import type { Http1Pools } from '../../upstream/http1-pools';
import type { UpstreamTransport } from '../../upstream/transport';

/** The request as it goes upstream (after routing filters). */
export interface UpstreamRequestHead {
  method: string;
  path: string;
  authority: string;
  headers: HeaderRecord;
  grpc: boolean;
}

/** One attempt over HTTP/2 (gRPC, h2c) or HTTP/1.1, on the pools of the given transport. */
export function sendAttempt(h2: boolean, pools: { h1: Http1Pools; h2: H2Sessions }, transport: UpstreamTransport, target: { address: string; port: number }, attempt: AttemptRequest): Promise<UpstreamResponse> {
  return h2 ? forwardH2(pools.h2, transport, target.address, target.port, attempt) : forwardHttp1(pools.h1, transport, target.address, target.port, attempt);
}
