import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter, TokenBucket } from './rate-limiter';

function takeAll(take: () => boolean, max = 10_000): number {
  let n = 0;
  while (n < max && take()) n++;
  return n;
}

test('token bucket: starts full, refills tokensPerFill per whole interval, up to maxTokens', () => {
  let now = 1000;
  const bucket = new TokenBucket({ maxTokens: 100, tokensPerFill: 10, fillIntervalMs: 1000 }, () => now);
  assert.equal(bucket.tokens, 100);
  assert.equal(takeAll(() => bucket.tryTake()), 100);
  assert.equal(bucket.tryTake(), false);
  now += 999;
  assert.equal(bucket.tryTake(), false, 'fills are discrete');
  now += 1;
  assert.equal(bucket.tokens, 10);
  assert.equal(takeAll(() => bucket.tryTake()), 10);
  now += 3500; // three whole intervals; the half interval carries over
  assert.equal(bucket.tokens, 30);
  now += 500;
  assert.equal(bucket.tokens, 40);
  now += 60_000;
  assert.equal(bucket.tokens, 100, 'capped at maxTokens');
  assert.equal(bucket.full, true);
  assert.equal(bucket.tryTake(5), true);
  assert.equal(bucket.tokens, 95);
  assert.equal(bucket.tryTake(96), false);
  // A clock going back does not break it.
  now -= 10_000;
  assert.equal(bucket.tokens, 95);
  now += 1000;
  assert.equal(bucket.tokens, 100);
});

test('perSourceWorkload: a noisy source exhausts only its own bucket', () => {
  let now = 0;
  const limiter = new RateLimiter({ tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 1000 }, perSourceWorkload: true }, () => now);
  assert.equal(takeAll(() => limiter.tryTake('demo/noisy')), 5);
  assert.equal(limiter.tryTake('demo/noisy'), false);
  assert.equal(takeAll(() => limiter.tryTake('demo/quiet')), 5);
  // Unknown sources share one bucket of their own.
  assert.equal(takeAll(() => limiter.tryTake(undefined)), 5);
  assert.equal(limiter.tryTake(undefined), false);
  now = 1000;
  assert.equal(limiter.tryTake('demo/noisy'), true);
});

test('shared bucket: a noisy source starves the others', () => {
  const limiter = new RateLimiter({ tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 1000 }, perSourceWorkload: false }, () => 0);
  assert.equal(takeAll(() => limiter.tryTake('demo/noisy')), 5);
  assert.equal(limiter.tryTake('demo/quiet'), false);
  assert.equal(limiter.tryTake(undefined), false);
  assert.equal(limiter.bucketCount, 0);
});

test('idle buckets are evicted once full again; a hard cap drops the least recently used', () => {
  let now = 0;
  const limiter = new RateLimiter({ tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 }, perSourceWorkload: true }, () => now, { maxBuckets: 50 });
  for (let i = 0; i < 40; i++) assert.equal(limiter.tryTake(`ns/w${i}`), true);
  takeAll(() => limiter.tryTake('ns/busy'));
  assert.equal(limiter.bucketCount, 41);
  // One interval later the idle buckets (9 tokens + 5) are full: dropped on the next sweep.
  // The busy one (0 + 5) is not: its debt is remembered.
  now = 1000;
  assert.equal(limiter.tryTake('ns/other'), true);
  assert.equal(limiter.bucketCount, 2);
  assert.equal(takeAll(() => limiter.tryTake('ns/busy')), 5);

  // Many sources at once: never more than maxBuckets; the least recently used goes first.
  for (let i = 0; i < 200; i++) limiter.tryTake(`ns/flood${i}`);
  assert.equal(limiter.bucketCount, 50);
  assert.equal(limiter.tryTake('ns/flood199'), true, 'recent buckets are kept');
});
