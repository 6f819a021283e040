/**
 * What the proxy knows about one connection or request when it asks for a verdict
 * (evaluate.ts). `http` is absent at L4 (a connection the proxy relays as bytes): the
 * rules that need it are then judged as evaluate.ts explains.
 */

/** The destination workload: the pod of this node the connection is for. */
export interface AuthzDestination {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  serviceAccount: string;
  podName: string;
  /** Names ("name", in the pod's namespace) of the Services whose selector selects the pod: for targetRefs to a Service. */
  serviceNames?: ReadonlySet<string>;
}

export interface AuthzHttp {
  method: string;
  /** Origin-form path; a query or fragment is ignored, as Istio matches paths without them. */
  path: string;
  /** The authority (Host or :authority), maybe with a port. */
  host: string;
  /** Lower-case names; several values of one header are matched joined with "," (as Envoy does). */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export interface AuthzRequest {
  destination: AuthzDestination;
  /** The destination port (the pod's port). */
  port: number;
  /** The pod address the connection was for, for `destination.ip` conditions. */
  destinationIp?: string;
  /** The peer's SPIFFE ID ("spiffe://<td>/ns/<ns>/sa/<sa>"); undefined for plaintext. */
  sourcePrincipal: string | undefined;
  sourceIp: string;
  /** The TLS server name the client sent, when the connection is TLS the proxy saw. */
  sni?: string;
  /** Absent at L4. */
  http?: AuthzHttp;
}

/** A peer identity taken apart once per request. */
export interface Peer {
  /** The principal without "spiffe://", as Istio matches `principals`. */
  id: string;
  trustDomain: string;
  /** From "/ns/<ns>/sa/<sa>"; undefined for a SPIFFE ID of another shape. */
  namespace: string | undefined;
  serviceAccount: string | undefined;
}

const SPIFFE = 'spiffe://';

/** The parts of a SPIFFE ID; undefined for plaintext or a principal that is not a SPIFFE ID. */
export function peerOf(principal: string | undefined): Peer | undefined {
  if (principal === undefined || !principal.startsWith(SPIFFE)) return undefined;
  const id = principal.slice(SPIFFE.length);
  const slash = id.indexOf('/');
  if (slash < 0) return { id, trustDomain: id, namespace: undefined, serviceAccount: undefined };
  const trustDomain = id.slice(0, slash);
  // "/ns/<ns>/sa/<sa>", without splitting: this runs once per request.
  const sa = id.indexOf('/sa/', slash + 4);
  const k8s = id.startsWith('/ns/', slash) && sa > slash + 4 && id.indexOf('/', slash + 4) === sa && sa + 4 < id.length && id.indexOf('/', sa + 4) < 0;
  return k8s ? { id, trustDomain, namespace: id.slice(slash + 4, sa), serviceAccount: id.slice(sa + 4) } : { id, trustDomain, namespace: undefined, serviceAccount: undefined };
}
