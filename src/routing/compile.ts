import { NodemeshError } from '../errors';
import type { OtherObject } from '../config/objects';
import { objectLabel, rejection, type RejectedObject } from '../config/validation';
import type { ServiceInfo } from '../mesh/model';
import { formatGatewayDuration, parseGatewayDuration } from '../config/duration';
import {
  compareEntries,
  fullRegex,
  grpcRank,
  httpRank,
  pathMatcher,
  RequestView,
  testGrpc,
  testHttp,
  type Entry,
  type GrpcCondition,
  type HeaderCondition,
  type HttpCondition,
  type QueryCondition,
  type RouteOrder,
  type ValueMatcher,
} from './matchers';
import type {
  BackendTarget,
  HeaderModifier,
  MirrorSpec,
  PathModifier,
  Redirect,
  RequestFacts,
  RetryPolicy,
  RouteMatch,
  RouteProtocol,
  RouteTimeouts,
  UrlRewrite,
  WeightedBackend,
} from './types';

export type { RequestFacts, RouteMatch, WeightedBackend, HeaderModifier, MirrorSpec, UrlRewrite, Redirect } from './types';

/**
 * Gateway API HTTPRoute and GRPCRoute objects attached to Services (GAMMA: parentRefs
 * `{group: "", kind: Service, name, port?}`) into per-Service route tables.
 *
 * A route that breaks a rule the API server (or its CEL validations) would have enforced,
 * or that uses something nodemesh cannot honour (an unknown filter, a non-Service
 * backend), is rejected whole with the field to fix; the other routes still compile.
 * References that cannot be resolved now (a backend Service that does not exist, a
 * cross-namespace backend without a ReferenceGrant) are not rejections: the backend is
 * kept, marked `unresolved`, requests picking it get a 500 (as the spec says), and a
 * warning is reported.
 */

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
/** Warning code: a reference that does not resolve (the route still applies). */
export const ROUTE_REF_WARNING = 'WARN_NM_ROUTE_REF';

export interface ServiceRoutes {
  /** The rule that handles the request, or undefined (no rule matches: the spec's 404). */
  match(req: RequestFacts): RouteMatch | undefined;
  /** The entries in precedence order, for debug output. */
  describe(): string[];
}

export interface CompileResult {
  table: RouteTable;
  /** Routes that do not apply at all, with the field to fix. */
  rejected: RejectedObject[];
  /** Routes that apply but reference something that does not resolve (code WARN_NM_ROUTE_REF). */
  warnings: RejectedObject[];
}

// ---------------------------------------------------------------------------------------
// Field reading

class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

type Obj = Record<string, unknown>;

function isRecord(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `a timestamp (${value.toISOString()})`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value}"`;
  return `${typeof value} ${String(value)}`;
}

function record(value: unknown, path: string): Obj | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new FieldError(path, `must be a mapping, got ${describe(value)}`);
  return value;
}

function list(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new FieldError(path, `must be a list, got ${describe(value)}`);
  return value;
}

function str(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new FieldError(path, `must be a string, got ${describe(value)}`);
  return value;
}

function requiredStr(value: unknown, path: string, what = 'a non-empty string'): string {
  const text = str(value, path);
  if (text === undefined || text === '') throw new FieldError(path, `required (${what})`);
  return text;
}

function int(value: unknown, path: string, min: number, max: number, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new FieldError(path, `must be ${what} (an integer from ${min} to ${max}), got ${describe(value)}`);
  }
  return value;
}

function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[], fallback: T | undefined, what: string): T {
  const text = str(value, path) ?? fallback;
  if (text === undefined) throw new FieldError(path, `required (${what}: ${allowed.join(', ')})`);
  if (!(allowed as readonly string[]).includes(text)) throw new FieldError(path, `"${text}" is not ${what} (use ${allowed.join(', ')})`);
  return text as T;
}

function duration(value: unknown, path: string): number | undefined {
  const text = str(value, path);
  if (text === undefined) return undefined;
  try {
    return parseGatewayDuration(text);
  } catch (err) {
    if (err instanceof NodemeshError) throw new FieldError(path, err.message);
    throw err;
  }
}

function regex(source: string, path: string, against: string): RegExp {
  try {
    return fullRegex(source);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err);
    throw new FieldError(path, `"${source}" is not a valid regular expression (${why}); write a JavaScript RegExp, matched against the whole ${against} (RE2 inline flags such as (?i) are not supported)`);
  }
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
const REDIRECT_CODES = [301, 302, 303, 307, 308];
const MAX_WEIGHT = 1_000_000;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

function headerName(value: unknown, path: string): string {
  const name = requiredStr(value, path, 'a header name');
  if (name.length > 256 || !HEADER_NAME.test(name)) throw new FieldError(path, `"${name}" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256 characters)`);
  return name;
}

