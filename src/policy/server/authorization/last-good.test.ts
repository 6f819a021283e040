import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rejection } from '../../../config/validation';
import { LastGoodPolicies } from './last-good';
import type { CompiledPolicy } from './model';
import { AuthorizationPolicies } from './policy-set';

const policy = (name: string, action: CompiledPolicy['action'] = 'DENY'): CompiledPolicy => ({
  kind: 'AuthorizationPolicy', namespace: 'demo', name, file: `${name}.yaml`, createdMs: 1, action, scope: { kind: 'all', rootNamespaceIsMesh: true }, rules: [],
});

test('a policy whose new version is rejected keeps its last valid version; one that is deleted goes', () => {
  const last = new LastGoodPolicies();
  const deny = policy('deny-admin');
  const first = last.apply(new AuthorizationPolicies([deny, policy('other', 'ALLOW')]), []);
  assert.deepEqual(first.kept, []);
  assert.equal(first.policies.size, 2);
  // deny-admin's edit is rejected: the previous version stays in force; `other` is deleted.
  const bad = rejection('deny-admin.yaml', 'AuthorizationPolicy demo/deny-admin', 'bad field', 'spec.x');
  const second = last.apply(new AuthorizationPolicies([]), [bad]);
  assert.deepEqual(second.kept, [deny]);
  assert.deepEqual(second.policies.all.map((p) => p.name), ['deny-admin']);
  // Still rejected: still kept. Then fixed: the new version applies. Then deleted: gone.
  assert.deepEqual(last.apply(new AuthorizationPolicies([]), [bad]).kept, [deny]);
  const fixed = policy('deny-admin', 'AUDIT');
  assert.deepEqual(last.apply(new AuthorizationPolicies([fixed]), []).policies.all, [fixed]);
  assert.equal(last.apply(new AuthorizationPolicies([]), []).policies.size, 0);
  // A policy rejected from its first version has nothing to keep.
  assert.deepEqual(new LastGoodPolicies().apply(new AuthorizationPolicies([]), [bad]).kept, []);
});
