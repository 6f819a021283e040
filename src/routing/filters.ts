import type { HeaderMap, HeaderModifier, MirrorSpec, PathModifier, RouteMatch } from './types';

/**
 * The Gateway API filters, applied by the proxy to one request: header modifiers, URL
 * rewrite, redirect location, mirror sampling. Pure functions over plain values.
 */

function deleteHeader(headers: HeaderMap, lowerName: string): void {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === lowerName) delete headers[key];
}

function currentValues(headers: HeaderMap, lowerName: string): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== lowerName || value === undefined) continue;
    if (Array.isArray(value)) out.push(...value);
    else out.push(value);
  }
  return out;
}

/**
 * HTTPHeaderFilter, in place. Names are case-insensitive; every header the filter touches
 * ends up under its lower-case name (as Node presents incoming headers).
 *  - remove: drops the header (all spellings of its name);
 *  - set:    replaces every value with the given one;
 *  - add:    appends a value to the existing ones (a list: one header line each, which
 *            HTTP reads as "old,new"), or creates the header.
 * Order: remove, then set, then add (Envoy's order), so "remove X + add X" yields X with
 * exactly the added value.
 */
export function applyHeaderModifier(headers: HeaderMap, mod: HeaderModifier): void {
  for (const name of mod.remove) deleteHeader(headers, name.toLowerCase());
  for (const { name, value } of mod.set) {
    const lower = name.toLowerCase();
    deleteHeader(headers, lower);
    headers[lower] = value;
  }
  for (const { name, value } of mod.add) {
    const lower = name.toLowerCase();
    const existing = currentValues(headers, lower);
    deleteHeader(headers, lower);
    headers[lower] = existing.length === 0 ? value : [...existing, value];
  }
}

function splitQuery(path: string): { pathOnly: string; query: string } {
  const q = path.indexOf('?');
  return q < 0 ? { pathOnly: path, query: '' } : { pathOnly: path.slice(0, q), query: path.slice(q) };
}

/** "/foo/" -> "/foo", "/" -> "" : the prefix as path elements (a trailing '/' is ignored). */
export function prefixElements(prefix: string): string {
  let out = prefix;
  while (out.endsWith('/')) out = out.slice(0, -1);
  return out;
}

/**
 * The spec's table for ReplacePrefixMatch (HTTPPathModifier):
 *   /foo/bar + prefix /foo  + replace /xyz  -> /xyz/bar
 *   /foo/bar + prefix /foo/ + replace /xyz/ -> /xyz/bar
 *   /foo/    + prefix /foo  + replace /xyz  -> /xyz/
 *   /foo/bar + prefix /foo  + replace ""    -> /bar
 *   /foo     + prefix /foo  + replace "/"   -> /
 * The prefix is matched on element boundaries, so the rest of the path is either empty
 * or starts with '/'.
 */
export function replacePrefix(pathOnly: string, matchedPrefix: string, replacement: string): string {
  const prefix = prefixElements(matchedPrefix);
  if (!pathOnly.startsWith(prefix) || (pathOnly.length > prefix.length && pathOnly[prefix.length] !== '/')) return pathOnly;
  const rest = pathOnly.slice(prefix.length);
  const result = prefixElements(replacement) + rest;
  if (result === '') return '/';
  return result.startsWith('/') ? result : `/${result}`;
}

function modifyPath(path: string, modifier: PathModifier | undefined): string {
  if (!modifier) return path;
  const { pathOnly, query } = splitQuery(path);
  const next = modifier.type === 'ReplaceFullPath' ? modifier.replaceFullPath : replacePrefix(pathOnly, modifier.matchedPrefix, modifier.replacePrefixMatch);
  return next + query;
}

/** URLRewrite: the path (query kept) and Host to send upstream. Unchanged without the filter. */
export function applyUrlRewrite(req: { path: string; host: string }, match: Pick<RouteMatch, 'urlRewrite'>): { path: string; host: string } {
  const rewrite = match.urlRewrite;
  if (!rewrite) return { path: req.path, host: req.host };
  return { path: modifyPath(req.path, rewrite.path), host: rewrite.hostname ?? req.host };
}

/** The host part of a Host header: "a.b:8080" -> "a.b", "[::1]:80" -> "[::1]". */
export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end < 0 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon < 0 || host.indexOf(':', colon + 1) >= 0 ? host : host.slice(0, colon);
}

const WELL_KNOWN: Record<string, number> = { http: 80, https: 443 };

/**
 * RequestRedirect: status and Location. Per the spec:
 *  - scheme: the filter's, else the request's;
 *  - hostname: the filter's, else the request's Host without its port;
 *  - port: the filter's; else, when the filter sets a scheme, that scheme's well-known
 *    port; else the port the request came in on (`req.port`, the Service port here, the
 *    "listener port" of the spec); the port is left out when it is the default for the
 *    scheme (http:80, https:443) or unknown;
 *  - path: modified per the filter, else the request's; the query is kept.
 */
export function redirectLocation(
  req: { path: string; host: string; scheme: 'http' | 'https'; port?: number },
  match: Pick<RouteMatch, 'redirect'>,
): { status: number; location: string } {
  const redirect = match.redirect;
  if (!redirect) throw new TypeError('redirectLocation: the matched rule has no RequestRedirect filter');
  const scheme = redirect.scheme ?? req.scheme;
  const hostname = redirect.hostname ?? hostWithoutPort(req.host);
  const port = redirect.port ?? (redirect.scheme !== undefined ? WELL_KNOWN[redirect.scheme] : req.port);
  const portPart = port === undefined || port === WELL_KNOWN[scheme] ? '' : `:${port}`;
  const path = modifyPath(req.path, redirect.path);
  return { status: redirect.statusCode, location: `${scheme}://${hostname}${portPart}${path}` };
}

/** Whether this request is mirrored: percent, or fraction numerator/denominator, of requests; neither = all. */
export function shouldMirror(spec: MirrorSpec, random: () => number = Math.random): boolean {
  if (spec.fraction) {
    const { numerator, denominator } = spec.fraction;
    if (numerator <= 0) return false;
    if (numerator >= denominator) return true;
    return random() * denominator < numerator;
  }
  if (spec.percent !== undefined) {
    if (spec.percent <= 0) return false;
    if (spec.percent >= 100) return true;
    return random() * 100 < spec.percent;
  }
  return true;
}
