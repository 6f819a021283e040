import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcPodLocator, findPodPid } from './proc-pod-locator';
import type { PodInfo } from '../mesh/model';

const UID = '3f2b9c1e-8d4a-4f6b-9e21-0c7d5a1b2e3f';

function fakeProc(entries: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'nm-proc-'));
  for (const [pid, cgroup] of Object.entries(entries)) {
    mkdirSync(join(root, pid));
    writeFileSync(join(root, pid, 'cgroup'), cgroup);
  }
  mkdirSync(join(root, 'self'));
  return root;
}

test('finds the lowest pid of the pod with the cgroupfs and the systemd driver', () => {
  const root = fakeProc({
    '900': `0::/kubepods/besteffort/pod${UID}/ctr-app\n`,
    '850': `0::/kubepods/besteffort/pod${UID}/ctr-pause\n`,
    '100': '0::/system.slice/kubelet.service\n',
  });
  const systemd = fakeProc({ '42': `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-x.scope\n` });
  try {
    assert.equal(findPodPid(root, UID), 850);
    assert.equal(findPodPid(systemd, UID), 42);
    assert.equal(findPodPid(root, 'aaaaaaaa-0000-0000-0000-000000000000'), undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(systemd, { recursive: true, force: true });
  }
});

test('a pod without processes is a clear, retryable error', async () => {
  const root = fakeProc({});
  try {
    await assert.rejects(new ProcPodLocator(root).locate({ namespace: 'demo', name: 'x', uid: UID } as PodInfo), { code: 'ERR_NM_POD_NOT_FOUND', message: /no process of pod demo\/x .* tries again/ });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
