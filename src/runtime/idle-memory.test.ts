import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapSpaceStatistics } from 'node:v8';
import { IDLE_CPU, IdleMemoryTrimmer, INTERVAL_MS, MAX_TRIMS, PROCESS_PROBES, TARGET_BYTES, type TrimmerProbes } from './idle-memory';

/** Probes driven by the test: CPU advanced by hand, a new space that shrinks after `shrinkAfter` scavenges. */
function fake(shrinkAfter = 3) {
  const state = { cpu: 0, newSpace: 16 * 1048576, scavenges: 0, old: 4 * 1048576, collections: 0 };
  const probes: TrimmerProbes = {
    cpuMicros: () => state.cpu,
    newSpaceBytes: () => state.newSpace,
    oldSpaceBytes: () => state.old,
    collect: () => {
      state.collections += 1;
      state.old = Math.min(state.old, 40 * 1048576);
    },
    scavenge: () => {
      state.scavenges += 1;
      if (state.scavenges >= shrinkAfter) state.newSpace = 1048576;
    },
  };
  const busy = () => { state.cpu += INTERVAL_MS * 1000 * (IDLE_CPU * 5); };
  const quiet = () => { state.cpu += INTERVAL_MS * 1000 * (IDLE_CPU / 4); };
  return { state, probes, busy, quiet };
}

test('idle trimmer: scavenges only in quiet intervals, until the new space is small', () => {
  const f = fake(3);
  const t = new IdleMemoryTrimmer(undefined, f.probes);
  f.busy(); t.tick();
  assert.equal(f.state.scavenges, 0, 'a busy interval: no collection');
  for (let i = 0; i < 5; i++) { f.quiet(); t.tick(); }
  assert.equal(f.state.scavenges, 3, 'quiet: one scavenge a tick until the new space shrank');
  assert.ok(f.state.newSpace <= TARGET_BYTES);
  for (let i = 0; i < 5; i++) { f.quiet(); t.tick(); }
  assert.equal(f.state.scavenges, 3, 'small already: left alone');
});

test('idle trimmer: a grown old space gets one full collection when an idle period starts, not again until it grows', () => {
  const f = fake(1);
  const t = new IdleMemoryTrimmer(undefined, f.probes);
  f.state.old = 180 * 1048576; // a big parse's garbage
  f.busy(); t.tick();
  assert.equal(f.state.collections, 0, 'busy: never');
  f.quiet(); t.tick();
  assert.equal(f.state.collections, 1, 'the first quiet interval collects');
  assert.equal(f.state.old, 40 * 1048576);
  f.quiet(); t.tick();
  assert.equal(f.state.scavenges, 1, 'then the young generation');
  f.busy(); t.tick();
  f.quiet(); t.tick();
  assert.equal(f.state.collections, 1, 'the old space did not grow: no second collection');
  f.state.old = 60 * 1048576;
  f.busy(); t.tick();
  f.quiet(); t.tick();
  assert.equal(f.state.collections, 2, 'grown by more than OLD_GROWTH: collected again');
});

test('idle trimmer: at most MAX_TRIMS per idle period; traffic starts a new period', () => {
  const f = fake(Infinity);
  const t = new IdleMemoryTrimmer(undefined, f.probes);
  for (let i = 0; i < MAX_TRIMS + 5; i++) { f.quiet(); t.tick(); }
  assert.equal(f.state.scavenges, MAX_TRIMS, 'a new space that does not shrink costs nothing more');
  f.busy(); t.tick();
  f.quiet(); t.tick();
  assert.equal(f.state.scavenges, MAX_TRIMS + 1, 'after traffic, idle again: trimming again');
});

test('idle trimmer: this process\'s young generation shrinks once idle', async () => {
  const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
  // Grow the new space: survivors of many scavenges.
  let keep: unknown[][] = [];
  const until = Date.now() + 1500;
  while (Date.now() < until && newSpace() < 8 * 1048576) {
    const a: unknown[] = [];
    for (let i = 0; i < 1000; i++) a.push({ i, s: `x${i}` });
    keep.push(a);
    if (keep.length > 200) keep = [];
  }
  keep = [];
  const grown = newSpace();
  if (grown <= TARGET_BYTES) return; // V8 did not grow it here: nothing to observe
  const t = new IdleMemoryTrimmer(undefined, PROCESS_PROBES);
  t.start();
  try {
    const deadline = Date.now() + 30_000;
    while (newSpace() > TARGET_BYTES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(newSpace() <= TARGET_BYTES, `new space ${newSpace()} bytes (from ${grown}) after ${t.total} scavenges`);
  } finally {
    t.stop();
  }
});
