import assert from 'node:assert/strict';
import { parseK8sYaml } from '../../../config/k8s-yaml';
import { convertObjects } from '../../../config/objects';
import type { RejectedObject } from '../../../config/validation';
import { parseIstioAuthorizationPolicies } from './parse-istio-authorization-policy';
import { parseMeshAuthorizationPolicies } from './parse-mesh-authorization-policy';
import { AuthorizationPolicies } from './policy-set';
import type { AuthzHttp, AuthzRequest } from './request';

/** Test helpers: policies from YAML, and requests with defaults. */

export function parsePolicies(text: string, settings: { rootNamespace?: string; trustDomain?: string } = {}): { set: AuthorizationPolicies; rejected: RejectedObject[] } {
  const parsed = parseK8sYaml(text, 'authz.yaml');
  assert.deepEqual(parsed.problems, []);
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  const istio = parseIstioAuthorizationPolicies(converted.others);
  const mesh = parseMeshAuthorizationPolicies(converted.others);
  return { set: new AuthorizationPolicies([...istio.policies, ...mesh.policies], settings), rejected: [...istio.rejected, ...mesh.rejected] };
}

export const istioPolicy = (ns: string, name: string, spec: string, apiVersion = 'security.istio.io/v1') => `---
apiVersion: ${apiVersion}
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec: ${spec}
`;

export const meshPolicy = (ns: string, name: string, spec: string) => `---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XAuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec: ${spec}
`;

/** An L4 (no HTTP) mutual-TLS request from demo/sa/web to demo/api-1 (app: api) on 8080; `http` makes it L7. */
export function request(overrides: Partial<Omit<AuthzRequest, 'http'>> & { http?: Partial<AuthzHttp> } = {}): AuthzRequest {
  const { http, ...rest } = overrides;
  const base: AuthzRequest = {
    destination: { namespace: 'demo', labels: { app: 'api' }, serviceAccount: 'api', podName: 'api-1' },
    port: 8080,
    sourcePrincipal: 'spiffe://cluster.local/ns/demo/sa/web',
    sourceIp: '10.244.1.10',
    ...rest,
  };
  if (http) base.http = { method: 'GET', path: '/', host: 'api.demo.svc.cluster.local', headers: {}, ...http };
  return base;
}
