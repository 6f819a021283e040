/**
 * The Gateway API mesh conformance tests of sigs.k8s.io/gateway-api/conformance v1.6.3
 * (tests/mesh/*.go), translated into data for nodemesh's runner.
 *
 * This is a translation of the upstream tests, which are Copyright The Kubernetes Authors and
 * licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
 * It was made by reading the Go sources: one entry per upstream suite.ConformanceTest, in the
 * order of the upstream MeshConformanceTests slice (files sorted by name, then each file's
 * init() append order), fields named as upstream (camelCase). Every field a Go
 * http.ExpectedResponse literal sets is copied; fields it leaves unset are left out here too
 * (the runner applies the upstream defaults of utils/echo/pod.go makeRequest/compareRequest:
 * host "echo", method GET for HTTP, status 200 when no status is given).
 *
 * `name` is the upstream TestCaseName, or, when the literal has none, exactly what
 * ExpectedResponse.GetTestCaseName(i) returns for it (computed on the literal as written, i.e.
 * before makeRequest fills in defaults, so an unset Host prints as '' and an unset
 * StatusCodes as []). `go test` shows these names with spaces turned into underscores.
 * Cases that upstream sends directly inside a t.Run(...) without GetTestCaseName (the
 * single request of MeshHTTPRouteSimpleSameNamespace, and the warmup requests of the two
 * weight tests) are named after that t.Run subtest.
 *
 * Re-checking against a new release: download the module (e.g. `GOMODCACHE=/tmp/gm go mod
 * download sigs.k8s.io/gateway-api/conformance@vX.Y.Z`), then run
 * checkAgainstModule(<module dir>) from ./check-translation.ts; it lists ShortNames missing on
 * either side, wrong order, manifests that differ from or do not exist in the module, and
 * tests whose number of ExpectedResponse literals differs from the number of cases here.
 * It does not compare field values: re-read the diff of tests/mesh/ between the two releases.
 */
import type { MeshCase, MeshClient, MeshConformanceTest } from './mesh-case-types';

export const SUITE = {
  module: 'sigs.k8s.io/gateway-api/conformance',
  version: 'v1.6.3',
  // utils/suite/profiles.go has no mesh profile named 'GATEWAY-MESH'; the mesh profiles are
  // MeshHTTPConformanceProfileName = "MESH-HTTP" and MeshGRPCConformanceProfileName = "MESH-GRPC".
  // These tests are mostly HTTP (MeshGRPCRouteWeight needs the GRPCRoute feature of MESH-GRPC).
  profile: 'MESH-HTTP',
} as const;

/** suite.MeshNamespace */
const MeshNamespace = 'gateway-conformance-mesh';
/** suite.MeshConsumerNamespace */
const MeshConsumerNamespace = 'gateway-conformance-mesh-consumer';

/** echo.ConnectToApp(t, s, echo.MeshAppEchoV1) */
const echoV1: MeshClient = { app: 'app=echo,version=v1', namespace: MeshNamespace };

