import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeValue, FieldError, FieldReader, Problems, rejection, rejectionsOf } from './validation';

test('readers throw FieldError naming the path and what was found', () => {
  const read = new FieldReader();
  assert.throws(() => read.record([1], 'spec'), (err: unknown) => err instanceof FieldError && err.path === 'spec' && err.problem === 'must be a mapping, got a list');
  assert.throws(() => read.integer(70000, 'spec.port', 1, 65535, 'a port'), { message: 'spec.port: must be a port (an integer from 1 to 65535), got number 70000' });
  assert.throws(() => read.oneOf('Fast', 'spec.type', ['A', 'B'] as const, undefined, 'a type'), { message: 'spec.type: "Fast" is not a type (use A, B)' });
  assert.equal(read.string(undefined, 'x'), undefined);
  assert.deepEqual(read.list(null, 'x'), []);
});

test('quote hints are added only by a reader that asks for them', () => {
  assert.equal(describeValue(2), 'number 2');
  assert.equal(describeValue(2, true), 'number 2; quote it to make it a string');
  assert.match(describeValue(new Date(0), true), /^a timestamp \(1970-01-01T00:00:00\.000Z\); quote it$/);
  assert.throws(() => new FieldReader({ quoteHints: true }).string(true, 'metadata.name'), /got boolean true; quote it/);
});

test('Problems collects every problem, including a reader\'s, and unknown fields', () => {
  const read = new FieldReader();
  const p = new Problems();
  assert.equal(p.check(() => read.string(5, 'spec.a')), undefined);
  assert.equal(p.check(() => read.string('ok', 'spec.b')), 'ok');
  p.unknownFields({ a: 1, typo: 2 }, 'spec', ['a']);
  p.fail('spec.c', 'required');
  assert.equal(p.ok, false);
  assert.deepEqual(p.list, [
    { path: 'spec.a', problem: 'must be a string, got number 5' },
    { path: 'spec.typo', problem: 'unknown field (known fields of spec: a); check the spelling' },
    { path: 'spec.c', problem: 'required' },
  ]);
  assert.throws(() => p.check(() => { throw new TypeError('bug'); }), TypeError, 'only field errors are collected');
});

test('a rejection names file, object and path in its reason', () => {
  assert.deepEqual(rejection('a.yaml', 'Pod demo/p', 'required', 'spec'), { file: 'a.yaml', object: 'Pod demo/p', path: 'spec', reason: 'a.yaml: Pod demo/p: spec: required', code: 'ERR_NM_CONFIG_INVALID' });
  assert.deepEqual(rejection('a.yaml', 'Pod demo/p', 'duplicate'), { file: 'a.yaml', object: 'Pod demo/p', reason: 'a.yaml: Pod demo/p: duplicate', code: 'ERR_NM_CONFIG_INVALID' });
  assert.equal(rejectionsOf('a.yaml', 'X y', [{ path: 'a', problem: 'p' }, { path: 'b', problem: 'q' }]).length, 2);
});
