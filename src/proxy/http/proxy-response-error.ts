/**
 * A response the proxy itself gives instead of the upstream's, with the Envoy response
 * flag that says which layer refused (NR no route, RL rate limited, UH no healthy
 * upstream...). A stage throws it; the pipeline writes it and reports the flag.
 */
export class ProxyResponseError extends Error {
  constructor(readonly status: number, readonly flag: string, message: string) {
    super(message);
  }
}
