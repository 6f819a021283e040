import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricSum, samples } from './prom-text';

const TEXT = [
  '# HELP istio_requests_total Requests.',
  '# TYPE istio_requests_total counter',
  'istio_requests_total{reporter="source",response_code="200",destination_workload="reviews-v1"} 180',
  'istio_requests_total{reporter="source",response_code="503",destination_workload="ratings-2"} 4',
  'istio_requests_total_other{reporter="source"} 99',
  'istio_build{component="proxy",tag="a\\"b"} 1',
  'nodemesh_pods 3',
].join('\n');

test('samples reads labels (escaped quotes too) and values of one metric only', () => {
  assert.deepEqual(samples(TEXT, 'istio_requests_total').map((s) => s.value), [180, 4]);
  assert.deepEqual(samples(TEXT, 'istio_build'), [{ labels: { component: 'proxy', tag: 'a"b' }, value: 1 }]);
  assert.deepEqual(samples(TEXT, 'nodemesh_pods'), [{ labels: {}, value: 3 }]);
});

test('metricSum adds the series that carry every wanted label', () => {
  assert.equal(metricSum(TEXT, 'istio_requests_total', { reporter: 'source' }), 184);
  assert.equal(metricSum(TEXT, 'istio_requests_total', { response_code: '503' }), 4);
  assert.equal(metricSum(TEXT, 'istio_requests_total', { response_code: '404' }), 0);
});
