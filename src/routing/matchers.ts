import { prefixElements } from './filters';
import type { HeaderMap, RequestFacts, RouteMatch } from './types';

/**
 * Request predicates and the precedence order of compiled (route, rule, match) entries.
 * compile.ts builds one Entry per match of every rule; a ServiceRoutes keeps its entries
 * sorted by precedence and the first entry whose predicate holds wins.
 */

/** One request, with what the matchers need computed once (query parsed lazily). */
export class RequestView {
  readonly method: string;
  /** The path without its query. */
  readonly pathOnly: string;
  private readonly rawQuery: string;
  private params: URLSearchParams | undefined;
  private grpcParts: { service: string; method: string } | null | undefined;

  constructor(private readonly req: RequestFacts) {
    this.method = req.method;
    const q = req.path.indexOf('?');
    this.pathOnly = q < 0 ? req.path : req.path.slice(0, q);
    this.rawQuery = q < 0 ? '' : req.path.slice(q + 1);
  }

  /** A header by lower-case name; several values (a list, or several spellings) are joined by ", ". */
  header(lowerName: string): string | undefined {
    return headerValue(this.req.headers, lowerName);
  }

  /** The first value of a query parameter (names are case-sensitive; values are URL-decoded). */
  query(name: string): string | undefined {
    if (this.rawQuery === '') return undefined;
    this.params ??= new URLSearchParams(this.rawQuery);
    return this.params.get(name) ?? undefined;
  }

  /** "/pkg.Service/Method" -> {service, method}; null when the path is not a gRPC method path. */
  grpc(): { service: string; method: string } | null {
    if (this.grpcParts === undefined) {
      const m = /^\/([^/]+)\/([^/]+)$/.exec(this.pathOnly);
      this.grpcParts = m ? { service: m[1]!, method: m[2]! } : null;
    }
    return this.grpcParts;
  }
}

export function headerValue(headers: HeaderMap, lowerName: string): string | undefined {
  const direct = headers[lowerName];
  const values: string[] = [];
  if (direct !== undefined) {
    if (Array.isArray(direct)) values.push(...direct);
    else values.push(direct);
  }
  for (const key of Object.keys(headers)) {
    if (key === lowerName || key.toLowerCase() !== lowerName) continue;
    const value = headers[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) values.push(...value);
    else values.push(value);
  }
  if (values.length === 0) return direct === undefined ? undefined : '';
  return values.length === 1 ? values[0] : values.join(', ');
}

/** A string matcher: exact (case-sensitive) or a regular expression that must match the whole value. */
export type ValueMatcher = { type: 'Exact'; value: string } | { type: 'RegularExpression'; value: string; regex: RegExp };

export function testValue(m: ValueMatcher, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  return m.type === 'Exact' ? actual === m.value : m.regex.test(actual);
}

/** The whole value must match: Envoy's safe_regex (and so Istio, Envoy Gateway) match fully. */
export function fullRegex(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

export type PathMatcher =
  | { type: 'Exact'; value: string }
  | { type: 'PathPrefix'; value: string; elements: string }
  | { type: 'RegularExpression'; value: string; regex: RegExp };

export function pathMatcher(type: 'Exact' | 'PathPrefix' | 'RegularExpression', value: string): PathMatcher {
  if (type === 'Exact') return { type, value };
  if (type === 'PathPrefix') return { type, value, elements: prefixElements(value) };
  return { type, value, regex: fullRegex(value) };
}

/**
 * PathPrefix matches element by element: "/foo" (or "/foo/") matches "/foo", "/foo/",
 * "/foo/bar", not "/foobar". "/" matches every path.
 */
export function testPath(m: PathMatcher, path: string): boolean {
  switch (m.type) {
    case 'Exact':
      return path === m.value;
    case 'PathPrefix': {
      const p = m.elements;
      if (p === '') return path.startsWith('/');
      return path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47 /* '/' */);
    }
    case 'RegularExpression':
      return m.regex.test(path);
  }
}

export interface HeaderCondition {
  /** Lower-case. */
  name: string;
  matcher: ValueMatcher;
}

export interface QueryCondition {
  /** Case-sensitive. */
  name: string;
  matcher: ValueMatcher;
}

