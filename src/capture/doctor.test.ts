import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findCgroup2Mount } from '../datapath/mounts';
import type { NativeBinding } from '../datapath/native-binding';
import { BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, isBelow, ownCgroup2Path, runDoctor } from './doctor';

/** A binding whose probes answer as a given kernel would. */
function fakeKernel(opts: { missingProg?: string; cgroupType?: number } = {}): NativeBinding {
  return {
    probeProgType: (t: string) => (t === opts.missingProg ? 0 : 1),
    probeMapType: () => 1,
    statfsType: (p: string) => (p.includes('bpf') ? BPF_FS_MAGIC : opts.cgroupType ?? CGROUP2_SUPER_MAGIC),
  } as unknown as NativeBinding;
}

const paths = { cgroupPath: '/sys/fs/cgroup', bpffsRoot: '/sys/fs/bpf' };

test('every probe passing picks eBPF', async () => {
  const r = await runDoctor(fakeKernel(), paths);
  assert.equal(r.choice, 'ebpf');
});

test('a missing program type falls back to iptables, naming the probe', async () => {
  const r = await runDoctor(fakeKernel({ missingProg: 'sk_lookup' }), paths);
  assert.equal(r.choice, 'iptables');
  assert.match(r.reason, /falling back to iptables because program type sk_lookup \(5\.9\+\): the kernel does not support BPF_PROG_TYPE_SK_LOOKUP/);
});

test('a capture cgroup that is not cgroup v2 falls back, and an explicit eBPF request refuses', async () => {
  const auto = await runDoctor(fakeKernel({ cgroupType: 0x27e0eb }), paths);
  assert.equal(auto.choice, 'iptables');
  assert.match(auto.reason, /is not on cgroup v2 \(filesystem type 0x27e0eb\)/);
  const forced = await runDoctor(fakeKernel({ cgroupType: 0x27e0eb }), paths, 'ebpf');
  assert.equal(forced.choice, 'none');
  assert.match(forced.reason, /^eBPF requested but/);
});

test('no addon at all still allows iptables', async () => {
  const r = await runDoctor(undefined, paths);
  assert.equal(r.choice, 'iptables');
  assert.match(r.reason, /native addon/);
});

test('cgroup paths are read from /proc', () => {
  assert.equal(findCgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n'), '/sys/fs/cgroup/unified');
  assert.equal(ownCgroup2Path('/sys/fs/cgroup/unified', '4:memory:/x\n0::/nodemesh-sim/s/node1/agent\n'), '/sys/fs/cgroup/unified/nodemesh-sim/s/node1/agent');
  assert.ok(isBelow('/a/b/c', '/a/b'));
  assert.ok(isBelow('/a/b', '/a/b'));
  assert.ok(!isBelow('/a/bc', '/a/b'));
});
