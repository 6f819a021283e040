import { FieldError } from '../config/validation';
import { readBackendTarget } from './backend-ref';
import type { Context } from './parse-context';
import { headerName, hostname, read, REDIRECT_CODES } from './route-fields';
import type { HeaderModifier, MirrorSpec, PathModifier, Redirect, UrlRewrite } from './types';

/** Gateway API filters of a rule or a backendRef: header modifiers, mirrors, URL rewrites, redirects. */

function readHeaderModifier(value: unknown, path: string): HeaderModifier {
  const mod = read.record(value, path);
  if (!mod) throw new FieldError(path, 'required for this filter type');
  const pairs = (field: 'set' | 'add') => {
    const seen = new Set<string>();
    return read.list(mod[field], `${path}.${field}`).map((entry, i) => {
      const epath = `${path}.${field}[${i}]`;
      const pair = read.record(entry, epath);
      if (!pair) throw new FieldError(epath, 'must be a mapping {name, value}');
      const name = headerName(pair.name, `${epath}.name`);
      const value = read.string(pair.value, `${epath}.value`);
      if (value === undefined) throw new FieldError(`${epath}.value`, 'required (a string; may be empty)');
      if (value.length > 4096) throw new FieldError(`${epath}.value`, 'must be at most 4096 characters');
      if (/[\r\n\0]/.test(value)) throw new FieldError(`${epath}.value`, 'must not contain CR, LF or NUL (they would split the HTTP message)');
      const lower = name.toLowerCase();
      if (seen.has(lower)) throw new FieldError(`${epath}.name`, `header "${name}" is listed twice in ${field}; header names are case-insensitive, keep one entry`);
      seen.add(lower);
      return Object.freeze({ name: lower, value });
    });
  };
  const remove = read.list(mod.remove, `${path}.remove`).map((entry, i) => headerName(entry, `${path}.remove[${i}]`).toLowerCase());
  return Object.freeze({ set: Object.freeze(pairs('set')), add: Object.freeze(pairs('add')), remove: Object.freeze([...new Set(remove)]) });
}

function readPathModifier(value: unknown, path: string, matchedPrefix: () => string | undefined): PathModifier | undefined {
  const mod = read.record(value, path);
  if (!mod) return undefined;
  const type = read.oneOf(mod.type, `${path}.type`, ['ReplaceFullPath', 'ReplacePrefixMatch'] as const, undefined, 'a path modifier type');
  const full = read.string(mod.replaceFullPath, `${path}.replaceFullPath`);
  const prefix = read.string(mod.replacePrefixMatch, `${path}.replacePrefixMatch`);
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

export const HTTP_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'URLRewrite', 'RequestRedirect'] as const;
export const GRPC_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'] as const;
export const BACKEND_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier'] as const;
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

export interface Filters {
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  mirrors: MirrorSpec[];
  urlRewrite?: UrlRewrite;
  redirect?: Redirect;
}

export function readFilters(value: unknown, path: string, allowed: readonly string[], where: string, ctx: Context, matchedPrefix: () => string | undefined): Filters {
  const out: Filters = { mirrors: [] };
  const firstOfType = new Map<string, number>();
  read.list(value, path).forEach((entry, i) => {
    const fpath = `${path}[${i}]`;
    const filter = read.record(entry, fpath);
    if (!filter) throw new FieldError(fpath, 'must be a mapping {type, ...}');
    const type = read.requiredString(filter.type, `${fpath}.type`, `a filter type: ${allowed.join(', ')}`);
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
        const mirror = read.record(filter.requestMirror, cpath);
        if (!mirror) throw new FieldError(cpath, 'required for a RequestMirror filter ({backendRef, percent?})');
        const ref = read.record(mirror.backendRef, `${cpath}.backendRef`);
        if (!ref) throw new FieldError(`${cpath}.backendRef`, 'required (the Service to mirror to)');
        const spec: MirrorSpec = { backend: Object.freeze(readBackendTarget(ref, `${cpath}.backendRef`, ctx)) };
        const percent = read.integer(mirror.percent, `${cpath}.percent`, 0, 100, 'a percentage of requests');
        const fraction = read.record(mirror.fraction, `${cpath}.fraction`);
        if (percent !== undefined && fraction) throw new FieldError(`${cpath}.fraction`, 'set percent or fraction, not both');
        if (percent !== undefined) spec.percent = percent;
        if (fraction) {
          const numerator = read.integer(fraction.numerator, `${cpath}.fraction.numerator`, 0, 2 ** 31 - 1, 'the mirrored share numerator');
          if (numerator === undefined) throw new FieldError(`${cpath}.fraction.numerator`, 'required');
          const denominator = read.integer(fraction.denominator, `${cpath}.fraction.denominator`, 1, 2 ** 31 - 1, 'the mirrored share denominator') ?? 100;
          if (numerator > denominator) throw new FieldError(`${cpath}.fraction.numerator`, `${numerator} is more than the denominator ${denominator}; a fraction mirrors at most every request`);
          spec.fraction = Object.freeze({ numerator, denominator });
        }
        out.mirrors.push(Object.freeze(spec));
        break;
      }
      case 'URLRewrite': {
        const rewrite = read.record(filter.urlRewrite, cpath);
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
        const redirect = read.record(filter.requestRedirect, cpath);
        if (!redirect) throw new FieldError(cpath, 'required for a RequestRedirect filter ({scheme?, hostname?, path?, port?, statusCode?})');
        const statusCode = redirect.statusCode ?? 302;
        if (typeof statusCode !== 'number' || !REDIRECT_CODES.includes(statusCode)) {
          throw new FieldError(`${cpath}.statusCode`, `${read.describe(statusCode)} is not a redirect status code (use ${REDIRECT_CODES.join(', ')}; default 302)`);
        }
        const result: Redirect = { statusCode };
        const scheme = read.string(redirect.scheme, `${cpath}.scheme`);
        if (scheme !== undefined) result.scheme = read.oneOf(scheme, `${cpath}.scheme`, ['http', 'https'] as const, undefined, 'a redirect scheme');
        const host = hostname(redirect.hostname, `${cpath}.hostname`);
        if (host !== undefined) result.hostname = host;
        const port = read.integer(redirect.port, `${cpath}.port`, 1, 65535, 'a port');
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
