import type { OtherObject } from '../config/objects';
import { FieldError, isRecord, objectLabel } from '../config/validation';
import { formatGatewayDuration } from '../config/duration';
import { grpcRank, httpRank, testGrpc, testHttp, type Entry, type GrpcCondition, type HttpCondition, type RouteOrder } from './matchers';
import { readBackends } from './parse-backends';
import type { Context } from './parse-context';
import { GRPC_FILTERS, HTTP_FILTERS, readFilters } from './parse-filters';
import { DEFAULT_HTTP_MATCH, readGrpcMatch, readHttpMatch } from './parse-matches';
import { GATEWAY_GROUP } from './gateway-group';
import { duration, read, type Obj } from './route-fields';
import type { Parent, RouteSpec } from './route-table';
import { parentReference } from './route-status';
import type { MirrorSpec, RetryPolicy, RouteMatch, RouteTimeouts, WeightedBackend } from './types';

/**
 * One HTTPRoute or GRPCRoute into a RouteSpec: its Service parents and its rules' entries.
 * A rule the API server (or its CEL validations) would have refused, or something
 * nodemesh cannot honour, throws FieldError: the route is rejected whole.
 */

/**
 * The Service parents of a route. Parents of other kinds (Gateways) are none of our
 * business and skipped. Returns [] for a route that attaches to no Service.
 */
function readParents(spec: Obj, ctx: Context): Parent[] {
  const parents: Parent[] = [];
  read.list(spec.parentRefs, 'spec.parentRefs').forEach((entry, i) => {
    const path = `spec.parentRefs[${i}]`;
    const ref = read.record(entry, path);
    if (!ref) throw new FieldError(path, 'must be a mapping {group, kind, name, port}');
    const group = read.string(ref.group, `${path}.group`) ?? GATEWAY_GROUP;
    const kind = read.string(ref.kind, `${path}.kind`) ?? 'Gateway';
    if (kind !== 'Service') return;
    if (group !== '' && group !== 'core') {
      ctx.warnings.push({
        path: `${path}.group`,
        reason: `kind Service with group "${group}" is not a core Service, so the route does not attach to it; write group: "" for a mesh (GAMMA) route (the group defaults to ${GATEWAY_GROUP})`,
      });
      return;
    }
    const name = read.requiredString(ref.name, `${path}.name`, 'the Service name');
    const namespace = read.string(ref.namespace, `${path}.namespace`) || ctx.namespace;
    const serviceKey = `${namespace}/${name}`;
    const service = ctx.services.get(serviceKey);
    let port = read.integer(ref.port, `${path}.port`, 1, 65535, 'a Service port');
    const sectionName = read.string(ref.sectionName, `${path}.sectionName`);
    const written = parentReference(ref)!;
    /** The parent does not match (Accepted=False, NoMatchingParent), and why. */
    const noMatch = (field: string, reason: string): void => {
      ctx.warnings.push({ path: `${path}.${field}`, reason });
      ctx.parents.push({ ref: written, problem: reason });
    };
    if (sectionName !== undefined && sectionName !== '') {
      // For a Service parent, sectionName names one of its ports.
      const named = service?.ports.find((p) => p.name === sectionName);
      if (!named) {
        noMatch(
          'sectionName',
          service
            ? `Service ${serviceKey} has no port named "${sectionName}", so the route does not attach to it; name one of its ports (${service.ports.map((p) => p.name ?? p.port).join(', ')})`
            : `Service ${serviceKey} does not exist, so its port "${sectionName}" cannot be found and the route does not attach to it`,
        );
        return;
      }
      if (port !== undefined && port !== named.port) {
        throw new FieldError(`${path}.port`, `${port} is not the port named "${sectionName}" (${named.port}); when both are set they must name the same Service port`);
      }
      port = named.port;
      ctx.parents.push({ ref: written });
    } else if (!service) {
      noMatch('name', `Service ${serviceKey} does not exist; the route applies once it does (check the parentRef's name and namespace)`);
    } else if (port !== undefined && !service.ports.some((p) => p.port === port)) {
      noMatch('port', `Service ${serviceKey} has no port ${port}; the route applies to that port once the Service exposes it (ports: ${service.ports.map((p) => p.port).join(', ')})`);
    } else {
      ctx.parents.push({ ref: written });
    }
    const parent: Parent = { serviceKey, port, consumer: namespace === ctx.namespace ? undefined : ctx.namespace };
    if (!parents.some((p) => p.serviceKey === parent.serviceKey && p.port === parent.port)) parents.push(parent);
  });
  return parents;
}

