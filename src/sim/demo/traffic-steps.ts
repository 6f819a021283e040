import { statSync, openSync, readSync, closeSync } from 'node:fs';
import { adminGet } from '../../admin/admin-client';
import { samples } from '../../util/prom-text';
import type { BackendStats } from '../apps/shop-app';
import { waitFor } from '../harness';
import { get, load, share, type DemoContext } from './context';
import type { CanaryFigures, ResilienceFigures } from './result';

/** Steps (a) and (b): what the routes and the TrafficPolicy do to real calls. */

export const FRONTEND_URL = 'http://frontend.shop.svc.cluster.local/';
const CANARY_REQUESTS = 400;
const FAILING_REQUESTS = 200;
/** ratings-2 fails four requests of every five: enough in a row for outlier detection (3). */
const FAIL_SHARE = 0.8;
const RATINGS = { 'ratings-1': '10.244.2.21', 'ratings-2': '10.244.2.22' } as const;

/**
 * (a) The 90/10 canary. 400 calls: the share of reviews-v2 then lies within ±5 points of
 * 10% with odds better than 999 in 1000 (the binomial's standard deviation is 1.5 points).
 */
export async function canaryStep(ctx: DemoContext): Promise<CanaryFigures> {
  ctx.out.heading('(a) Canary: HTTPRoute reviews-canary sends 90% of the calls to reviews-v1, 10% to reviews-v2');
  ctx.out.line(`loadgen calls the frontend ${CANARY_REQUESTS} times; the frontend calls http://reviews/ and http://ratings/ each time`);
  const r = await load(ctx, 'shop/loadgen', FRONTEND_URL, CANARY_REQUESTS);
  const versions = r.versions.reviews ?? {};
  const answered = Object.values(versions).reduce((a, b) => a + b, 0);
  const v2 = versions.v2 ?? 0;
  const failed = CANARY_REQUESTS - (r.statuses['200'] ?? 0);
  ctx.out.line(`reviews answered: v1 ${share(versions.v1 ?? 0, answered)}, v2 ${share(v2, answered)}  (${r.ms} ms; frontend statuses ${JSON.stringify(r.statuses)})`);
  return { requests: CANARY_REQUESTS, versions, v2Percent: answered > 0 ? (100 * v2) / answered : 0, failed };
}

async function ratingsStats(ctx: DemoContext): Promise<BackendStats[]> {
  // Asked from `outside` by pod address: not through the mesh's routes (PERMISSIVE lets it in).
  return Promise.all(Object.values(RATINGS).map(async (ip) => {
    const r = await get(ctx, 'shop/outside', `http://${ip}:8080/stats`);
    if (r.status !== 200 || !r.body) throw new Error(`ratings at ${ip} gave no stats: ${JSON.stringify(r)}`);
    return JSON.parse(r.body) as BackendStats;
  }));
}

async function setFailShare(ctx: DemoContext, shareOfRequests: number): Promise<void> {
  const r = await get(ctx, 'shop/outside', `http://${RATINGS['ratings-2']}:8080/fail?share=${shareOfRequests}`, 'POST');
  if (r.status !== 200) throw new Error(`ratings-2 did not take share=${shareOfRequests}: ${JSON.stringify(r)}`);
}

/** Access-log lines (JSON, component "access") written after byte `from`. */
function accessLinesSince(file: string, from: number): Array<Record<string, unknown>> {
  let size = 0;
  try { size = statSync(file).size; } catch { return []; }
  if (size <= from) return [];
  const buf = Buffer.alloc(size - from);
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, from); } finally { closeSync(fd); }
  const out: Array<Record<string, unknown>> = [];
  for (const line of buf.toString('utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.component === 'access') out.push(o);
    } catch { /* a line still being written */ }
  }
  return out;
}

const logSize = (file: string): number => { try { return statSync(file).size; } catch { return 0; } };

/** (b) A failing backend: the route's retries and the TrafficPolicy's outlier detection. */
export async function resilienceStep(ctx: DemoContext): Promise<ResilienceFigures> {
  ctx.out.heading('(b) A failing backend: ratings-2 answers 503 to 80% of its requests; retries and outlier ejection');
  ctx.out.line('HTTPRoute ratings-retry: up to 2 retries on 503; TrafficPolicy ratings: 3 consecutive 5xx eject an endpoint for 30 s');
  const before = await ratingsStats(ctx);
  await setFailShare(ctx, FAIL_SHARE);
  const mark = logSize(ctx.accessLog1);
  const r = await load(ctx, 'shop/loadgen', FRONTEND_URL, FAILING_REQUESTS);
  const after = await ratingsStats(ctx);
  await setFailShare(ctx, 0);
  const attempts = after.reduce((n, s, i) => n + s.served - before[i]!.served, 0);
  const failures = after.reduce((n, s, i) => n + s.failed - before[i]!.failed, 0);
  // The access log is written when each call ends: wait until every call to ratings is in it.
  const ratingsCalls = Object.values(r.backendStatuses.ratings ?? {}).reduce((a, b) => a + b, 0);
  const lines = await waitFor('node1\'s access log to hold the calls to ratings', () => {
    const got = accessLinesSince(ctx.accessLog1, mark).filter((l) => l.reporter === 'source' && typeof l.destination_service === 'string' && l.destination_service.startsWith('ratings.'));
    return got.length >= ratingsCalls ? got : undefined;
  }, 10_000);
  const retries = lines.reduce((n, l) => n + Math.max(0, Number(l.attempts ?? 1) - 1), 0);
  const config = await adminGet<{ policies: Array<{ service: string; ejections: Array<{ key: string }> }> }>(ctx.node1.socket, '/debug/config');
  const ejected = config.policies.find((p) => p.service === 'shop/ratings')?.ejections.map((e) => e.key) ?? [];
  const statuses = r.backendStatuses.ratings ?? {};
  const failedForUser = Object.entries(statuses).filter(([k]) => k !== '200').reduce((n, [, v]) => n + v, 0);
  ctx.out.line(`${FAILING_REQUESTS} calls: ratings answered the frontend ${statuses['200'] ?? 0} times 200, ${failedForUser} times not (${JSON.stringify(statuses)})`);
  ctx.out.line(`the backends answered ${attempts} attempts, ${failures} of them 503 from ratings-2`);
  ctx.out.line(`retries by node1's proxy: ${retries} (access log, attempts - 1 over ${lines.length} calls)`);
  ctx.out.line(`ejected by outlier detection: ${ejected.length ? ejected.join(', ') : 'none'} (ratings-2 is ${RATINGS['ratings-2']}), out of load balancing for 30 s`);
  ctx.out.line(`without the mesh: with half the calls on ratings-2, about ${Math.round(FAILING_REQUESTS * 0.5 * FAIL_SHARE)} of the ${FAILING_REQUESTS} would have failed. ratings-2 is mended now.`);
  return { requests: FAILING_REQUESTS, failShare: FAIL_SHARE, ratingsStatuses: statuses, backendAttempts: attempts, backendFailures: failures, retries, loggedCalls: lines.length, ejected };
}

/** Sums of a metric by the given labels, largest first. */
export function seriesOf(text: string, name: string, keep: (labels: Record<string, string>) => boolean): Array<{ name: string; labels: Record<string, string>; value: number }> {
  return samples(text, name).filter((s) => keep(s.labels) && s.value > 0).map((s) => ({ name, ...s })).sort((a, b) => b.value - a.value);
}
