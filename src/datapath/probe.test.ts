import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireRoot } from '../../test/helpers/privileges';
import { findCgroup2Mount } from './mounts';
import { FS_MAGIC, isBpffs, isCgroup2, possibleCpus, probeMapType, probeProgType, statfsType } from './probe';

test('statfsType and the filesystem checks', () => {
  assert.equal(statfsType('/proc/self/ns/net'), FS_MAGIC.NSFS);
  assert.equal(isBpffs('/nonexistent/nmtest'), false);
  assert.equal(isBpffs('/proc'), false);
  const cgroup2 = findCgroup2Mount();
  if (cgroup2 !== undefined) assert.equal(isCgroup2(cgroup2), true);
  assert.throws(() => statfsType('/nonexistent/nmtest'), { code: 'ENOENT', path: '/nonexistent/nmtest' });
});

test('possibleCpus matches /sys/devices/system/cpu/possible', () => {
  let count = 0;
  for (const range of readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
    const [first, last] = range.split('-').map(Number);
    count += last === undefined ? 1 : last - first! + 1;
  }
  assert.equal(possibleCpus(), count);
});

test('probes find the program and map types nodemesh needs on this kernel', (t) => {
  if (!requireRoot(t)) return;
  for (const type of ['cgroup_sock_addr', 'sock_ops', 'cgroup_sockopt', 'sk_lookup', 'sk_msg']) {
    assert.equal(probeProgType(type), 1, `program type ${type}`);
  }
  for (const type of ['sockhash', 'sockmap', 'lru_hash', 'lpm_trie', 'hash', 'percpu_array']) {
    assert.equal(probeMapType(type), 1, `map type ${type}`);
  }
  assert.throws(() => probeProgType('not_a_prog_type'), { code: 'ERR_NM_INVALID_ARGUMENT' });
});