export interface HttpCondition {
  path: PathMatcher;
  method?: string;
  headers: HeaderCondition[];
  queryParams: QueryCondition[];
}

export function testHttp(c: HttpCondition, req: RequestView): boolean {
  if (c.method !== undefined && req.method !== c.method) return false;
  if (!testPath(c.path, req.pathOnly)) return false;
  for (const h of c.headers) if (!testValue(h.matcher, req.header(h.name))) return false;
  for (const q of c.queryParams) if (!testValue(q.matcher, req.query(q.name))) return false;
  return true;
}

export interface GrpcCondition {
  /** undefined: any method (a match with headers only). */
  method?: { type: 'Exact'; service?: string; method?: string } | { type: 'RegularExpression'; service?: string; method?: string; serviceRegex?: RegExp; methodRegex?: RegExp };
  headers: HeaderCondition[];
}

export function testGrpc(c: GrpcCondition, req: RequestView): boolean {
  const m = c.method;
  if (m && (m.service !== undefined || m.method !== undefined)) {
    const parts = req.grpc();
    if (!parts) return false;
    if (m.type === 'Exact') {
      if (m.service !== undefined && parts.service !== m.service) return false;
      if (m.method !== undefined && parts.method !== m.method) return false;
    } else {
      if (m.serviceRegex && !m.serviceRegex.test(parts.service)) return false;
      if (m.methodRegex && !m.methodRegex.test(parts.method)) return false;
    }
  }
  for (const h of c.headers) if (!testValue(h.matcher, req.header(h.name))) return false;
  return true;
}

/** The route a rule belongs to, for the cross-route tie-breaks. */
export interface RouteOrder {
  /** creationTimestamp in ms; undefined (not written) sorts after every timestamp. */
  createdMs: number | undefined;
  /** "namespace/name". */
  name: string;
}

export interface Entry {
  /** What match() returns (frozen, shared by all requests). */
  result: RouteMatch;
  test: (req: RequestView) => boolean;
  /** Specificity keys, compared in order, smaller first. */
  rank: readonly number[];
  route: RouteOrder;
  ruleIndex: number;
  matchIndex: number;
  /** For debug output: "PathPrefix /api, GET, 1 header". */
  describe: string;
}

/**
 * HTTPRoute precedence (spec, HTTPRouteRule): 1. Exact path; 2. PathPrefix with the most
 * characters; 3. a method match; 4. most header matches; 5. most query param matches.
 * RegularExpression paths are implementation-specific: here after Exact and before every
 * PathPrefix (Envoy Gateway's order), then by 3-5.
 */
export function httpRank(c: HttpCondition): number[] {
  const pathRank = c.path.type === 'Exact' ? 0 : c.path.type === 'RegularExpression' ? 1 : 2;
  const prefixLength = c.path.type === 'PathPrefix' ? c.path.value.length : 0;
  return [pathRank, -prefixLength, c.method === undefined ? 1 : 0, -c.headers.length, -c.queryParams.length];
}

/**
 * GRPCRoute precedence (spec, GRPCRouteRule), hostnames left out (mesh routes are chosen
 * by Service): most characters in the service, then in the method, then most header
 * matches. On equal characters an Exact method match goes before a RegularExpression one
 * (implementation-specific).
 */
export function grpcRank(c: GrpcCondition): number[] {
  const m = c.method;
  return [-(m?.service?.length ?? 0), -(m?.method?.length ?? 0), m?.type === 'RegularExpression' ? 1 : 0, -c.headers.length];
}

/** Then, across routes: oldest creationTimestamp, then "namespace/name"; within a route: rule order. */
export function compareEntries(a: Entry, b: Entry): number {
  const n = Math.max(a.rank.length, b.rank.length);
  for (let i = 0; i < n; i++) {
    const d = (a.rank[i] ?? 0) - (b.rank[i] ?? 0);
    if (d !== 0) return d;
  }
  const ta = a.route.createdMs ?? Number.POSITIVE_INFINITY;
  const tb = b.route.createdMs ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.route.name !== b.route.name) return a.route.name < b.route.name ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  return a.matchIndex - b.matchIndex;
}