function hostname(value: unknown, path: string): string | undefined {
  const text = str(value, path);
  if (text === undefined) return undefined;
  if (text.length > 253 || !PRECISE_HOSTNAME.test(text)) throw new FieldError(path, `"${text}" is not a valid hostname (lower-case DNS name, no wildcard, no port)`);
  return text;
}

// ---------------------------------------------------------------------------------------
// ReferenceGrant

interface Grant {
  namespace: string;
  from: Array<{ group: string; kind: string; namespace: string }>;
  to: Array<{ group: string; kind: string; name: string | undefined }>;
}

function readGrants(others: readonly OtherObject[]): Grant[] {
  const grants: Grant[] = [];
  for (const other of others) {
    if (other.kind !== 'ReferenceGrant' || apiGroup(other.apiVersion) !== GATEWAY_GROUP) continue;
    const spec = isRecord(other.object.spec) ? other.object.spec : {};
    const from = (Array.isArray(spec.from) ? spec.from : []).filter(isRecord).map((f) => ({
      group: typeof f.group === 'string' ? f.group : '',
      kind: typeof f.kind === 'string' ? f.kind : '',
      namespace: typeof f.namespace === 'string' ? f.namespace : '',
    }));
    const to = (Array.isArray(spec.to) ? spec.to : []).filter(isRecord).map((t) => ({
      group: typeof t.group === 'string' ? t.group : '',
      kind: typeof t.kind === 'string' ? t.kind : '',
      name: typeof t.name === 'string' && t.name !== '' ? t.name : undefined,
    }));
    grants.push({ namespace: other.namespace ?? 'default', from, to });
  }
  return grants;
}

function granted(grants: readonly Grant[], routeKind: string, routeNamespace: string, targetNamespace: string, serviceName: string): boolean {
  return grants.some(
    (g) =>
      g.namespace === targetNamespace &&
      g.from.some((f) => f.group === GATEWAY_GROUP && f.kind === routeKind && f.namespace === routeNamespace) &&
      g.to.some((t) => (t.group === '' || t.group === 'core') && t.kind === 'Service' && (t.name === undefined || t.name === serviceName)),
  );
}

