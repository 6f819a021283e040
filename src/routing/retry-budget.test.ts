import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from './retry-budget';

function drain(budget: RetryBudget, now: number, limit = 10_000): number {
  let n = 0;
  while (n < limit && budget.tryRetry(now)) n++;
  return n;
}

test('100 requests at 20% allow 20 retries plus the minimum, then it refuses', () => {
  // minimum: 1 retry/s over a 10 s window = 10
  const budget = new RetryBudget({ budgetPercent: 20, minRetriesPerSecond: 1, windowMs: 10_000 });
  for (let i = 0; i < 100; i++) budget.recordRequest(1_000 + i * 10);
  assert.equal(drain(budget, 2_000), 30);
  assert.equal(budget.tryRetry(2_000), false);
  assert.equal(budget.tryRetry(5_000), false, 'still refused inside the window');
  assert.deepEqual(budget.stats(5_000), { requests: 100, retries: 30, allowed: 30 });
});

test('with no minimum only the percentage counts; more requests earn more retries', () => {
  const budget = new RetryBudget({ budgetPercent: 20, minRetriesPerSecond: 0 });
  assert.equal(budget.tryRetry(0), false, 'no requests, no retries');
  for (let i = 0; i < 100; i++) budget.recordRequest(0);
  assert.equal(drain(budget, 0), 20);
  for (let i = 0; i < 10; i++) budget.recordRequest(100);
  assert.equal(drain(budget, 100), 2, '10 more requests earn 2 more retries');
});

test('the defaults: 20%, 10 retries/s, 10 s window', () => {
  const budget = new RetryBudget();
  for (let i = 0; i < 100; i++) budget.recordRequest(0);
  assert.equal(drain(budget, 0), 100 + 20);
  assert.equal(budget.tryRetry(0), false);
});

test('the budget refills as the window moves', () => {
  const budget = new RetryBudget({ budgetPercent: 20, minRetriesPerSecond: 0, windowMs: 10_000 });
  for (let i = 0; i < 100; i++) budget.recordRequest(0);
  assert.equal(drain(budget, 0), 20);
  // New traffic at t=5s: its retries would still count the old retries against it.
  for (let i = 0; i < 50; i++) budget.recordRequest(5_000);
  assert.equal(drain(budget, 5_000), 10, '150 requests allow 30, 20 already used');
  // At t=10s the t=0 requests and retries have left the window; the t=5s ones remain.
  assert.deepEqual(budget.stats(10_000), { requests: 50, retries: 10, allowed: 10 });
  assert.equal(budget.tryRetry(10_000), false);
  for (let i = 0; i < 50; i++) budget.recordRequest(10_000);
  assert.equal(drain(budget, 10_000), 10);
  // Everything has expired by t=20s: nothing recorded, nothing allowed, then fresh again.
  assert.deepEqual(budget.stats(20_000), { requests: 0, retries: 0, allowed: 0 });
  for (let i = 0; i < 10; i++) budget.recordRequest(20_000);
  assert.equal(drain(budget, 20_000), 2);
});

test('the minimum alone lets a quiet service retry', () => {
  const budget = new RetryBudget({ budgetPercent: 20, minRetriesPerSecond: 0.5, windowMs: 4_000 });
  assert.equal(drain(budget, 0), 2);
  assert.equal(drain(budget, 4_000), 2, 'refilled one window later');
});

test('bad options throw', () => {
  assert.throws(() => new RetryBudget({ budgetPercent: -1 }), RangeError);
  assert.throws(() => new RetryBudget({ windowMs: 0 }), RangeError);
  assert.throws(() => new RetryBudget({ minRetriesPerSecond: Number.NaN }), RangeError);
});
