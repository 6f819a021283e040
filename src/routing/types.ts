/**
 * The shapes the routing engine hands to the proxy. Everything here is plain data,
 * built once per snapshot by compile.ts and frozen: a request never allocates a route.
 */

/** The route kinds nodemesh reads (Gateway API, attached to Services). */
export type RouteKind = 'HTTPRoute' | 'GRPCRoute';

/** Headers as Node keeps them (incoming: lower-case names; several values as a list). */
export type HeaderMap = Record<string, string | string[] | undefined>;

/** What the routing engine needs to know about one request. */
export interface RequestFacts {
  /** The request method, as received ("GET"; methods are case-sensitive). */
  method: string;
  /** Path and query as received ("/api/v1/x?y=1"); for gRPC "/package.Service/Method". */
  path: string;
  /** Header names are looked up case-insensitively; a list is read as its values joined by ", ". */
  headers: HeaderMap;
}

/** HTTPHeaderFilter: names lower-cased at compile time, values as written. */
export interface HeaderModifier {
  set: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  add: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  remove: readonly string[];
}

/** A Service backend a rule (or a mirror) sends to. */
export interface BackendTarget {
  /** namespace/name; the namespace defaults to the route's. */
  serviceKey: string;
  port: number;
  /**
   * Set when the reference cannot be used: the Service (or its port) does not exist, or it
   * is not a core Service. Requests that pick this backend must
   * get a 500 (Gateway API: "500 status codes MUST be returned for requests that would
   * have otherwise been routed to an invalid backend"). The text says why.
   */
  unresolved?: string;
}

export interface WeightedBackend extends BackendTarget {
  /** 0 ... 1,000,000; default 1. A weight of 0 is never picked. */
  weight: number;
  /** backendRefs[].filters: applied only to requests sent to this backend (after the rule's). */
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
}

/** RequestMirror: send a copy of the request to `backend`, ignore its response. */
export interface MirrorSpec {
  backend: BackendTarget;
  /** Percent of requests mirrored (0-100). Neither percent nor fraction: every request. */
  percent?: number;
  fraction?: { numerator: number; denominator: number };
}

export type PathModifier =
  | { type: 'ReplaceFullPath'; replaceFullPath: string }
  | {
      type: 'ReplacePrefixMatch';
      replacePrefixMatch: string;
      /** The rule's PathPrefix match value (the spec allows this modifier only with exactly one). */
      matchedPrefix: string;
    };

export interface UrlRewrite {
  /** Replaces the Host (HTTP/1) / :authority header. */
  hostname?: string;
  path?: PathModifier;
}

export interface Redirect {
  /** Empty: the request's scheme. */
  scheme?: 'http' | 'https';
  /** Empty: the request's Host header (without its port). */
  hostname?: string;
  /** Empty: derived (well-known port of `scheme`, else the port the request came in on). */
  port?: number;
  path?: PathModifier;
  /** 301, 302 (default), 303, 307 or 308. */
  statusCode: number;
}

export interface RouteTimeouts {
  /** rules[].timeouts.request in ms; 0 = explicitly disabled ("0s"); undefined = not set (proxy default). */
  requestMs?: number;
  /** rules[].timeouts.backendRequest in ms, per attempt; 0 = disabled; undefined = not set. */
  backendRequestMs?: number;
}

export interface RetryPolicy {
  /** Maximum retries after the first attempt (0 = none). */
  attempts: number;
  /** Minimum wait between attempts, ms. */
  backoffMs: number;
  /** HTTP status codes (400-599) that are retried; connection failures are the proxy's call. */
  codes: number[];
}

/** The rule that matched a request and everything the proxy needs to act on it. */
export interface RouteMatch {
  /** "HTTPRoute demo/b-canary" or "GRPCRoute demo/b-grpc". */
  routeKey: string;
  /** Index of the rule in spec.rules. */
  ruleIndex: number;
  /** rules[].name, when set. */
  ruleName?: string;
  /** Index in rules[].matches of the match that selected the rule (0 for a rule without matches). */
  matchIndex: number;
  /** From backendRefs. Empty (and no redirect): answer 500, as the spec says. */
  backends: WeightedBackend[];
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  mirrors: MirrorSpec[];
  urlRewrite?: UrlRewrite;
  redirect?: Redirect;
  timeouts: RouteTimeouts;
  retry?: RetryPolicy;
}

export type RouteProtocol = 'http' | 'grpc';