function readTimeouts(value: unknown, path: string): RouteTimeouts {
  const t = read.record(value, path);
  const out: RouteTimeouts = {};
  if (!t) return out;
  const request = duration(t.request, `${path}.request`);
  const backendRequest = duration(t.backendRequest, `${path}.backendRequest`);
  if (request !== undefined && backendRequest !== undefined && request !== 0 && (backendRequest === 0 || backendRequest > request)) {
    throw new FieldError(
      `${path}.backendRequest`,
      `${backendRequest === 0 ? '0s (no timeout)' : formatGatewayDuration(backendRequest)} is longer than the request timeout ${formatGatewayDuration(request)}; make it at most the request timeout (it bounds each attempt, the request timeout bounds them all)`,
    );
  }
  if (request !== undefined) out.requestMs = request;
  if (backendRequest !== undefined) out.backendRequestMs = backendRequest;
  return out;
}

/** Defaults when a retry stanza leaves them out (implementation-specific in the spec). */
export const RETRY_DEFAULTS = Object.freeze({ attempts: 2, backoffMs: 25 });

function readRetry(value: unknown, path: string): RetryPolicy | undefined {
  const r = read.record(value, path);
  if (!r) return undefined;
  const codes = read.list(r.codes, `${path}.codes`).map((code, i) => read.integer(code, `${path}.codes[${i}]`, 400, 599, 'an HTTP status code to retry')!);
  const attempts = read.integer(r.attempts, `${path}.attempts`, 0, 1000, 'the maximum number of retries') ?? RETRY_DEFAULTS.attempts;
  const backoffMs = duration(r.backoff, `${path}.backoff`) ?? RETRY_DEFAULTS.backoffMs;
  return Object.freeze({ attempts, backoffMs, codes: Object.freeze([...new Set(codes)]) as number[] });
}

function creationMs(object: OtherObject): number | undefined {
  const meta = isRecord(object.object.metadata) ? object.object.metadata : {};
  const ts = meta.creationTimestamp;
  if (ts instanceof Date) return Number.isNaN(ts.getTime()) ? undefined : ts.getTime();
  if (typeof ts !== 'string') return undefined;
  const ms = Date.parse(ts);
  return Number.isNaN(ms) ? undefined : ms;
}

function describeHttp(c: HttpCondition): string {
  const parts = [`${c.path.type} ${c.path.value}`];
  if (c.method) parts.push(c.method);
  for (const h of c.headers) parts.push(`header ${h.name} ${h.matcher.type === 'Exact' ? '=' : '~'} ${h.matcher.value}`);
  for (const q of c.queryParams) parts.push(`query ${q.name} ${q.matcher.type === 'Exact' ? '=' : '~'} ${q.matcher.value}`);
  return parts.join(', ');
}

function describeGrpc(c: GrpcCondition): string {
  const parts = [c.method ? `${c.method.type} /${c.method.service ?? '*'}/${c.method.method ?? '*'}` : 'any method'];
  for (const h of c.headers) parts.push(`header ${h.name} ${h.matcher.type === 'Exact' ? '=' : '~'} ${h.matcher.value}`);
  return parts.join(', ');
}

