import { normalizePath } from '../../../util/normalize-path';
import { parseAddress, type ParsedAddress } from './ip-block';
import { peerOf, type AuthzRequest, type Peer } from './request';

/**
 * The request's attributes in the form the clauses compare, each derived once per
 * request and only when a clause asks (a policy set without host rules never lower-cases
 * the authority).
 */
export class RequestFacts {
  readonly peer: Peer | undefined;
  private sourceAddress?: ParsedAddress | null;
  private destinationAddress?: ParsedAddress | null;
  private hostParts?: { host: string; authority: string } | null;
  private pathOnly?: string | null;

  constructor(
    readonly request: AuthzRequest,
    /** The mesh's trust domain, for service-account matches. */
    readonly trustDomain: string,
  ) {
    this.peer = peerOf(request.sourcePrincipal);
  }

  get isHttp(): boolean {
    return this.request.http !== undefined;
  }

  get source(): ParsedAddress | undefined {
    if (this.sourceAddress === undefined) this.sourceAddress = parseAddress(this.request.sourceIp) ?? null;
    return this.sourceAddress ?? undefined;
  }

  get destination(): ParsedAddress | undefined {
    if (this.destinationAddress === undefined) this.destinationAddress = parseAddress(this.request.destinationIp) ?? null;
    return this.destinationAddress ?? undefined;
  }

  /**
   * The authority lower-cased (host names compare case-insensitively, RFC 4343; Istio fixed
   * a bypass through "Httpbin.Foo" in CVE-2021-39155), and the host without its port.
   */
  get host(): { host: string; authority: string } | undefined {
    if (this.hostParts === undefined) {
      const authority = this.request.http?.host.toLowerCase();
      this.hostParts = authority === undefined ? null : { authority, host: withoutPort(authority) };
    }
    return this.hostParts ?? undefined;
  }

  /** The path without query or fragment, normalized (util/normalize-path.ts): Istio's `paths` match the path alone. */
  get path(): string | undefined {
    if (this.pathOnly === undefined) {
      const path = this.request.http?.path;
      if (path === undefined) this.pathOnly = null;
      else {
        const query = path.indexOf('?');
        const fragment = path.indexOf('#');
        const end = query < 0 ? fragment : fragment < 0 ? query : Math.min(query, fragment);
        // As the server will resolve it: no spelling of a path gets around a rule on it.
        this.pathOnly = normalizePath(end < 0 ? path : path.slice(0, end));
      }
    }
    return this.pathOnly ?? undefined;
  }

  header(name: string): string | undefined {
    const value = this.request.http?.headers[name];
    if (value === undefined) return undefined;
    return typeof value === 'string' ? value : value.join(',');
  }
}

/** "example.com:8080" -> "example.com"; "[fd00::1]:80" -> "[fd00::1]". */
function withoutPort(authority: string): string {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    return close < 0 ? authority : authority.slice(0, close + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon < 0 || authority.indexOf(':') !== colon ? authority : authority.slice(0, colon);
}
