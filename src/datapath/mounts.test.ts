import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findBpffsMount, findCgroup2Mount, findMounts, parseMounts } from './mounts';

const SAMPLE = [
  'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
  'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
  'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
  'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
  'bpf /run/my\\040bpf bpf rw,relatime 0 0',
  '',
].join('\n');

test('parseMounts reads fields and unescapes octal escapes', () => {
  const entries = parseMounts(SAMPLE);
  assert.equal(entries.length, 5);
  assert.deepEqual(entries[3], { source: 'cgroup2', mountPoint: '/sys/fs/cgroup/unified', fsType: 'cgroup2', options: ['rw', 'relatime'] });
  assert.equal(entries[4]!.mountPoint, '/run/my bpf');
});

test('cgroup2 and bpffs mounts are found by type, not assumed', () => {
  assert.equal(findCgroup2Mount(SAMPLE), '/sys/fs/cgroup/unified');
  assert.equal(findBpffsMount(SAMPLE), '/run/my bpf');
  assert.equal(findBpffsMount(`${SAMPLE}bpf /sys/fs/bpf bpf rw 0 0\n`), '/sys/fs/bpf');
  assert.deepEqual(findMounts('cgroup', SAMPLE), ['/sys/fs/cgroup/cpu']);
  assert.equal(findCgroup2Mount('proc /proc proc rw 0 0\n'), undefined);
});