function apiGroup(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

// ---------------------------------------------------------------------------------------
// One route

type RouteKind = 'HTTPRoute' | 'GRPCRoute';

interface Context {
  kind: RouteKind;
  namespace: string;
  services: ReadonlyMap<string, ServiceInfo>;
  grants: readonly Grant[];
  warnings: Array<{ path: string; reason: string }>;
}

/** A Service parentRef, resolved. */
interface Parent {
  serviceKey: string;
  /** undefined: every port of the Service. */
  port: number | undefined;
  /** The route's namespace when it differs from the Service's (a GAMMA consumer route). */
  consumer: string | undefined;
}

/**
 * The Service parents of a route. Parents of other kinds (Gateways) are none of our
 * business and skipped. Returns [] for a route that attaches to no Service.
 */
function readParents(spec: Obj, ctx: Context): Parent[] {
  const parents: Parent[] = [];
  list(spec.parentRefs, 'spec.parentRefs').forEach((entry, i) => {
    const path = `spec.parentRefs[${i}]`;
    const ref = record(entry, path);
    if (!ref) throw new FieldError(path, 'must be a mapping {group, kind, name, port}');
    const group = str(ref.group, `${path}.group`) ?? GATEWAY_GROUP;
    const kind = str(ref.kind, `${path}.kind`) ?? 'Gateway';
    if (kind !== 'Service') return;
    if (group !== '' && group !== 'core') {
      ctx.warnings.push({
        path: `${path}.group`,
        reason: `kind Service with group "${group}" is not a core Service, so the route does not attach to it; write group: "" for a mesh (GAMMA) route (the group defaults to ${GATEWAY_GROUP})`,
      });
      return;
    }
    const name = requiredStr(ref.name, `${path}.name`, 'the Service name');
    const namespace = str(ref.namespace, `${path}.namespace`) || ctx.namespace;
    const serviceKey = `${namespace}/${name}`;
    const service = ctx.services.get(serviceKey);
    let port = int(ref.port, `${path}.port`, 1, 65535, 'a Service port');
    const sectionName = str(ref.sectionName, `${path}.sectionName`);
    if (sectionName !== undefined && sectionName !== '') {
      // For a Service parent, sectionName names one of its ports.
      const named = service?.ports.find((p) => p.name === sectionName);
      if (!named) {
        ctx.warnings.push({
          path: `${path}.sectionName`,
          reason: service
            ? `Service ${serviceKey} has no port named "${sectionName}", so the route does not attach to it; name one of its ports (${service.ports.map((p) => p.name ?? p.port).join(', ')})`
            : `Service ${serviceKey} does not exist, so its port "${sectionName}" cannot be found and the route does not attach to it`,
        });
        return;
      }
      if (port !== undefined && port !== named.port) {
        throw new FieldError(`${path}.port`, `${port} is not the port named "${sectionName}" (${named.port}); when both are set they must name the same Service port`);
      }
      port = named.port;
    } else if (!service) {
      ctx.warnings.push({ path: `${path}.name`, reason: `Service ${serviceKey} does not exist; the route applies once it does` });
    } else if (port !== undefined && !service.ports.some((p) => p.port === port)) {
      ctx.warnings.push({ path: `${path}.port`, reason: `Service ${serviceKey} has no port ${port}; the route applies to that port once the Service exposes it` });
    }
    const parent: Parent = { serviceKey, port, consumer: namespace === ctx.namespace ? undefined : ctx.namespace };
    if (!parents.some((p) => p.serviceKey === parent.serviceKey && p.port === parent.port)) parents.push(parent);
  });
  return parents;
}

/** A backendRef / mirror backendRef to a Service, with what makes it unusable. */
function readBackendTarget(ref: Obj, path: string, ctx: Context): BackendTarget {
  const group = str(ref.group, `${path}.group`) ?? '';
  const kind = str(ref.kind, `${path}.kind`) ?? 'Service';
  if ((group !== '' && group !== 'core') || kind !== 'Service') {
    throw new FieldError(
      kind !== 'Service' ? `${path}.kind` : `${path}.group`,
      `nodemesh routes only to core Services (group "", kind Service), got ${group === '' ? '' : `group "${group}" `}kind "${kind}"; point the backendRef at a Service`,
    );
  }
  const name = requiredStr(ref.name, `${path}.name`, 'the Service name');
  const namespace = str(ref.namespace, `${path}.namespace`) || ctx.namespace;
  const port = int(ref.port, `${path}.port`, 1, 65535, 'a Service port');
  if (port === undefined) throw new FieldError(`${path}.port`, 'required for a Service backend (the Service port to send to)');
  const target: BackendTarget = { serviceKey: `${namespace}/${name}`, port };
  const service = ctx.services.get(target.serviceKey);
  let unresolved: string | undefined;
  if (namespace !== ctx.namespace && !granted(ctx.grants, ctx.kind, ctx.namespace, namespace, name)) {
    unresolved = `Service ${target.serviceKey} is in another namespace and no ReferenceGrant in ${namespace} allows ${ctx.kind}s from ${ctx.namespace} to reference it (RefNotPermitted)`;
  } else if (!service) {
    unresolved = `Service ${target.serviceKey} does not exist (BackendNotFound)`;
  } else if (!service.ports.some((p) => p.port === port)) {
    unresolved = `Service ${target.serviceKey} has no port ${port} (BackendNotFound)`;
  }
  if (unresolved !== undefined) {
    target.unresolved = unresolved;
    ctx.warnings.push({ path, reason: `${unresolved}; requests sent to this backend get a 500 until it resolves` });
  }
  return target;
}

function readHeaderModifier(value: unknown, path: string): HeaderModifier {
  const mod = record(value, path);
  if (!mod) throw new FieldError(path, 'required for this filter type');
  const pairs = (field: 'set' | 'add') => {
    const seen = new Set<string>();
    return list(mod[field], `${path}.${field}`).map((entry, i) => {
      const epath = `${path}.${field}[${i}]`;
      const pair = record(entry, epath);
      if (!pair) throw new FieldError(epath, 'must be a mapping {name, value}');
      const name = headerName(pair.name, `${epath}.name`);
      const value = str(pair.value, `${epath}.value`);
      if (value === undefined) throw new FieldError(`${epath}.value`, 'required (a string; may be empty)');
      if (value.length > 4096) throw new FieldError(`${epath}.value`, 'must be at most 4096 characters');
      if (/[\r\n\0]/.test(value)) throw new FieldError(`${epath}.value`, 'must not contain CR, LF or NUL (they would split the HTTP message)');
      const lower = name.toLowerCase();
      if (seen.has(lower)) throw new FieldError(`${epath}.name`, `header "${name}" is listed twice in ${field}; header names are case-insensitive, keep one entry`);
      seen.add(lower);
      return Object.freeze({ name: lower, value });
    });
  };
  const remove = list(mod.remove, `${path}.remove`).map((entry, i) => headerName(entry, `${path}.remove[${i}]`).toLowerCase());
  return Object.freeze({ set: Object.freeze(pairs('set')), add: Object.freeze(pairs('add')), remove: Object.freeze([...new Set(remove)]) });
}

function readPathModifier(value: unknown, path: string, matchedPrefix: () => string | undefined): PathModifier | undefined {
  const mod = record(value, path);
  if (!mod) return undefined;
  const type = oneOf(mod.type, `${path}.type`, ['ReplaceFullPath', 'ReplacePrefixMatch'] as const, undefined, 'a path modifier type');
  const full = str(mod.replaceFullPath, `${path}.replaceFullPath`);
  const prefix = str(mod.replacePrefixMatch, `${path}.replacePrefixMatch`);
  for (const [field, v] of [['replaceFullPath', full], ['replacePrefixMatch', prefix]] as const) {
    if (v !== undefined && !/^[\x21-\x7e]*$/.test(v)) throw new FieldError(`${path}.${field}`, `"${v}" must be a URL path of visible ASCII characters (no spaces; percent-encode the rest)`);
  }
  if (type === 'ReplaceFullPath') {
    if (prefix !== undefined) throw new FieldError(`${path}.replacePrefixMatch`, 'must not be set when type is ReplaceFullPath (set replaceFullPath)');
    if (full === undefined) throw new FieldError(`${path}.replaceFullPath`, 'required when type is ReplaceFullPath');
    if (!full.startsWith('/')) throw new FieldError(`${path}.replaceFullPath`, `"${full}" must start with "/"`);
    return { type, replaceFullPath: full };
  }
  if (full !== undefined) throw new FieldError(`${path}.replaceFullPath`, 'must not be set when type is ReplacePrefixMatch (set replacePrefixMatch)');
  if (prefix === undefined) throw new FieldError(`${path}.replacePrefixMatch`, 'required when type is ReplacePrefixMatch ("" or "/" removes the matched prefix)');
  if (prefix !== '' && !prefix.startsWith('/')) throw new FieldError(`${path}.replacePrefixMatch`, `"${prefix}" must start with "/"`);
  const matched = matchedPrefix();
  if (matched === undefined) {
    throw new FieldError(`${path}.type`, 'ReplacePrefixMatch needs a rule with exactly one match, of path type PathPrefix (the prefix it replaces); use ReplaceFullPath or split the rule');
  }
  return { type, replacePrefixMatch: prefix, matchedPrefix: matched };
}

const HTTP_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'URLRewrite', 'RequestRedirect'] as const;
const GRPC_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'] as const;
const BACKEND_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier'] as const;
/** Each filter type's configuration field. */
const FILTER_FIELD: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};

