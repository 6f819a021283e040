import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Connection-specific headers (RFC 9110 §7.6.1): never forwarded, and illegal in HTTP/2. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

export type HeaderRecord = Record<string, string | string[] | undefined>;

/**
 * The request's end-to-end headers as a plain map (pseudo-headers and hop-by-hop headers
 * removed; names listed in `Connection` removed too), and its authority from Host or
 * :authority.
 */
export function requestHeaders(raw: IncomingHttpHeaders): { headers: HeaderRecord; authority: string } {
  const out: HeaderRecord = {};
  const listed = String(raw['connection'] ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of Object.keys(raw)) {
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || listed.includes(name)) continue;
    out[name] = raw[name];
  }
  // gRPC needs `te: trailers` end to end.
  if (raw['te'] === 'trailers') out['te'] = 'trailers';
  const authority = String(raw[':authority'] ?? raw['host'] ?? '');
  return { headers: out, authority };
}

/** Response headers safe to send downstream (HTTP/1.1 or HTTP/2). */
export function responseHeaders(raw: Record<string, string | string[] | number | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(raw)) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    const v = raw[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

export function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * End-to-end headers from a parsed HTTP/1.1 head ([name, value, ...], names lower-cased):
 * hop-by-hop headers and those named by Connection are dropped, repeated names become
 * arrays. `te: trailers` is kept (gRPC needs it end to end).
 */
export function headersFromList(list: readonly string[], connectionTokens: readonly string[]): HeaderRecord {
  const out: HeaderRecord = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'te' && value.toLowerCase() === 'trailers') out['te'] = 'trailers';
      continue;
    }
    if (connectionTokens.length > 0 && connectionTokens.includes(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (typeof prev === 'string') out[name] = [prev, value];
    else prev.push(value);
  }
  return out;
}

/** The value of `name` in a parsed head's list (the first, when repeated). */
export function headerFromList(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}
