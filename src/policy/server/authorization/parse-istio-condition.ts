import type { PolicyFields } from '../../../config/policy-fields';
import type { Clause } from './model';
import { blockList, matchList, portList } from './rule-fields';

/**
 * One `when` condition of an Istio rule (istio.io/latest/docs/reference/config/security/
 * conditions/) as a clause. Only the keys nodemesh can evaluate are accepted; any other
 * (request.auth.*, experimental.*, a typo) rejects the policy: a DENY condition nodemesh
 * ignored would be a hole, and an ignored ALLOW condition would widen access.
 */

const HEADER_KEY = /^request\.headers\[([^\]]*)\]$/;
/** RFC 9110 token characters: what a header name may be. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const SUPPORTED_CONDITION_KEYS = ['request.headers[<name>]', 'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port', 'connection.sni'] as const;

export function parseCondition(c: PolicyFields, raw: unknown, path: string): Clause | undefined {
  const w = c.mapping(raw, path, ['key', 'values', 'notValues']);
  if (!w) return undefined;
  const key = c.string(w.key, `${path}.key`);
  if (key === undefined || key === '') return c.fail(`${path}.key`, `required (one of ${SUPPORTED_CONDITION_KEYS.join(', ')})`);
  const hasValues = Array.isArray(w.values) && w.values.length > 0;
  const hasNotValues = Array.isArray(w.notValues) && w.notValues.length > 0;
  if (!hasValues && !hasNotValues) {
    return c.fail(path, 'needs values or notValues (Istio requires at least one); list the values the attribute must or must not have');
  }
  const values = `${path}.values`;
  const notValues = `${path}.notValues`;
  const header = HEADER_KEY.exec(key);
  if (header) {
    const name = header[1]!.trim();
    if (!HEADER_NAME.test(name)) return c.fail(`${path}.key`, `"${key}" does not name a header; write request.headers[<name>], e.g. request.headers[x-user]`);
    return { attribute: 'request.header', header: name.toLowerCase(), values: matchList(c, w.values, values), notValues: matchList(c, w.notValues, notValues) };
  }
  switch (key) {
    case 'source.ip':
    // remote.ip: see remoteIpBlocks in parse-istio-authorization-policy.ts; the peer's address here.
    case 'remote.ip':
      return { attribute: 'source.ip', values: blockList(c, w.values, values), notValues: blockList(c, w.notValues, notValues) };
    case 'destination.ip':
      return { attribute: 'destination.ip', values: blockList(c, w.values, values), notValues: blockList(c, w.notValues, notValues) };
    case 'destination.port':
      return { attribute: 'destination.port', values: portList(c, w.values, values), notValues: portList(c, w.notValues, notValues) };
    case 'source.namespace':
      return { attribute: 'source.namespace', values: matchList(c, w.values, values), notValues: matchList(c, w.notValues, notValues) };
    case 'source.principal':
      return { attribute: 'source.principal', values: matchList(c, w.values, values), notValues: matchList(c, w.notValues, notValues) };
    case 'connection.sni':
      return { attribute: 'connection.sni', values: matchList(c, w.values, values, true), notValues: matchList(c, w.notValues, notValues, true) };
  }
  const why = key.startsWith('request.auth.')
    ? 'nodemesh validates no JWTs (no RequestAuthentication), so it cannot evaluate it'
    : key.startsWith('experimental.')
      ? 'it reads Envoy filter metadata, which nodemesh does not have'
      : 'nodemesh cannot evaluate it';
  return c.fail(
    `${path}.key`,
    `"${key}" is not supported: ${why}; ignoring it would open a hole in a DENY rule or widen an ALLOW rule, so the policy is rejected. Supported keys: ${SUPPORTED_CONDITION_KEYS.join(', ')}`,
  );
}