interface Filters {
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  mirrors: MirrorSpec[];
  urlRewrite?: UrlRewrite;
  redirect?: Redirect;
}

function readFilters(value: unknown, path: string, allowed: readonly string[], where: string, ctx: Context, matchedPrefix: () => string | undefined): Filters {
  const out: Filters = { mirrors: [] };
  const firstOfType = new Map<string, number>();
  list(value, path).forEach((entry, i) => {
    const fpath = `${path}[${i}]`;
    const filter = record(entry, fpath);
    if (!filter) throw new FieldError(fpath, 'must be a mapping {type, ...}');
    const type = requiredStr(filter.type, `${fpath}.type`, `a filter type: ${allowed.join(', ')}`);
    if (!allowed.includes(type)) {
      const known = FILTER_FIELD[type] !== undefined;
      throw new FieldError(
        `${fpath}.type`,
        known
          ? `nodemesh does not support ${type} filters ${where}; remove it (supported here: ${allowed.join(', ')})`
          : `"${type}" is not a filter type nodemesh supports ${where} (use ${allowed.join(', ')})`,
      );
    }
    // Exactly the field of its type is set (the API server's CEL rules).
    for (const [otherType, field] of Object.entries(FILTER_FIELD)) {
      if (otherType !== type && filter[field] !== undefined && filter[field] !== null) {
        throw new FieldError(`${fpath}.${field}`, `must not be set when type is ${type} (set ${FILTER_FIELD[type]} instead, or change the type)`);
      }
    }
    const cpath = `${fpath}.${FILTER_FIELD[type]}`;
    if (type !== 'RequestMirror') {
      const earlier = firstOfType.get(type);
      if (earlier !== undefined) throw new FieldError(`${fpath}.type`, `${type} is already filters[${earlier}]; a filter of this type may appear once, merge the two`);
      firstOfType.set(type, i);
    }
    if ((type === 'URLRewrite' && firstOfType.has('RequestRedirect')) || (type === 'RequestRedirect' && firstOfType.has('URLRewrite'))) {
      const other = type === 'URLRewrite' ? 'RequestRedirect' : 'URLRewrite';
      throw new FieldError(`${fpath}.type`, `a rule may have a URLRewrite or a RequestRedirect filter, not both (filters[${firstOfType.get(other)}] is ${other}); remove one`);
    }
    switch (type) {
      case 'RequestHeaderModifier':
        out.requestHeaderModifier = readHeaderModifier(filter.requestHeaderModifier, cpath);
        break;
      case 'ResponseHeaderModifier':
        out.responseHeaderModifier = readHeaderModifier(filter.responseHeaderModifier, cpath);
        break;
      case 'RequestMirror': {
        const mirror = record(filter.requestMirror, cpath);
        if (!mirror) throw new FieldError(cpath, 'required for a RequestMirror filter ({backendRef, percent?})');
        const ref = record(mirror.backendRef, `${cpath}.backendRef`);
        if (!ref) throw new FieldError(`${cpath}.backendRef`, 'required (the Service to mirror to)');
        const spec: MirrorSpec = { backend: Object.freeze(readBackendTarget(ref, `${cpath}.backendRef`, ctx)) };
        const percent = int(mirror.percent, `${cpath}.percent`, 0, 100, 'a percentage of requests');
        const fraction = record(mirror.fraction, `${cpath}.fraction`);
        if (percent !== undefined && fraction) throw new FieldError(`${cpath}.fraction`, 'set percent or fraction, not both');
        if (percent !== undefined) spec.percent = percent;
        if (fraction) {
          const numerator = int(fraction.numerator, `${cpath}.fraction.numerator`, 0, 2 ** 31 - 1, 'the mirrored share numerator');
          if (numerator === undefined) throw new FieldError(`${cpath}.fraction.numerator`, 'required');
          const denominator = int(fraction.denominator, `${cpath}.fraction.denominator`, 1, 2 ** 31 - 1, 'the mirrored share denominator') ?? 100;
          if (numerator > denominator) throw new FieldError(`${cpath}.fraction.numerator`, `${numerator} is more than the denominator ${denominator}; a fraction mirrors at most every request`);
          spec.fraction = Object.freeze({ numerator, denominator });
        }
        out.mirrors.push(Object.freeze(spec));
        break;
      }
      case 'URLRewrite': {
        const rewrite = record(filter.urlRewrite, cpath);
        if (!rewrite) throw new FieldError(cpath, 'required for a URLRewrite filter ({hostname?, path?})');
        const result: UrlRewrite = {};
        const host = hostname(rewrite.hostname, `${cpath}.hostname`);
        if (host !== undefined) result.hostname = host;
        const pathMod = readPathModifier(rewrite.path, `${cpath}.path`, matchedPrefix);
        if (pathMod) result.path = Object.freeze(pathMod);
        out.urlRewrite = Object.freeze(result);
        break;
      }
      case 'RequestRedirect': {
        const redirect = record(filter.requestRedirect, cpath);
        if (!redirect) throw new FieldError(cpath, 'required for a RequestRedirect filter ({scheme?, hostname?, path?, port?, statusCode?})');
        const statusCode = redirect.statusCode ?? 302;
        if (typeof statusCode !== 'number' || !REDIRECT_CODES.includes(statusCode)) {
          throw new FieldError(`${cpath}.statusCode`, `${describe(statusCode)} is not a redirect status code (use ${REDIRECT_CODES.join(', ')}; default 302)`);
        }
        const result: Redirect = { statusCode };
        const scheme = str(redirect.scheme, `${cpath}.scheme`);
        if (scheme !== undefined) result.scheme = oneOf(scheme, `${cpath}.scheme`, ['http', 'https'] as const, undefined, 'a redirect scheme');
        const host = hostname(redirect.hostname, `${cpath}.hostname`);
        if (host !== undefined) result.hostname = host;
        const port = int(redirect.port, `${cpath}.port`, 1, 65535, 'a port');
        if (port !== undefined) result.port = port;
        const pathMod = readPathModifier(redirect.path, `${cpath}.path`, matchedPrefix);
        if (pathMod) result.path = Object.freeze(pathMod);
        out.redirect = Object.freeze(result);
        break;
      }
    }
  });
  return out;
}

