import type { OtherObject } from '../../config/objects';
import { creationTime, olderThan, whyOlder } from '../../config/object-age';
import { PolicyFields } from '../../config/policy-fields';
import { parseEach } from '../../config/parse-each';
import { isRecord, objectLabel, rejection, type FieldProblem, type RejectedObject } from '../../config/validation';
import { MTLS_MODES, PEER_AUTHENTICATION_KIND, PEER_AUTHENTICATION_VERSIONS, SECURITY_GROUP, type MtlsMode, type PeerAuthentication } from './peer-authentication';
import { parseWorkloadSelector } from './workload-selector';

/**
 * Reads and checks PeerAuthentication objects. A bad object is rejected as a whole, with
 * every bad field named: an mTLS setting nodemesh cannot read must never fall back to
 * PERMISSIVE unnoticed, so unknown fields and modes are refused rather than ignored.
 */

export interface ParsedPeerAuthentications {
  /** Valid policies, oldest first. */
  policies: PeerAuthentication[];
  rejected: RejectedObject[];
}

export function isPeerAuthentication(o: Pick<OtherObject, 'apiVersion' | 'kind'>): boolean {
  return o.kind === PEER_AUTHENTICATION_KIND && o.apiVersion.startsWith(`${SECURITY_GROUP}/`);
}

function parseMode(c: PolicyFields, raw: unknown, path: string): MtlsMode | undefined {
  if (raw === undefined || raw === null) return 'UNSET';
  const m = c.mapping(raw, path, ['mode']);
  if (!m) return undefined;
  if (m.mode === undefined || m.mode === null) return 'UNSET';
  const mode = c.string(m.mode, `${path}.mode`);
  if (mode === undefined) return undefined;
  if (!(MTLS_MODES as readonly string[]).includes(mode)) {
    const hint = (MTLS_MODES as readonly string[]).includes(mode.toUpperCase()) ? `; write it in capitals: ${mode.toUpperCase()}` : '';
    return c.fail(`${path}.mode`, `"${mode}" is not an mTLS mode (use one of ${MTLS_MODES.join(', ')})${hint}`);
  }
  return mode as MtlsMode;
}

function parsePortModes(c: PolicyFields, raw: unknown, hasSelector: boolean): Map<number, MtlsMode> {
  const out = new Map<number, MtlsMode>();
  const path = 'spec.portLevelMtls';
  if (raw === undefined || raw === null) return out;
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping from a port number to { mode: ... }, e.g. { "8080": { mode: PERMISSIVE } }');
    return out;
  }
  if (Object.keys(raw).length > 0 && !hasSelector) {
    c.fail(path, 'applies only to a policy with spec.selector.matchLabels (a namespace- or mesh-wide policy has no ports to name); add a selector or move the port setting into a workload policy');
  }
  for (const [key, value] of Object.entries(raw)) {
    const port = /^[0-9]+$/.test(key) ? Number(key) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      c.fail(`${path}.${key}`, `"${key}" is not a port number from 1 to 65535 (the workload's port, e.g. 8080)`);
      continue;
    }
    const mode = parseMode(c, value, `${path}.${key}`);
    if (mode !== undefined) out.set(port, mode);
  }
  return out;
}

/** Converts one object, or returns its problems. */
function parseOne(other: OtherObject): PeerAuthentication | FieldProblem[] {
  const version = other.apiVersion.slice(SECURITY_GROUP.length + 1);
  if (!(PEER_AUTHENTICATION_VERSIONS as readonly string[]).includes(version)) {
    return [{ path: 'apiVersion', problem: `"${other.apiVersion}" is not served; use ${SECURITY_GROUP}/v1` }];
  }
  const c = new PolicyFields();
  const object = other.object;
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const created = creationTime(c, meta.creationTimestamp);
  const spec = object.spec === undefined || object.spec === null ? {} : c.mapping(object.spec, 'spec', ['selector', 'mtls', 'portLevelMtls']);
  if (!spec) return c.list;
  const matchLabels = parseWorkloadSelector(c, spec.selector);
  const mode = parseMode(c, spec.mtls, 'spec.mtls');
  const portModes = parsePortModes(c, spec.portLevelMtls, matchLabels !== undefined);
  if (!c.ok || mode === undefined) return c.list;
  return { namespace: other.namespace ?? 'default', name: other.name, file: other.file, matchLabels, mode, portModes, createdMs: created.ms };
}

/**
 * Reads every PeerAuthentication among `others`. Of several policies without a selector in
 * one namespace, Istio applies the oldest; the others never apply, so they are rejected
 * with a reason naming the one that does. Policies with selectors may overlap (the oldest
 * matching one applies per pod) and are all kept.
 */
export function parsePeerAuthentications(others: readonly OtherObject[]): ParsedPeerAuthentications {
  const { valid, rejected } = parseEach(others, PEER_AUTHENTICATION_KIND, isPeerAuthentication, parseOne);
  valid.sort((a, b) => (olderThan(a, b) ? -1 : olderThan(b, a) ? 1 : 0));
  const policies: PeerAuthentication[] = [];
  const namespaceWide = new Map<string, PeerAuthentication>();
  for (const p of valid) {
    const winner = p.matchLabels === undefined ? namespaceWide.get(p.namespace) : undefined;
    if (!winner) {
      if (p.matchLabels === undefined) namespaceWide.set(p.namespace, p);
      policies.push(p);
      continue;
    }
    const label = objectLabel(PEER_AUTHENTICATION_KIND, p.namespace, p.name);
    const winnerLabel = objectLabel(PEER_AUTHENTICATION_KIND, winner.namespace, winner.name);
    rejected.push(
      rejection(p.file, label, `conflict: namespace ${p.namespace} already has ${winnerLabel} (${winner.file}) without a selector, which applies because ${whyOlder(winner, p)}; only one namespace-wide PeerAuthentication applies: merge them or add a selector to this one`, 'spec.selector'),
    );
  }
  return { policies, rejected };
}
