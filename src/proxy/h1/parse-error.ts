/** A malformed HTTP/1.1 message: `status` is what a server answers (then closes), `reason` says what was wrong, for logs. */
export class H1ParseError extends Error {
  readonly code = 'ERR_NM_HTTP_PARSE';
  constructor(readonly status: 400 | 413 | 431 | 501 | 505, readonly reason: string) { super(reason); this.name = 'H1ParseError'; }
}
