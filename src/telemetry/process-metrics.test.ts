import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { collectProcessMetrics } from './process-metrics';

test('process metrics: CPU, memory and event-loop lag are exported under the prefix', async () => {
  const registry = new Registry();
  collectProcessMetrics(registry, 'nodemesh_test_');
  const text = await registry.metrics();
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
    assert.match(text, new RegExp(`^nodemesh_test_${name} `, 'm'), `${name} is missing`);
  }
  registry.clear();
});
