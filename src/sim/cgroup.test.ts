import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireCgroup2Mount } from './cgroup';

test('the cgroup2 mount comes from the mount table, hybrid or unified', () => {
  assert.equal(requireCgroup2Mount('tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n'), '/sys/fs/cgroup/unified');
  assert.equal(requireCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n'), '/sys/fs/cgroup');
  assert.equal(requireCgroup2Mount('none /mnt/my\\040cg cgroup2 rw 0 0\n'), '/mnt/my cg');
  assert.throws(() => requireCgroup2Mount('proc /proc proc rw 0 0\n'), { code: 'ERR_NM_CGROUP2_MISSING' });
});
