import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLoadBalancer, endpointKey, hashKeyFor, type LbEndpoint, type LoadBalancer } from './load-balancer';
import { mulberry32 } from './random';

interface Ep extends LbEndpoint {
  n: number;
}

function endpoints(count: number, from = 1): Ep[] {
  return Array.from({ length: count }, (_, i) => ({ key: endpointKey(`10.0.0.${from + i}`, 8080), n: from + i }));
}

function tally(lb: LoadBalancer<Ep>, eps: readonly Ep[], picks: number, ctx: (i: number) => { hashKey?: string } = () => ({})): Map<string, number> {
  const counts = new Map<string, number>(eps.map((e) => [e.key, 0]));
  for (let i = 0; i < picks; i++) {
    const ep = lb.pick(eps, ctx(i))!;
    assert.ok(eps.includes(ep), 'picks one of the given endpoints');
    counts.set(ep.key, counts.get(ep.key)! + 1);
  }
  return counts;
}

test('endpoint keys and hash keys', () => {
  assert.equal(endpointKey('10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(endpointKey('fd00::1', 80), '[fd00::1]:80');
  const cfg = { type: 'ConsistentHash' as const, consistentHash: { header: 'x-user' } };
  const headers: Record<string, string | string[]> = { 'x-user': 'alice', 'x-multi': ['a', 'b'] };
  assert.equal(hashKeyFor(cfg, (h) => headers[h]), 'alice');
  assert.equal(hashKeyFor({ type: 'ConsistentHash', consistentHash: { header: 'x-multi' } }, (h) => headers[h]), 'a,b');
  assert.equal(hashKeyFor({ type: 'ConsistentHash', consistentHash: { header: 'x-none' } }, (h) => headers[h]), undefined);
  assert.equal(hashKeyFor({ type: 'RoundRobin' }, (h) => headers[h]), undefined);
  assert.equal(hashKeyFor(undefined, (h) => headers[h]), undefined);
});

test('every balancer returns undefined for no endpoints and the only one for one', () => {
  for (const type of ['RoundRobin', 'Random', 'LeastRequest', 'EWMA', 'ConsistentHash'] as const) {
    const lb = createLoadBalancer<Ep>(type === 'ConsistentHash' ? { type, consistentHash: { header: 'x' } } : { type }, { random: mulberry32(1), now: () => 0 });
    assert.equal(lb.type, type);
    assert.equal(lb.pick([], { hashKey: 'k' }), undefined);
    const [only] = endpoints(1);
    assert.equal(lb.pick([only!], { hashKey: 'k' }), only);
    assert.equal(lb.pick([only!], {}), only);
  }
  assert.equal(createLoadBalancer<Ep>(undefined).type, 'RoundRobin');
});

test('RoundRobin spreads evenly and visits endpoints in turn', () => {
  const eps = endpoints(5);
  const lb = createLoadBalancer<Ep>({ type: 'RoundRobin' }, { random: mulberry32(7) });
  const counts = tally(lb, eps, 1000);
  for (const [key, count] of counts) assert.equal(count, 200, key);
  // Five consecutive picks are five different endpoints, whatever the list order.
  const shuffled = [eps[3]!, eps[0]!, eps[4]!, eps[2]!, eps[1]!];
  const seen = new Set<string>();
  for (let i = 0; i < 5; i++) seen.add(lb.pick(i % 2 ? shuffled : eps, {})!.key);
  assert.equal(seen.size, 5);
});

test('RoundRobin stays in turn when the endpoint list changes', () => {
  const eps = endpoints(5); // keys sort as 10.0.0.1 .. 10.0.0.5
  const lb = createLoadBalancer<Ep>({ type: 'RoundRobin' }, { random: () => 0 });
  assert.equal(lb.pick(eps, {})!.n, 1, 'starts at a random endpoint (here the first)');
  assert.equal(lb.pick(eps, {})!.n, 2);
  // Endpoint 3 goes away (a new list, as after a snapshot): the turn passes to 4, not 5.
  const without3 = eps.filter((e) => e.n !== 3).map((e) => ({ ...e }));
  assert.equal(lb.pick(without3, {})!.n, 4);
  // A new endpoint 6 joins: it gets its turn after 5, nobody is picked twice in a row.
  const with6 = [...without3, ...endpoints(1, 6)];
  assert.deepEqual([lb.pick(with6, {})!.n, lb.pick(with6, {})!.n, lb.pick(with6, {})!.n, lb.pick(with6, {})!.n], [5, 6, 1, 2]);
  // The last one picked disappears: the rotation continues after its key.
  const without2 = with6.filter((e) => e.n !== 2);
  assert.equal(lb.pick(without2, {})!.n, 4);
});

test('Random covers every endpoint about evenly', () => {
  const eps = endpoints(10);
  const counts = tally(createLoadBalancer<Ep>({ type: 'Random' }, { random: mulberry32(42) }), eps, 10_000);
  for (const [key, count] of counts) assert.ok(count > 800 && count < 1200, `${key}: ${count}`);
});

test('LeastRequest (power of two choices) prefers the less loaded endpoint', () => {
  const eps = endpoints(4);
  const lb = createLoadBalancer<Ep>({ type: 'LeastRequest' }, { random: mulberry32(3) });
  const busy = (ep: Ep, n: number) => {
    for (let i = 0; i < n; i++) lb.onStart(ep);
  };
  busy(eps[0]!, 10);
  busy(eps[1]!, 5);
  const counts = tally(lb, eps, 6000);
  // The most loaded one is never the less loaded of two distinct choices.
  assert.equal(counts.get(eps[0]!.key), 0);
  // 1 wins only against 0 (1/6 of the pairs, half the time it is drawn): ~1/6 of the picks.
  const c1 = counts.get(eps[1]!.key)!;
  assert.ok(c1 > 800 && c1 < 1200, `${c1}`);
  // The idle ones take the rest.
  assert.ok(counts.get(eps[2]!.key)! > 2000 && counts.get(eps[3]!.key)! > 2000);
  // With two endpoints both are always compared: always the less loaded.
  const two = [eps[0]!, eps[1]!];
  for (let i = 0; i < 100; i++) assert.equal(lb.pick(two, {}), eps[1]);
  // Requests ending rebalance: 0 drops to 2 active, below 1's 5.
  for (let i = 0; i < 8; i++) lb.onEnd(eps[0]!, 1, true);
  for (let i = 0; i < 100; i++) assert.equal(lb.pick(two, {}), eps[0]);
  // More ends than starts do not go negative.
  for (let i = 0; i < 5; i++) lb.onEnd(eps[2]!, 1, true);
  lb.onStart(eps[2]!);
  assert.equal(lb.pick([eps[2]!, eps[3]!], {}), eps[3]);
});

test('LeastRequest spreads a live load towards the faster endpoint', () => {
  // Requests arrive every 1ms; endpoint 0 takes 10ms, the others 2ms: 0 builds a queue.
  const eps = endpoints(3);
  const lb = createLoadBalancer<Ep>({ type: 'LeastRequest' }, { random: mulberry32(9) });
  const inFlight: Array<{ ep: Ep; end: number }> = [];
  const counts = new Map<string, number>(eps.map((e) => [e.key, 0]));
  for (let t = 0; t < 3000; t++) {
    for (let i = inFlight.length - 1; i >= 0; i--) {
      if (inFlight[i]!.end <= t) {
        lb.onEnd(inFlight[i]!.ep, 0, true);
        inFlight.splice(i, 1);
      }
    }
    const ep = lb.pick(eps, {})!;
    lb.onStart(ep);
    inFlight.push({ ep, end: t + (ep === eps[0] ? 10 : 2) });
    counts.set(ep.key, counts.get(ep.key)! + 1);
  }
  assert.ok(counts.get(eps[0]!.key)! < counts.get(eps[1]!.key)!, JSON.stringify([...counts]));
  assert.ok(counts.get(eps[0]!.key)! < 0.3 * 3000, JSON.stringify([...counts]));
});

test('EWMA moves traffic away from a slow endpoint and back once it is fast again', () => {
  let now = 0;
  const eps = endpoints(3);
  const lb = createLoadBalancer<Ep>({ type: 'EWMA' }, { random: mulberry32(5), now: () => now });
  let slow = true;
  const latency = (ep: Ep) => (ep === eps[0] && slow ? 500 : 10);
  const run = (requests: number): number => {
    let slowPicks = 0;
    for (let i = 0; i < requests; i++) {
      const ep = lb.pick(eps, {})!;
      lb.onStart(ep);
      now += 10; // one request every 10ms, answered before the next
      lb.onEnd(ep, latency(ep), true);
      if (ep === eps[0]) slowPicks++;
    }
    return slowPicks / requests;
  };
  const whileSlow = run(3000); // 30s
  assert.ok(whileSlow < 0.05, `slow endpoint still got ${(whileSlow * 100).toFixed(1)}%`);
  // It is probed now and then (its estimate decays), so it is not abandoned for good.
  slow = false;
  run(6000); // 60s to notice
  const afterRecovery = run(3000);
  assert.ok(afterRecovery > 0.25, `recovered endpoint got only ${(afterRecovery * 100).toFixed(1)}%`);
});

test('EWMA counts the age of requests in flight: an endpoint that stops answering is avoided', () => {
  let now = 0;
  const eps = endpoints(2);
  const lb = createLoadBalancer<Ep>({ type: 'EWMA' }, { random: mulberry32(11), now: () => now });
  for (let i = 0; i < 20; i++) {
    for (const ep of eps) {
      lb.onStart(ep);
      now += 5;
      lb.onEnd(ep, 5, true);
    }
  }
  // Endpoint 0 hangs: one request in flight, never answered. 2s later it must not look fast.
  lb.onStart(eps[0]!);
  now += 2000;
  for (let i = 0; i < 50; i++) assert.equal(lb.pick(eps, {}), eps[1]);
});

test('ConsistentHash: same key, same endpoint, on every proxy', () => {
  const eps = endpoints(10);
  const a = createLoadBalancer<Ep>({ type: 'ConsistentHash', consistentHash: { header: 'x-user' } }, { random: mulberry32(1) });
  const b = createLoadBalancer<Ep>({ type: 'ConsistentHash', consistentHash: { header: 'x-user' } }, { random: mulberry32(2) });
  const reversed = [...eps].reverse();
  for (let i = 0; i < 500; i++) {
    const key = `user-${i}`;
    const first = a.pick(eps, { hashKey: key })!;
    assert.equal(a.pick(eps, { hashKey: key }), first);
    assert.equal(b.pick(reversed, { hashKey: key })!.key, first.key, 'independent of list order and of the proxy');
  }
  // Keys spread over all endpoints, none with more than twice its share.
  const counts = tally(a, eps, 10_000, (i) => ({ hashKey: `user-${i}` }));
  for (const [key, count] of counts) assert.ok(count > 500 && count < 2000, `${key}: ${count}`);
});

test('ConsistentHash: removing one of 10 endpoints remaps only its keys (about 10%)', () => {
  const eps = endpoints(10);
  const lb = createLoadBalancer<Ep>({ type: 'ConsistentHash', consistentHash: { header: 'x-user' } }, { random: mulberry32(1) });
  const keys = Array.from({ length: 10_000 }, (_, i) => `session-${i}`);
  const before = keys.map((k) => lb.pick(eps, { hashKey: k })!.key);
  const removed = eps[4]!.key;
  const fewer = eps.filter((e) => e.key !== removed);
  const after = keys.map((k) => lb.pick(fewer, { hashKey: k })!.key);
  let moved = 0;
  keys.forEach((_, i) => {
    if (before[i] !== after[i]) {
      moved++;
      assert.equal(before[i], removed, 'only keys of the removed endpoint move');
    }
  });
  assert.ok(moved / keys.length < 0.2 && moved / keys.length > 0.03, `${((moved / keys.length) * 100).toFixed(1)}% moved`);
  // Adding it back restores the original mapping exactly.
  const again = keys.map((k) => lb.pick(eps, { hashKey: k })!.key);
  assert.deepEqual(again, before);
});

test('ConsistentHash without a hash key falls back to random', () => {
  const eps = endpoints(5);
  const lb = createLoadBalancer<Ep>({ type: 'ConsistentHash', consistentHash: { header: 'x-user' } }, { random: mulberry32(8) });
  const counts = tally(lb, eps, 1000);
  for (const [key, count] of counts) assert.ok(count > 120 && count < 280, `${key}: ${count}`);
});