function readBackends(value: unknown, path: string, ctx: Context): WeightedBackend[] {
  return list(value, path).map((entry, i) => {
    const bpath = `${path}[${i}]`;
    const ref = record(entry, bpath);
    if (!ref) throw new FieldError(bpath, 'must be a mapping {name, port, weight?}');
    const target = readBackendTarget(ref, bpath, ctx);
    const weight = ref.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
      throw new FieldError(`${bpath}.weight`, `must be an integer from 0 to ${MAX_WEIGHT} (a relative share; 0 sends nothing), got ${describe(weight)}`);
    }
    const backend: WeightedBackend = { ...target, weight };
    const filters = readFilters(ref.filters, `${bpath}.filters`, BACKEND_FILTERS, 'on backendRefs (use the rule\'s filters)', ctx, () => undefined);
    if (filters.requestHeaderModifier) backend.requestHeaderModifier = filters.requestHeaderModifier;
    if (filters.responseHeaderModifier) backend.responseHeaderModifier = filters.responseHeaderModifier;
    return Object.freeze(backend);
  });
}

function readValueMatch(entry: Obj, path: string, against: string): ValueMatcher {
  const type = oneOf(entry.type, `${path}.type`, ['Exact', 'RegularExpression'] as const, 'Exact', 'a match type');
  const value = str(entry.value, `${path}.value`);
  if (value === undefined) throw new FieldError(`${path}.value`, 'required (the value to match)');
  if (value.length > 4096) throw new FieldError(`${path}.value`, 'must be at most 4096 characters');
  return type === 'Exact' ? { type, value } : { type, value, regex: regex(value, `${path}.value`, against) };
}

