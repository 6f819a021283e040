import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { BpfMap } from './bpf-map';
import { BpfObject } from './bpf-object';
import { BpfLink, attachProgram, pinObject } from './links';
import { NetnsHandle } from './netns';
import { fdOf } from './fd';
import { setMark } from './sockopt';
import { openCgroup } from './cgroup';
import { probeMapType } from './probe';
import type { AttachType } from './native-binding';

// These argument errors are raised in TypeScript, before any native call.
const invalid = (pattern: RegExp) => (err: unknown) => {
  assert.equal((err as { code?: string }).code, 'ERR_NM_INVALID_ARGUMENT');
  assert.match((err as Error).message, pattern);
  return true;
};

test('wrappers reject bad arguments with ERR_NM_INVALID_ARGUMENT saying what to fix', () => {
  assert.throws(() => new BpfMap(-1), invalid(/fd must be a file descriptor/));
  assert.throws(() => new BpfMap(1.5), invalid(/fd must be a file descriptor/));
  assert.throws(() => BpfObject.open('relative.o', '/sys/fs/bpf'), invalid(/path must be an absolute path/));
  assert.throws(() => BpfObject.open('/x.o', ''), invalid(/pinRoot must be a non-empty string/));
  assert.throws(() => BpfLink.create(3, 4, 'xdp' as AttachType), invalid(/attachType must be one of .*cgroup_inet4_connect/));
  assert.throws(() => attachProgram(3, -4, 'sk_msg_verdict'), invalid(/targetFd/));
  assert.throws(() => pinObject(3, 'pins/x'), invalid(/absolute path/));
  assert.throws(() => NetnsHandle.open('run/netns/x'), invalid(/absolute path/));
  assert.throws(() => NetnsHandle.open('/run/\0x'), invalid(/NUL/));
  assert.throws(() => setMark(3, -1), invalid(/mark must be an integer from 0 to 4294967295/));
  assert.throws(() => setMark(3, 2 ** 32), invalid(/mark/));
  assert.throws(() => openCgroup('sys/fs/cgroup'), invalid(/absolute path/));
  assert.throws(() => probeMapType(''), invalid(/mapType/));
});

test('fdOf explains a socket without a descriptor', () => {
  const socket = new net.Socket();
  assert.throws(() => fdOf(socket), invalid(/not connected or listening yet, or it was closed/));
  assert.throws(() => fdOf({} as net.Socket), invalid(/no file descriptor/));
  assert.throws(() => fdOf('3' as unknown as number), invalid(/file descriptor, a net.Socket or a net.Server/));
  assert.equal(fdOf(7), 7);
  socket.destroy();
});
