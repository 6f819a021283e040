import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodemeshError } from '../errors';
import { formatGatewayDuration, parseGatewayDuration } from './duration';

test('Gateway API durations parse to milliseconds', () => {
  assert.equal(parseGatewayDuration('1h'), 3_600_000);
  assert.equal(parseGatewayDuration('1m30s'), 90_000);
  assert.equal(parseGatewayDuration('500ms'), 500);
  assert.equal(parseGatewayDuration('0s'), 0);
  assert.equal(parseGatewayDuration('1h2m3s4ms'), 3_723_004);
  assert.equal(parseGatewayDuration('99999ms'), 99_999);
  assert.equal(parseGatewayDuration('1s500ms'), 1500);
});

test('bad durations throw ERR_NM_CONFIG_INVALID naming the value', () => {
  for (const bad of ['1d', '', '5', '1.5s', '-1s', '1h2m3s4ms5s', '100000s', ' 1s', '1S', '1sec', 'ms']) {
    assert.throws(
      () => parseGatewayDuration(bad),
      (err: unknown) => {
        assert.ok(err instanceof NodemeshError);
        assert.equal(err.code, 'ERR_NM_CONFIG_INVALID');
        assert.ok(err.message.includes(`"${bad}" is not a Gateway API duration`), err.message);
        assert.match(err.message, /h, m, s or ms/);
        return true;
      },
      bad,
    );
  }
});

test('formatGatewayDuration writes the shortest spelling', () => {
  assert.equal(formatGatewayDuration(0), '0s');
  assert.equal(formatGatewayDuration(90_000), '1m30s');
  assert.equal(formatGatewayDuration(3_723_004), '1h2m3s4ms');
  assert.equal(parseGatewayDuration(formatGatewayDuration(123_456)), 123_456);
});