/** headers / queryParams: only the first entry of a name counts (spec), the rest are ignored. */
function readConditions(value: unknown, path: string, caseInsensitive: boolean, what: string): Array<{ name: string; matcher: ValueMatcher }> {
  const out: Array<{ name: string; matcher: ValueMatcher }> = [];
  list(value, path).forEach((entry, i) => {
    const epath = `${path}[${i}]`;
    const cond = record(entry, epath);
    if (!cond) throw new FieldError(epath, 'must be a mapping {name, value, type?}');
    const name = headerName(cond.name, `${epath}.name`);
    const key = caseInsensitive ? name.toLowerCase() : name;
    const matcher = readValueMatch(cond, epath, what);
    if (!out.some((c) => c.name === key)) out.push({ name: key, matcher });
  });
  return out;
}

const DEFAULT_HTTP_MATCH: HttpCondition = { path: pathMatcher('PathPrefix', '/'), headers: [], queryParams: [] };

function readHttpMatch(raw: unknown, path: string): HttpCondition {
  const match = record(raw, path);
  if (!match) throw new FieldError(path, 'must be a mapping {path?, headers?, queryParams?, method?}');
  const p = record(match.path, `${path}.path`);
  const type = oneOf(p?.type, `${path}.path.type`, ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix', 'a path match type');
  const value = str(p?.value, `${path}.path.value`) ?? '/';
  const vpath = `${path}.path.value`;
  if (value.length > 1024) throw new FieldError(vpath, 'must be at most 1024 characters');
  let matcher;
  if (type === 'RegularExpression') {
    regex(value, vpath, 'path (without the query)');
    matcher = pathMatcher(type, value);
  } else {
    if (!value.startsWith('/')) throw new FieldError(vpath, `"${value}" must be an absolute path (start with "/")`);
    for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
      if (value.includes(bad)) throw new FieldError(vpath, `"${value}" must not contain "${bad}"`);
    }
    if (value.endsWith('/..') || value.endsWith('/.')) throw new FieldError(vpath, `"${value}" must not end with "/.." or "/."`);
    matcher = pathMatcher(type, value);
  }
  const condition: HttpCondition = {
    path: matcher,
    headers: readConditions(match.headers, `${path}.headers`, true, 'header value') as HeaderCondition[],
    queryParams: readConditions(match.queryParams, `${path}.queryParams`, false, 'query parameter value') as QueryCondition[],
  };
  if (match.method !== undefined && match.method !== null) condition.method = oneOf(match.method, `${path}.method`, HTTP_METHODS, undefined, 'an HTTP method');
  return condition;
}

function readGrpcMatch(value: unknown, path: string): GrpcCondition {
  const match = record(value, path);
  if (!match) throw new FieldError(path, 'must be a mapping {method?, headers?}');
  const condition: GrpcCondition = { headers: readConditions(match.headers, `${path}.headers`, true, 'header value') as HeaderCondition[] };
  const m = record(match.method, `${path}.method`);
  if (m) {
    const mpath = `${path}.method`;
    const type = oneOf(m.type, `${mpath}.type`, ['Exact', 'RegularExpression'] as const, 'Exact', 'a gRPC method match type');
    const service = str(m.service, `${mpath}.service`) || undefined;
    const method = str(m.method, `${mpath}.method`) || undefined;
    if (service === undefined && method === undefined) throw new FieldError(mpath, 'set service, method or both (to match any method, leave out the method match)');
    if (service !== undefined && service.length > 1024) throw new FieldError(`${mpath}.service`, 'must be at most 1024 characters');
    if (method !== undefined && method.length > 1024) throw new FieldError(`${mpath}.method`, 'must be at most 1024 characters');
    if (type === 'Exact') {
      if (service !== undefined && !GRPC_SERVICE.test(service)) throw new FieldError(`${mpath}.service`, `"${service}" is not a gRPC service name (a dotted name such as "helloworld.Greeter")`);
      if (method !== undefined && !GRPC_METHOD.test(method)) throw new FieldError(`${mpath}.method`, `"${method}" is not a gRPC method name (letters, digits and _; such as "SayHello")`);
      condition.method = { type, ...(service !== undefined && { service }), ...(method !== undefined && { method }) };
    } else {
      condition.method = {
        type,
        ...(service !== undefined && { service, serviceRegex: regex(service, `${mpath}.service`, 'gRPC service name') }),
        ...(method !== undefined && { method, methodRegex: regex(method, `${mpath}.method`, 'gRPC method name') }),
      };
    }
  }
  return condition;
}