/** MeshHTTPRouteRequestHeaderModifier's cases; MeshHTTPRouteBackendRequestHeaderModifier reuses its Test. */
const requestHeaderModifierCases: MeshCase[] = [
  {
    name: "0 request to '/set' with headers should go to echo-v1",
    request: { path: '/set', headers: { 'Some-Other-Header': 'val' } },
    expectedRequest: {
      path: '/set',
      headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "1 request to '/set' with headers should go to echo-v1",
    request: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } },
    expectedRequest: {
      path: '/set',
      headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "2 request to '/add' with headers should go to echo-v1",
    request: { path: '/add', headers: { 'Some-Other-Header': 'val' } },
    expectedRequest: {
      path: '/add',
      headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' },
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "3 request to '/add' with headers should go to echo-v1",
    request: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' } },
    expectedRequest: {
      path: '/add',
      headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' },
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "4 request to '/remove' with headers should go to echo-v1",
    request: { path: '/remove', headers: { 'X-Header-Remove': 'val' } },
    expectedRequest: { path: '/remove', absentHeaders: ['X-Header-Remove'] },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "5 request to '/multiple' with headers should go to echo-v1",
    request: {
      path: '/multiple',
      headers: {
        'X-Header-Set-2': 'set-val-2',
        'X-Header-Add-2': 'add-val-2',
        'X-Header-Remove-2': 'remove-val-2',
        'Another-Header': 'another-header-val',
      },
    },
    expectedRequest: {
      path: '/multiple',
      headers: {
        'X-Header-Set-1': 'header-set-1',
        'X-Header-Set-2': 'header-set-2',
        'X-Header-Add-1': 'header-add-1',
        'X-Header-Add-2': 'add-val-2,header-add-2',
        'X-Header-Add-3': 'header-add-3',
        'Another-Header': 'another-header-val',
      },
      absentHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
  {
    name: "6 request to '/case-insensitivity' with headers should go to echo-v1",
    request: {
      path: '/case-insensitivity',
      // The filter uses canonicalized header names, the request uses lowercase names.
      headers: {
        'x-header-set': 'original-val-set',
        'x-header-add': 'original-val-add',
        'x-header-remove': 'original-val-remove',
        'Another-Header': 'another-header-val',
      },
    },
    expectedRequest: {
      path: '/case-insensitivity',
      headers: {
        'X-Header-Set': 'header-set',
        'X-Header-Add': 'original-val-add,header-add',
        'Another-Header': 'another-header-val',
      },
      absentHeaders: ['x-header-remove', 'X-Header-Remove'],
    },
    response: {},
    backend: 'echo-v1',
    namespace: MeshNamespace,
  },
];

export const MESH_TESTS: MeshConformanceTest[] = [
  // grpcroute-weight.go
  {
    shortName: 'MeshGRPCRouteWeight',
    description: 'A GRPCRoute with weighted backends in mesh mode',
    features: ['Mesh', 'GRPCRoute'],
    manifests: ['tests/mesh/grpcroute-weight.yaml'],
    steps: [
      {
        kind: 'weights',
        client: echoV1,
        warmup: {
          name: 'Requests should have a distribution that matches the weight',
          request: { protocol: 'grpc', path: '', host: 'echo:7070' },
          response: { statusCode: 200 },
          namespace: MeshNamespace,
        },
        expected: { 'echo-v1': 0.7, 'echo-v2': 0.3 },
      },
    ],
  },
  // httproute-303-redirect.go
  {
    shortName: 'MeshHTTPRoute303Redirect',
    description: 'An HTTPRoute with statusCode 303 redirect filter',
    features: ['Mesh', 'HTTPRoute', 'HTTPRoute303RedirectStatusCode'],
    manifests: ['tests/mesh/httproute-303-redirect.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/redirect' should receive one of []",
            request: { path: '/redirect', unfollowRedirect: true },
            response: { statusCode: 303 },
            redirectRequest: { path: '/redirect' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-307-redirect.go
  {
    shortName: 'MeshHTTPRoute307Redirect',
    description: 'An HTTPRoute with statusCode 307 redirect filter',
    features: ['Mesh', 'HTTPRoute', 'HTTPRoute307RedirectStatusCode'],
    manifests: ['tests/mesh/httproute-307-redirect.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/temporary' should receive one of []",
            request: { path: '/temporary', unfollowRedirect: true },
            response: { statusCode: 307 },
            redirectRequest: { path: '/temporary' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-308-redirect.go
  {
    shortName: 'MeshHTTPRoute308Redirect',
    description: 'An HTTPRoute with statusCode 308 redirect filter',
    features: ['Mesh', 'HTTPRoute', 'HTTPRoute308RedirectStatusCode'],
    manifests: ['tests/mesh/httproute-308-redirect.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/permanent' should receive one of []",
            request: { path: '/permanent', unfollowRedirect: true },
            response: { statusCode: 308 },
            redirectRequest: { path: '/permanent' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-matching.go
  {
    shortName: 'MeshHTTPRouteMatching',
    description: 'A single HTTPRoute with path and header matching for different backends',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/httproute-matching.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/' should go to echo-v1",
            request: { path: '/' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "1 request to '/example' should go to echo-v1",
            request: { path: '/example' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "2 request to '/' with headers should go to echo-v1",
            request: { path: '/', headers: { Version: 'one' } },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "3 request to '/v2' should go to echo-v2",
            request: { path: '/v2' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            name: "4 request to '/v2/example' should go to echo-v2",
            request: { path: '/v2/example' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            name: "5 request to '/' with headers should go to echo-v2",
            request: { path: '/', headers: { Version: 'two' } },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            name: "6 request to '/v2/' should go to echo-v2",
            request: { path: '/v2/' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            // Not a path segment prefix so should not match /v2.
            name: "7 request to '/v2example' should go to echo-v1",
            request: { path: '/v2example' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "8 request to '/foo/v2/example' should go to echo-v1",
            request: { path: '/foo/v2/example' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-named-rule.go
  {
    shortName: 'MeshHTTPRouteNamedRule',
    description: 'An HTTPRoute with a named HTTPRouteRule',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteNamedRouteRule'],
    manifests: ['tests/mesh/httproute-named-rule.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/named' should go to echo-v1",
            request: { path: '/named' },
            expectedRequest: { path: '/named' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            // Copied as upstream has it: ExpectedRequest.Path "/named" for a request to
            // "/unnamed", although the manifest's unnamed rule does not rewrite the path.
            // The upstream mesh client (echo.compareRequest) never compares the path.
            name: "1 request to '/unnamed' should go to echo-v2",
            request: { path: '/unnamed' },
            expectedRequest: { path: '/named' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-query-param-matching.go
  {
    shortName: 'MeshHTTPRouteQueryParamMatching',
    description: 'A single HTTPRoute with query param matching for different backends',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteQueryParamMatching'],
    manifests: ['tests/mesh/httproute-query-param-matching.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to '/?animal=whale' should go to echo-v1",
            request: { path: '/?animal=whale' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "1 request to '/?animal=dolphin' should go to echo-v2",
            request: { path: '/?animal=dolphin' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            name: "2 request to '/?animal=whale&otherparam=irrelevant' should go to echo-v1",
            request: { path: '/?animal=whale&otherparam=irrelevant' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "3 request to '/?animal=dolphin&color=yellow' should go to echo-v2",
            request: { path: '/?animal=dolphin&color=yellow' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          {
            name: "4 request to '/?color=blue' should receive one of []",
            request: { path: '/?color=blue' },
            response: { statusCode: 404 },
          },
          {
            name: "5 request to '/?animal=dog' should receive one of []",
            request: { path: '/?animal=dog' },
            response: { statusCode: 404 },
          },
          {
            name: "6 request to '/?animal=whaledolphin' should receive one of []",
            request: { path: '/?animal=whaledolphin' },
            response: { statusCode: 404 },
          },
          {
            name: "7 request to '/' should receive one of []",
            request: { path: '/' },
            response: { statusCode: 404 },
          },
          // Combinations of query param matching with other core matches.
          {
            name: "8 request to '/path1?animal=whale' should go to echo-v1",
            request: { path: '/path1?animal=whale' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "9 request to '/?animal=whale' with headers should go to echo-v2",
            request: { headers: { version: 'one' }, path: '/?animal=whale' },
            response: {},
            backend: 'echo-v2',
            namespace: MeshNamespace,
          },
          // Combinations of matches which are OR'd together match even if only one of them is used.
          {
            name: "10 request to '/path3?animal=shark' should go to echo-v1",
            request: { path: '/path3?animal=shark' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "11 request to '/path4?animal=kraken' with headers should go to echo-v1",
            request: { headers: { version: 'three' }, path: '/path4?animal=kraken' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          // Combinations of match types which are ANDed together do not match on a subset.
          {
            name: "12 request to '/?animal=shark' should receive one of []",
            request: { path: '/?animal=shark' },
            response: { statusCode: 404 },
          },
          {
            name: "13 request to '/path4?animal=kraken' should receive one of []",
            request: { path: '/path4?animal=kraken' },
            response: { statusCode: 404 },
          },
          // Requests that satisfy multiple matches: precedence order of the Gateway API spec.
          {
            name: "14 request to '/path5?animal=hydra' should go to echo-v1",
            request: { path: '/path5?animal=hydra' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-redirect-host-and-status.go
  {
    shortName: 'MeshHTTPRouteRedirectHostAndStatus',
    description: 'An HTTPRoute with hostname and statusCode redirect filters',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/httproute-redirect-host-and-status.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/hostname-redirect' should receive one of []",
            request: { host: 'echo', path: '/hostname-redirect', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { host: 'example.org' },
            namespace: MeshNamespace,
          },
          {
            name: "1 request to 'echo/host-and-status' should receive one of []",
            request: { host: 'echo', path: '/host-and-status', unfollowRedirect: true },
            response: { statusCode: 301 },
            redirectRequest: { host: 'example.org' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-redirect-path.go
  {
    shortName: 'MeshHTTPRouteRedirectPath',
    // (sic: upstream's description says "scheme" for this path-redirect test)
    description: 'An HTTPRoute with scheme redirect filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRedirectPath'],
    manifests: ['tests/mesh/httproute-redirect-path.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/original-prefix/lemon' should receive one of []",
            request: { host: 'echo', path: '/original-prefix/lemon', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { path: '/replacement-prefix/lemon' },
            namespace: MeshNamespace,
          },
          {
            name: "1 request to 'echo/full/path/original' should receive one of []",
            request: { host: 'echo', path: '/full/path/original', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { path: '/full-path-replacement' },
            namespace: MeshNamespace,
          },
          {
            name: "2 request to 'echo/path-and-host' should receive one of []",
            request: { host: 'echo', path: '/path-and-host', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { host: 'example.org', path: '/replacement-prefix' },
            namespace: MeshNamespace,
          },
          {
            name: "3 request to 'echo/path-and-status' should receive one of []",
            request: { host: 'echo', path: '/path-and-status', unfollowRedirect: true },
            response: { statusCode: 301 },
            redirectRequest: { path: '/replacement-prefix' },
            namespace: MeshNamespace,
          },
          {
            name: "4 request to 'echo/full-path-and-host' should receive one of []",
            request: { host: 'echo', path: '/full-path-and-host', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { host: 'example.org', path: '/replacement-full' },
            namespace: MeshNamespace,
          },
          {
            name: "5 request to 'echo/full-path-and-status' should receive one of []",
            request: { host: 'echo', path: '/full-path-and-status', unfollowRedirect: true },
            response: { statusCode: 301 },
            redirectRequest: { path: '/replacement-full' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-redirect-port.go
  {
    shortName: 'MeshHTTPRouteRedirectPort',
    description: 'An HTTPRoute with a port redirect filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRedirectPort'],
    manifests: ['tests/mesh/httproute-redirect-port.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/port' should receive one of []",
            request: { host: 'echo', path: '/port', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { port: '8083' },
            namespace: MeshNamespace,
          },
          {
            name: "1 request to 'echo/port-and-host' should receive one of []",
            request: { host: 'echo', path: '/port-and-host', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { host: 'example.org', port: '8083' },
            namespace: MeshNamespace,
          },
          {
            name: "2 request to 'echo/port-and-status' should receive one of []",
            request: { host: 'echo', path: '/port-and-status', unfollowRedirect: true },
            response: { statusCode: 301 },
            redirectRequest: { port: '8083' },
            namespace: MeshNamespace,
          },
          {
            name: "3 request to 'echo/port-and-host-and-status' should receive one of []",
            request: { host: 'echo', path: '/port-and-host-and-status', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { port: '8083', host: 'example.org' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-redirect-scheme.go
  {
    shortName: 'MeshHTTPRouteSchemeRedirect',
    description: 'An HTTPRoute with a scheme redirect filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteSchemeRedirect'],
    manifests: ['tests/mesh/httproute-redirect-scheme.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/scheme' should receive one of []",
            request: { host: 'echo', path: '/scheme', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { scheme: 'https' },
            namespace: MeshNamespace,
          },
          {
            name: "1 request to 'echo/scheme-and-host' should receive one of []",
            request: { host: 'echo', path: '/scheme-and-host', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { host: 'example.org', scheme: 'https' },
            namespace: MeshNamespace,
          },
          {
            name: "2 request to 'echo/scheme-and-status' should receive one of []",
            request: { host: 'echo', path: '/scheme-and-status', unfollowRedirect: true },
            response: { statusCode: 301 },
            redirectRequest: { scheme: 'https' },
            namespace: MeshNamespace,
          },
          {
            name: "3 request to 'echo/scheme-and-host-and-status' should receive one of []",
            request: { host: 'echo', path: '/scheme-and-host-and-status', unfollowRedirect: true },
            response: { statusCode: 302 },
            redirectRequest: { scheme: 'https', host: 'example.org' },
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-request-header-modifier.go (init appends MeshHTTPRouteRequestHeaderModifier first)
  {
    shortName: 'MeshHTTPRouteRequestHeaderModifier',
    description: 'An HTTPRoute has request header modifier filters applied correctly',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/httproute-request-header-modifier.yaml'],
    steps: [{ kind: 'expect', client: echoV1, cases: requestHeaderModifierCases }],
  },
  {
    shortName: 'MeshHTTPRouteBackendRequestHeaderModifier',
    description: 'An HTTPRoute backend has request header modifier filters applied correctly',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteBackendRequestHeaderModification'],
    manifests: ['tests/mesh/httproute-request-header-modifier-backend.yaml'],
    // Test: MeshHTTPRouteRequestHeaderModifier.Test
    steps: [{ kind: 'expect', client: echoV1, cases: requestHeaderModifierCases }],
  },
  // httproute-rewrite-path.go
  {
    shortName: 'MeshHTTPRouteRewritePath',
    description: 'An HTTPRoute with path rewrite filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRewritePath'],
    manifests: ['tests/mesh/httproute-rewrite-path.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/prefix/one/two' should go to echo-v1",
            request: { path: '/prefix/one/two', host: 'echo' },
            expectedRequest: { path: '/one/two' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "1 request to 'echo/strip-prefix/three' should go to echo-v1",
            request: { path: '/strip-prefix/three', host: 'echo' },
            expectedRequest: { path: '/three' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "2 request to 'echo/strip-prefix' should go to echo-v1",
            request: { path: '/strip-prefix', host: 'echo' },
            expectedRequest: { path: '/' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "3 request to 'echo/full/one/two' should go to echo-v1",
            request: { path: '/full/one/two', host: 'echo' },
            expectedRequest: { path: '/one' },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "4 request to 'echo/full/rewrite-path-and-modify-headers/test' with headers should go to echo-v1",
            request: {
              host: 'echo',
              path: '/full/rewrite-path-and-modify-headers/test',
              headers: {
                'X-Header-Remove': 'remove-val',
                'X-Header-Add-Append': 'append-val-1',
                'X-Header-Set': 'set-val',
              },
            },
            expectedRequest: {
              path: '/test',
              headers: {
                'X-Header-Add': 'header-val-1',
                'X-Header-Add-Append': 'append-val-1,header-val-2',
                'X-Header-Set': 'set-overwrites-values',
              },
              absentHeaders: ['X-Header-Remove'],
            },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
          {
            name: "5 request to 'echo/prefix/rewrite-path-and-modify-headers/one' with headers should go to echo-v1",
            request: {
              host: 'echo',
              path: '/prefix/rewrite-path-and-modify-headers/one',
              headers: {
                'X-Header-Remove': 'remove-val',
                'X-Header-Add-Append': 'append-val-1',
                'X-Header-Set': 'set-val',
              },
            },
            expectedRequest: {
              path: '/prefix/one',
              headers: {
                'X-Header-Add': 'header-val-1',
                'X-Header-Add-Append': 'append-val-1,header-val-2',
                'X-Header-Set': 'set-overwrites-values',
              },
              absentHeaders: ['X-Header-Remove'],
            },
            response: {},
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-simple-same-namespace.go
  {
    shortName: 'MeshHTTPRouteSimpleSameNamespace',
    description:
      'A single HTTPRoute in the gateway-conformance-mesh namespace attaches to a Service in the same namespace',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/httproute-simple-same-namespace.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: 'Simple HTTP request should reach infra-backend',
            request: { path: '/', host: 'echo' },
            response: { statusCode: 200 },
            backend: 'echo-v1',
            namespace: MeshNamespace,
          },
        ],
      },
    ],
  },
  // httproute-weight.go
  {
    shortName: 'MeshHTTPRouteWeight',
    description: 'An HTTPRoute with weighted backends',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/httproute-weight.yaml'],
    steps: [
      {
        kind: 'weights',
        client: echoV1,
        warmup: {
          name: 'Requests should have a distribution that matches the weight',
          request: { path: '/', host: 'echo' },
          response: { statusCode: 200 },
          namespace: MeshNamespace,
        },
        expected: { 'echo-v1': 0.7, 'echo-v2': 0.3 },
      },
    ],
  },
  // mesh-basic.go
  {
    shortName: 'MeshBasic',
    description:
      'A mesh client can communicate with a mesh server. This tests basic reachability with no configuration applied.',
    features: ['Mesh'],
    manifests: [],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo' should receive one of []",
            request: { host: 'echo', method: 'GET' },
            response: { statusCode: 200 },
          },
        ],
      },
    ],
  },
  // mesh-consumer-route.go
  {
    shortName: 'MeshConsumerRoute',
    description:
      "An HTTPRoute in a namespace other than its parentRef's namespace only affects requests from the route's namespace",
    features: ['Mesh', 'MeshConsumerRoute', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: ['tests/mesh/mesh-consumer-route.yaml'],
    steps: [
      {
        kind: 'expect',
        // echo.ConnectToAppInNamespace(t, s, echo.MeshAppEchoV1, suite.MeshConsumerNamespace)
        client: { app: 'app=echo,version=v1', namespace: MeshConsumerNamespace },
        cases: [
          {
            name: "request from consumer route's namespace modified by HTTPRoute",
            request: { host: 'echo-v1.gateway-conformance-mesh', method: 'GET', path: '/' },
            response: { statusCode: 200, headers: { 'X-Header-Set': 'set' } },
            backend: 'echo-v1',
          },
        ],
      },
      {
        kind: 'expect',
        // echo.ConnectToAppInNamespace(t, s, echo.MeshAppEchoV1, suite.MeshNamespace)
        client: { app: 'app=echo,version=v1', namespace: MeshNamespace },
        cases: [
          {
            name: "request not from consumer route's namespace not modified by HTTPRoute",
            request: { host: 'echo-v1.gateway-conformance-mesh', method: 'GET', path: '/' },
            response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
            backend: 'echo-v1',
          },
        ],
      },
    ],
  },
  // mesh-frontend-hostname.go
  {
    shortName: 'MeshFrontendHostname',
    description: 'Mesh parentRef matches Service IP (not Host)',
    features: ['Mesh', 'MeshClusterIPMatching', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: ['tests/mesh/mesh-frontend.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: 'Send to service with wrong hostname',
            request: { host: 'echo-v2', headers: { Host: 'echo-v1' }, method: 'GET' },
            // Make sure the route actually did something
            response: { statusCode: 200, headers: { 'X-Header-Set': 'set' } },
            backend: 'echo-v2',
          },
          {
            name: 'Send to other service with matching hostname',
            request: { host: 'echo-v1', headers: { Host: 'echo-v2' }, method: 'GET' },
            response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
            backend: 'echo-v1',
          },
        ],
      },
    ],
  },
  // mesh-frontend.go
  {
    shortName: 'MeshFrontend',
    description: 'Mesh rules should only apply to the associated frontend',
    features: ['Mesh', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: ['tests/mesh/mesh-frontend.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: 'Send to service',
            request: { host: 'echo-v2', method: 'GET' },
            // Make sure the route actually did something
            response: { statusCode: 200, headers: { 'X-Header-Set': 'set' } },
            backend: 'echo-v2',
          },
          {
            name: 'Send to pod IP',
            // Host: http.Ipv6SafeHost(v2.Address) + ":8080", v2 := echo.ConnectToApp(t, s, echo.MeshAppEchoV2)
            request: {
              hostFromPodAddress: { app: 'app=echo,version=v2', namespace: MeshNamespace, port: '8080' },
              method: 'GET',
            },
            response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
            backend: 'echo-v2',
          },
        ],
      },
    ],
  },
  // mesh-ports.go
  {
    shortName: 'MeshPorts',
    description: "A mesh route can optionally configure 'port' in parentRef",
    features: ['Mesh', 'HTTPRoute', 'HTTPRouteParentRefPort', 'HTTPRouteResponseHeaderModification'],
    manifests: ['tests/mesh/mesh-ports.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: 'Explicit port set, send to that port',
            request: { host: 'echo-v1', method: 'GET' },
            // Make sure the route actually did something
            response: { statusCode: 200, headers: { 'X-Header-Set': 'v1' } },
            backend: 'echo-v1',
          },
          {
            name: 'Explicit port, send to an excluded port',
            request: { host: 'echo-v1:8080', method: 'GET' },
            // Route should not apply
            response: { statusCode: 200, absentHeaders: ['X-Header-Set'] },
            backend: 'echo-v1',
          },
          {
            name: 'No port set',
            request: { host: 'echo-v2', method: 'GET' },
            response: { statusCode: 200, headers: { 'X-Header-Set': 'v2' } },
            backend: 'echo-v2',
          },
          {
            // (sic: upstream gives this case the same TestCaseName as the previous one)
            name: 'No port set',
            request: { host: 'echo-v2:8080', method: 'GET' },
            response: { statusCode: 200, headers: { 'X-Header-Set': 'v2' } },
            backend: 'echo-v2',
          },
        ],
      },
    ],
  },
  // mesh-split.go
  {
    shortName: 'MeshTrafficSplit',
    description: 'A mesh client can send traffic to a Service which is split between two versions',
    features: ['Mesh', 'HTTPRoute'],
    manifests: ['tests/mesh/mesh-split.yaml'],
    steps: [
      {
        kind: 'expect',
        client: echoV1,
        cases: [
          {
            name: "0 request to 'echo/v1' should go to echo-v1",
            request: { host: 'echo', method: 'GET', path: '/v1' },
            response: { statusCode: 200 },
            backend: 'echo-v1',
          },
          {
            name: "1 request to 'echo/v2' should go to echo-v2",
            request: { host: 'echo', method: 'GET', path: '/v2' },
            response: { statusCode: 200 },
            backend: 'echo-v2',
          },
        ],
      },
    ],
  },
];