/** Parses one route; throws FieldError for a rejection. Returns undefined when it attaches to no Service. */
export function parseRoute(other: OtherObject, ctx: Context): RouteSpec | undefined {
  const spec = read.record(other.object.spec, 'spec');
  if (!spec) {
    // Without a spec there is no parentRef: nothing attaches.
    return undefined;
  }
  const parents = readParents(spec, ctx);
  if (parents.length === 0) return undefined;
  const routeKey = objectLabel(ctx.kind, ctx.namespace, other.name);
  const order: RouteOrder = { createdMs: creationMs(other), name: `${ctx.namespace}/${other.name}` };
  const grpc = ctx.kind === 'GRPCRoute';
  const rawRules = read.list(spec.rules, 'spec.rules');
  // The API server defaults an HTTPRoute without rules to one rule matching every path
  // (and, with no backendRefs, answering 500); a GRPCRoute rule without matches matches all.
  const rules = rawRules.length === 0 ? [{}] : rawRules;
  const entries: Entry[] = [];
  rules.forEach((raw, r) => {
    const rpath = `spec.rules[${r}]`;
    const rule = read.record(raw, rpath);
    if (!rule) throw new FieldError(rpath, 'must be a mapping {matches, filters, backendRefs, ...}');
    const ruleName = read.string(rule.name, `${rpath}.name`);
    const rawMatches = read.list(rule.matches, `${rpath}.matches`);
    let conditions: Array<HttpCondition | GrpcCondition>;
    if (grpc) {
      conditions = rawMatches.length === 0 ? [{ headers: [] }] : rawMatches.map((m, i) => readGrpcMatch(m, `${rpath}.matches[${i}]`));
    } else {
      conditions = rawMatches.length === 0 ? [DEFAULT_HTTP_MATCH] : rawMatches.map((m, i) => readHttpMatch(m, `${rpath}.matches[${i}]`));
    }
    const matchedPrefix = (): string | undefined => {
      if (conditions.length !== 1) return undefined;
      const only = conditions[0] as HttpCondition;
      return only.path.type === 'PathPrefix' ? only.path.value : undefined;
    };
    const filters = readFilters(
      rule.filters,
      `${rpath}.filters`,
      grpc ? GRPC_FILTERS : HTTP_FILTERS,
      grpc ? 'on a GRPCRoute' : 'on an HTTPRoute',
      ctx,
      matchedPrefix,
    );
    const backends = readBackends(rule.backendRefs, `${rpath}.backendRefs`, ctx);
    let timeouts: RouteTimeouts = {};
    let retry: RetryPolicy | undefined;
    if (grpc) {
      for (const field of ['timeouts', 'retry']) {
        if (rule[field] !== undefined) ctx.warnings.push({ path: `${rpath}.${field}`, reason: `GRPCRoute rules have no ${field} field (only HTTPRoute rules do); it is ignored` });
      }
    } else {
      timeouts = readTimeouts(rule.timeouts, `${rpath}.timeouts`);
      retry = readRetry(rule.retry, `${rpath}.retry`);
    }
    const base = {
      routeKey,
      ruleIndex: r,
      ...(ruleName !== undefined && ruleName !== '' && { ruleName }),
      backends: Object.freeze(backends) as WeightedBackend[],
      ...(filters.requestHeaderModifier && { requestHeaderModifier: filters.requestHeaderModifier }),
      ...(filters.responseHeaderModifier && { responseHeaderModifier: filters.responseHeaderModifier }),
      mirrors: Object.freeze(filters.mirrors) as MirrorSpec[],
      ...(filters.urlRewrite && { urlRewrite: filters.urlRewrite }),
      ...(filters.redirect && { redirect: filters.redirect }),
      timeouts: Object.freeze(timeouts),
      ...(retry && { retry }),
    };
    conditions.forEach((condition, m) => {
      const result: RouteMatch = Object.freeze({ ...base, matchIndex: m });
      if (grpc) {
        const c = condition as GrpcCondition;
        entries.push({ result, test: (req) => testGrpc(c, req), rank: grpcRank(c), route: order, ruleIndex: r, matchIndex: m, describe: describeGrpc(c) });
      } else {
        const c = condition as HttpCondition;
        entries.push({ result, test: (req) => testHttp(c, req), rank: httpRank(c), route: order, ruleIndex: r, matchIndex: m, describe: describeHttp(c) });
      }
    });
  });
  return { routeKey, protocol: grpc ? 'grpc' : 'http', entries, parents };
}