function readTimeouts(value: unknown, path: string): RouteTimeouts {
  const t = record(value, path);
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
  const r = record(value, path);
  if (!r) return undefined;
  const codes = list(r.codes, `${path}.codes`).map((code, i) => int(code, `${path}.codes[${i}]`, 400, 599, 'an HTTP status code to retry')!);
  const attempts = int(r.attempts, `${path}.attempts`, 0, 1000, 'the maximum number of retries') ?? RETRY_DEFAULTS.attempts;
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

interface CompiledRoute {
  routeKey: string;
  entries: Entry[];
  parents: Parent[];
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

/** Compiles one route; throws FieldError for a rejection. Returns undefined when it attaches to no Service. */
function compileRoute(other: OtherObject, ctx: Context): CompiledRoute | undefined {
  const spec = record(other.object.spec, 'spec');
  if (!spec) {
    // Without a spec there is no parentRef: nothing attaches.
    return undefined;
  }
  const parents = readParents(spec, ctx);
  if (parents.length === 0) return undefined;
  const routeKey = objectLabel(ctx.kind, ctx.namespace, other.name);
  const order: RouteOrder = { createdMs: creationMs(other), name: `${ctx.namespace}/${other.name}` };
  const grpc = ctx.kind === 'GRPCRoute';
  const rawRules = list(spec.rules, 'spec.rules');
  // The API server defaults an HTTPRoute without rules to one rule matching every path
  // (and, with no backendRefs, answering 500); a GRPCRoute rule without matches matches all.
  const rules = rawRules.length === 0 ? [{}] : rawRules;
  const entries: Entry[] = [];
  rules.forEach((raw, r) => {
    const rpath = `spec.rules[${r}]`;
    const rule = record(raw, rpath);
    if (!rule) throw new FieldError(rpath, 'must be a mapping {matches, filters, backendRefs, ...}');
    const ruleName = str(rule.name, `${rpath}.name`);
    const rawMatches = list(rule.matches, `${rpath}.matches`);
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
  return { routeKey, entries, parents };
}

// ---------------------------------------------------------------------------------------
// The table

class SortedRoutes implements ServiceRoutes {
  readonly entries: readonly Entry[];

  constructor(entries: Iterable<Entry>) {
    this.entries = Object.freeze([...new Set(entries)].sort(compareEntries));
  }

  match(req: RequestFacts): RouteMatch | undefined {
    const view = new RequestView(req);
    for (const entry of this.entries) if (entry.test(view)) return entry.result;
    return undefined;
  }

  describe(): string[] {
    return this.entries.map((e) => `${e.result.routeKey} rules[${e.ruleIndex}] matches[${e.matchIndex}]: ${e.describe}`);
  }
}

/** The routes of one Service for one audience: those for every port, and per port. */
class PortRoutes {
  private readonly all: SortedRoutes | undefined;
  private readonly byPort = new Map<number, SortedRoutes>();

  constructor(allPorts: Entry[], perPort: Map<number, Entry[]>) {
    this.all = allPorts.length > 0 ? new SortedRoutes(allPorts) : undefined;
    for (const [port, entries] of perPort) this.byPort.set(port, new SortedRoutes([...allPorts, ...entries]));
  }

  get(port: number): SortedRoutes | undefined {
    return this.byPort.get(port) ?? this.all;
  }

  ports(): Array<number | '*'> {
    return [...(this.all ? ['*' as const] : []), ...[...this.byPort.keys()].sort((a, b) => a - b)];
  }

  routes(port: number | '*'): SortedRoutes | undefined {
    return port === '*' ? this.all : this.byPort.get(port);
  }
}

interface Pending {
  allPorts: Entry[];
  perPort: Map<number, Entry[]>;
}

/** One row of RouteTable.describe(), for /debug/config. */
export interface RouteTableRow {
  protocol: RouteProtocol;
  service: string;
  port: number | '*';
  /** The client namespace of GAMMA consumer routes; undefined for the Service's own (producer) routes. */
  consumerNamespace?: string;
  entries: string[];
}

export class RouteTable {
  /** Routes attached to at least one Service. */
  readonly size: number;
  /** `${protocol} ${serviceKey}` -> audience ('' = producer, else consumer namespace) -> routes. */
  private readonly index = new Map<string, Map<string, PortRoutes>>();

  /** @internal built by compileRoutes(). */
  constructor(routes: readonly CompiledRoute[], protocols: ReadonlyMap<CompiledRoute, RouteProtocol>) {
    const pending = new Map<string, Map<string, Pending>>();
    for (const route of routes) {
      const protocol = protocols.get(route)!;
      for (const parent of route.parents) {
        const key = `${protocol} ${parent.serviceKey}`;
        let audiences = pending.get(key);
        if (!audiences) pending.set(key, (audiences = new Map()));
        const audience = parent.consumer ?? '';
        let p = audiences.get(audience);
        if (!p) audiences.set(audience, (p = { allPorts: [], perPort: new Map() }));
        if (parent.port === undefined) p.allPorts.push(...route.entries);
        else {
          let list = p.perPort.get(parent.port);
          if (!list) p.perPort.set(parent.port, (list = []));
          list.push(...route.entries);
        }
      }
    }
    for (const [key, audiences] of pending) {
      const built = new Map<string, PortRoutes>();
      for (const [audience, p] of audiences) built.set(audience, new PortRoutes(p.allPorts, p.perPort));
      this.index.set(key, built);
    }
    this.size = routes.length;
    Object.freeze(this);
  }

  static empty(): RouteTable {
    return new RouteTable([], new Map());
  }

  /**
   * The routes for requests to a Service (namespace/name) on a port. Routes whose
   * parentRef names no port apply to every port; a port-specific parentRef only to its
   * port. `clientNamespace` is the namespace of the calling pod: GAMMA consumer routes
   * (a route in the client's namespace attached to a Service of another namespace) take
   * the place of the Service's own routes for that client; without it only the Service's
   * own (producer) routes apply. undefined: no route attaches, route as plain L4/L7 to
   * the Service.
   */
  forService(serviceKey: string, port: number, protocol: RouteProtocol, clientNamespace?: string): ServiceRoutes | undefined {
    const audiences = this.index.get(`${protocol} ${serviceKey}`);
    if (!audiences) return undefined;
    if (clientNamespace !== undefined) {
      const consumer = audiences.get(clientNamespace)?.get(port);
      if (consumer) return consumer;
    }
    return audiences.get('')?.get(port);
  }

  /** Every attachment with its entries in precedence order. */
  describe(): RouteTableRow[] {
    const rows: RouteTableRow[] = [];
    for (const key of [...this.index.keys()].sort()) {
      const space = key.indexOf(' ');
      const protocol = key.slice(0, space) as RouteProtocol;
      const service = key.slice(space + 1);
      const audiences = this.index.get(key)!;
      for (const audience of [...audiences.keys()].sort()) {
        const routes = audiences.get(audience)!;
        for (const port of routes.ports()) {
          const row: RouteTableRow = { protocol, service, port, entries: routes.routes(port)!.describe() };
          if (audience !== '') row.consumerNamespace = audience;
          rows.push(row);
        }
      }
    }
    return rows;
  }
}

const ROUTE_KINDS: Record<string, RouteProtocol> = { HTTPRoute: 'http', GRPCRoute: 'grpc' };

/**
 * Compiles every HTTPRoute and GRPCRoute (group gateway.networking.k8s.io, any version)
 * of `others` that attaches to a Service. `services` is the snapshot's Services
 * (namespace/name -> Service), used to resolve backends, ports and sectionNames.
 */
export function compileRoutes(others: readonly OtherObject[], services: ReadonlyMap<string, ServiceInfo>): CompileResult {
  const rejected: RejectedObject[] = [];
  const warnings: RejectedObject[] = [];
  const grants = readGrants(others);
  const compiled: CompiledRoute[] = [];
  const protocols = new Map<CompiledRoute, RouteProtocol>();
  for (const other of others) {
    const protocol = ROUTE_KINDS[other.kind];
    if (protocol === undefined || apiGroup(other.apiVersion) !== GATEWAY_GROUP) continue;
    const kind = other.kind as RouteKind;
    const namespace = other.namespace ?? 'default';
    const label = objectLabel(kind, namespace, other.name);
    const ctx: Context = { kind, namespace, services, grants, warnings: [] };
    try {
      const route = compileRoute(other, ctx);
      for (const w of ctx.warnings) warnings.push({ ...rejection(other.file, label, w.reason, w.path), code: ROUTE_REF_WARNING });
      if (!route) continue;
      compiled.push(route);
      protocols.set(route, protocol);
    } catch (err) {
      if (err instanceof FieldError) rejected.push(rejection(other.file, label, err.problem, err.path));
      else throw err;
    }
  }
  return { table: new RouteTable(compiled, protocols), rejected, warnings };
}
