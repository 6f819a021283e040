import { FieldError } from '../config/validation';
import { pathMatcher, type GrpcCondition, type HeaderCondition, type HttpCondition, type QueryCondition, type ValueMatcher } from './matchers';
import { GRPC_METHOD, GRPC_SERVICE, headerName, HTTP_METHODS, read, regex, type Obj } from './route-fields';

/** The matches of HTTPRoute and GRPCRoute rules into the conditions the route table tests. */

function readValueMatch(entry: Obj, path: string, against: string): ValueMatcher {
  const type = read.oneOf(entry.type, `${path}.type`, ['Exact', 'RegularExpression'] as const, 'Exact', 'a match type');
  const value = read.string(entry.value, `${path}.value`);
  if (value === undefined) throw new FieldError(`${path}.value`, 'required (the value to match)');
  if (value.length > 4096) throw new FieldError(`${path}.value`, 'must be at most 4096 characters');
  return type === 'Exact' ? { type, value } : { type, value, regex: regex(value, `${path}.value`, against) };
}

/** headers / queryParams: only the first entry of a name counts (spec), the rest are ignored. */
function readConditions(value: unknown, path: string, caseInsensitive: boolean, what: string): Array<{ name: string; matcher: ValueMatcher }> {
  const out: Array<{ name: string; matcher: ValueMatcher }> = [];
  read.list(value, path).forEach((entry, i) => {
    const epath = `${path}[${i}]`;
    const cond = read.record(entry, epath);
    if (!cond) throw new FieldError(epath, 'must be a mapping {name, value, type?}');
    const name = headerName(cond.name, `${epath}.name`);
    const key = caseInsensitive ? name.toLowerCase() : name;
    const matcher = readValueMatch(cond, epath, what);
    if (!out.some((c) => c.name === key)) out.push({ name: key, matcher });
  });
  return out;
}

export const DEFAULT_HTTP_MATCH: HttpCondition = { path: pathMatcher('PathPrefix', '/'), headers: [], queryParams: [] };

export function readHttpMatch(raw: unknown, path: string): HttpCondition {
  const match = read.record(raw, path);
  if (!match) throw new FieldError(path, 'must be a mapping {path?, headers?, queryParams?, method?}');
  const p = read.record(match.path, `${path}.path`);
  const type = read.oneOf(p?.type, `${path}.path.type`, ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix', 'a path match type');
  const value = read.string(p?.value, `${path}.path.value`) ?? '/';
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
  if (match.method !== undefined && match.method !== null) condition.method = read.oneOf(match.method, `${path}.method`, HTTP_METHODS, undefined, 'an HTTP method');
  return condition;
}

export function readGrpcMatch(value: unknown, path: string): GrpcCondition {
  const match = read.record(value, path);
  if (!match) throw new FieldError(path, 'must be a mapping {method?, headers?}');
  const condition: GrpcCondition = { headers: readConditions(match.headers, `${path}.headers`, true, 'header value') as HeaderCondition[] };
  const m = read.record(match.method, `${path}.method`);
  if (m) {
    const mpath = `${path}.method`;
    const type = read.oneOf(m.type, `${mpath}.type`, ['Exact', 'RegularExpression'] as const, 'Exact', 'a gRPC method match type');
    const service = read.string(m.service, `${mpath}.service`) || undefined;
    const method = read.string(m.method, `${mpath}.method`) || undefined;
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
