import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * How often the event-loop delay monitor samples, in ms. prom-client's default of 10 ms
 * arms a libuv timer that wakes an idle agent 100 times a second: on the 2-core test VM
 * that alone cost ~6 ms of CPU per second with no traffic at all, and at 1000 req/s it
 * added one wake-up for every 20 that requests cause. Sampling every 100 ms still gives a
 * 15 s scrape 150 samples for nodejs_eventloop_lag_* percentiles.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** Node.js process metrics (CPU, memory, GC, event-loop lag) under `prefix`. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
}
