/**
 * The shape of the Gateway API mesh conformance tests as nodemesh's runner reads them
 * (test/gateway-conformance.test.ts). Each field mirrors a field of the upstream suite's
 * Go types (sigs.k8s.io/gateway-api/conformance: utils/http.ExpectedResponse,
 * utils/roundtripper.RedirectRequest, utils/echo.MeshApplication) under the same name in
 * camelCase, so a case reads side by side with the Go test it was translated from.
 */

/** utils/http.Request: what the client in the mesh pod sends. */
export interface MeshRequest {
  /** Default "echo" (the upstream client's default). May carry a port: "echo:7070". */
  host?: string;
  /** Default GET for HTTP; unused for gRPC. */
  method?: string;
  /** Default "" (the root). */
  path?: string;
  headers?: Record<string, string>;
  /** Default "http". */
  protocol?: 'http' | 'grpc';
  unfollowRedirect?: boolean;
  /**
   * Added for MeshFrontend "Send to pod IP" (no static `host` can express it): upstream sets
   * Host at run time to http.Ipv6SafeHost(pod.Status.PodIP) + ":" + port, the pod being the
   * first one matching `app` in `namespace` (echo.ConnectToApp(t, s, app).Address).
   * When set, `host` is absent and the runner must compute the host this way.
   */
  hostFromPodAddress?: { app: MeshClient['app']; namespace: string; port: string };
}

/** utils/http.ExpectedRequest: what the backend must have seen. */
export interface MeshExpectedRequest {
  headers?: Record<string, string>;
  absentHeaders?: string[];
  /** Compared by nodemesh's runner (the upstream mesh client does not compare these). */
  path?: string;
  host?: string;
  method?: string;
}

/** utils/http.Response: what the client must get back. */
export interface MeshResponse {
  statusCode?: number;
  statusCodes?: number[];
  headers?: Record<string, string>;
  absentHeaders?: string[];
}

/** utils/roundtripper.RedirectRequest: where a redirect points (its Location). */
export interface MeshRedirect {
  scheme?: string;
  host?: string;
  port?: string;
  path?: string;
}

/** One http.ExpectedResponse. */
export interface MeshCase {
  /** TestCaseName, or the upstream default name `${index}_request_to_${host}${path}` when it has none. */
  name: string;
  request: MeshRequest;
  expectedRequest?: MeshExpectedRequest;
  response: MeshResponse;
  redirectRequest?: MeshRedirect;
  /** The responding pod's name must start with this ('' or absent: any). */
  backend?: string;
  namespace?: string;
}

/** echo.ConnectToApp / ConnectToAppInNamespace: the pod the requests are sent from. */
export interface MeshClient {
  /** echo.MeshAppEchoV1 = "app=echo,version=v1", echo.MeshAppEchoV2 = "app=echo,version=v2". */
  app: 'app=echo,version=v1' | 'app=echo,version=v2';
  /** suite.MeshNamespace "gateway-conformance-mesh" or suite.MeshConsumerNamespace "gateway-conformance-mesh-consumer". */
  namespace: string;
}

/** A step of a test, run in order. */
export type MeshStep =
  /** MakeRequestAndExpectEventuallyConsistentResponse for each case. */
  | { kind: 'expect'; client: MeshClient; cases: MeshCase[] }
  /**
   * weight.TestWeightedDistributionBatch (500 requests, 5% tolerance, up to MaxTestRetries
   * attempts), after one eventually-consistent request of `warmup`.
   */
  | { kind: 'weights'; client: MeshClient; warmup: MeshCase; expected: Record<string, number> };

export interface MeshConformanceTest {
  /** ShortName, e.g. "MeshConsumerRoute". */
  shortName: string;
  description: string;
  /** Feature names as the upstream's features package spells them ("Mesh", "HTTPRoute", ...). */
  features: string[];
  /** Relative to the conformance module's root, e.g. "tests/mesh/mesh-consumer-route.yaml". */
  manifests: string[];
  steps: MeshStep[];
}
