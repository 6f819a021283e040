import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { isCI, requireRoot } from '../../test/helpers/privileges';
import { BpfMap, MapType, readU32, readU64, socketValue, u32, u64 } from './bpf-map';
import { BpfObject } from './bpf-object';
import { cgroupId, openCgroup } from './cgroup';
import { BpfLink, attachProgram, detachProgram, openPinned, pinObject, programInfo, unpin } from './links';
import { native } from './native';
import { NetnsHandle } from './netns';
import { closeFd, socketCookie } from './sockopt';
import { cleanupStack, compileBpfFixture, createTestCgroup, createTestNetns, ensureBpffs, hasClang, uniqueName } from './testkit';

/** Runs `node -e` inside `cgroupDir` (the shell moves itself there, then execs node),
 * connecting to 127.0.0.1:port in the root namespace; a refusal is fine: the connect4
 * hook runs either way. */
async function connectFromCgroup(cgroupDir: string, port: number): Promise<void> {
  const script = `const s = require('net').connect(${port}, '127.0.0.1'); s.on('error', () => process.exit(0)); s.on('connect', () => { s.destroy(); process.exit(0); });`;
  const child = spawn('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec "$2" -e "$3"', 'sh', cgroupDir, process.execPath, script], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, 'the child in the test cgroup connected and exited cleanly');
}

test('BPF objects, maps, pins and links through the addon', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  if (!(await hasClang())) {
    if (isCI) throw new Error('clang is required to compile the BPF test fixtures (scripts/setup.sh installs it)');
    return t.skip('clang is not installed: cannot compile native/test/*.bpf.c (run scripts/setup.sh)');
  }

  // ---- setup, each piece undone in t.after (run in reverse order, even on failure) ----
  const work = mkdtempSync(path.join(tmpdir(), 'nmtest-addon-bpf-'));
  defer(() => rmSync(work, { recursive: true, force: true }));
  const fixture = await compileBpfFixture('fixture', work);
  const reject = await compileBpfFixture('reject', work);

  const bpffs = await ensureBpffs();
  const pinRoot = path.join(bpffs, uniqueName());
  mkdirSync(pinRoot);
  defer(() => rmSync(pinRoot, { recursive: true, force: true }));

  const cgroup = createTestCgroup();
  defer(() => cgroup.remove());

  const fds: number[] = [];
  const track = (fd: number): number => {
    fds.push(fd);
    return fd;
  };
  defer(() => {
    for (const fd of fds.splice(0)) {
      try {
        closeFd(fd);
      } catch {
        /* closed by its owner already */
      }
    }
  });

  const obj = BpfObject.open(fixture, pinRoot);
  defer(() => obj.close());
  const hitPort = 40000 + Math.floor(Math.random() * 20000);

  await t.test('objectOpen: missing file is ENOENT with its path; the pin root must be on bpffs', () => {
    const missing = path.join(work, 'missing.bpf.o');
    assert.throws(() => BpfObject.open(missing, pinRoot), { code: 'ENOENT', syscall: 'bpf_object__open_file', path: missing });
    assert.throws(() => BpfObject.open(fixture, work), { code: 'ERR_NM_NOT_BPFFS', path: work });
  });

  await t.test('setGlobal: checks the name and size against BTF, before load only', () => {
    assert.throws(() => obj.setGlobal('nm_test_port', Buffer.alloc(2)), (err: unknown) => {
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_NM_GLOBAL_SIZE');
      assert.match((err as Error).message, /nm_test_port.* is 4 bytes, but the value has 2/);
      return true;
    });
    assert.throws(() => obj.setGlobal('nm_no_such_global', Buffer.alloc(4)), (err: unknown) => {
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_NM_GLOBAL_NOT_FOUND');
      assert.match((err as Error).message, /nm_test_port \(\.rodata, 4 bytes\)/);
      return true;
    });
    obj.setGlobalU32('nm_test_port', hitPort);
    assert.throws(() => obj.programFd('nm_test_connect4'), { code: 'ERR_NM_NOT_LOADED' });
  });

  await t.test('load: pins LIBBPF_PIN_BY_NAME maps under the pin root; the global took effect', () => {
    obj.load();
    assert.equal(obj.loaded, true);
    assert.ok(existsSync(path.join(pinRoot, 'nm_test_hash')), 'nm_test_hash is pinned by name');
    assert.ok(!existsSync(path.join(pinRoot, 'nm_test_percpu')), 'unpinned maps stay unpinned');
    assert.throws(() => obj.setGlobalU32('nm_test_port', 1), { code: 'ERR_NM_ALREADY_LOADED' });
    const rodata = obj.map('.rodata');
    try {
      assert.equal(readU32(rodata.lookup(u32(0))!, 0), hitPort);
    } finally {
      rodata.close();
    }
    assert.throws(() => obj.programFd('nm_nope'), (err: unknown) => {
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_NM_PROGRAM_NOT_FOUND');
      assert.match((err as Error).message, /nm_test_connect4/);
      return true;
    });
    assert.throws(() => obj.mapFd('nm_nope'), { code: 'ERR_NM_MAP_NOT_FOUND' });
  });

  await t.test('map basics: info, update flags, lookup, delete, key iteration', (st) => {
    const defer = cleanupStack(st);
    const map = obj.map('nm_test_hash');
    defer(() => map.close());
    assert.equal(map.info.name, 'nm_test_hash');
    assert.equal(map.info.type, MapType.HASH);
    assert.equal(map.info.keySize, 4);
    assert.equal(map.info.valueSize, 8);
    assert.equal(map.info.maxEntries, 64);

    assert.equal(map.lookup(u32(1)), null);
    map.update(u32(1), u64(100n));
    map.update(u32(2), u64(200n), 'noexist');
    map.update(u32(3), u64(300n));
    assert.equal(readU64(map.lookup(u32(2))!), 200n);
    assert.throws(() => map.update(u32(2), u64(1n), 'noexist'), { code: 'EEXIST', syscall: 'bpf_map_update_elem' });
    assert.throws(() => map.update(u32(9), u64(1n), 'exist'), { code: 'ENOENT' });
    map.update(u32(2), u64(222n), 'exist');
    assert.equal(readU64(map.lookup(u32(2))!), 222n);

    assert.deepEqual([...map.keys()].map((k) => readU32(k)).sort(), [1, 2, 3]);
    assert.deepEqual(
      [...map.entries()].map(([k, v]) => [readU32(k), readU64(v)]).sort((a, b) => Number(a[0]) - Number(b[0])),
      [[1, 100n], [2, 222n], [3, 300n]],
    );
    assert.equal(map.delete(u32(3)), true);
    assert.equal(map.delete(u32(3)), false);
    assert.equal(map.lookup(u32(3)), null);

    const first = map.nextKey(null);
    assert.ok(first !== null);
    const second = map.nextKey(first);
    assert.ok(second !== null);
    assert.equal(map.nextKey(second), null);

    assert.throws(() => map.lookup(Buffer.alloc(8)), { code: 'ERR_NM_INVALID_ARGUMENT' });
    assert.throws(() => map.update(u32(1), Buffer.alloc(4)), { code: 'ERR_NM_INVALID_ARGUMENT' });
    assert.throws(() => native.mapUpdate(map.fd, u32(1), Buffer.alloc(3), 0), { code: 'ERR_NM_INVALID_ARGUMENT' });
  });

  await t.test('pins: bpf_obj_get round trip, and a second object reuses the pinned map', (st) => {
    const defer = cleanupStack(st);
    const pinned = BpfMap.openPinned(path.join(pinRoot, 'nm_test_hash'));
    defer(() => pinned.close());
    const own = obj.map('nm_test_hash');
    defer(() => own.close());
    assert.equal(pinned.info.id, own.info.id);
    assert.equal(readU64(pinned.lookup(u32(1))!), 100n);

    const percpuFd = track(obj.mapFd('nm_test_percpu'));
    const percpuPin = path.join(pinRoot, 'extra_percpu');
    pinObject(percpuFd, percpuPin);
    const again = track(openPinned(percpuPin));
    assert.equal(native.mapInfo(again).id, native.mapInfo(percpuFd).id);
    assert.equal(unpin(percpuPin), true);
    assert.equal(unpin(percpuPin), false);
    assert.throws(() => openPinned(percpuPin), { code: 'ENOENT', syscall: 'bpf_obj_get', path: percpuPin });

    const second = BpfObject.open(fixture, pinRoot);
    try {
      second.load();
      const reused = second.map('nm_test_hash');
      try {
        assert.equal(reused.info.id, own.info.id, 'LIBBPF_PIN_BY_NAME reuses the pinned map');
        assert.equal(readU64(reused.lookup(u32(2))!), 222n);
      } finally {
        reused.close();
      }
    } finally {
      second.close();
    }
  });

  await t.test('per-CPU maps: one value is copied to every CPU; sums add the CPUs up', (st) => {
    const defer = cleanupStack(st);
    const map = obj.map('nm_test_percpu');
    defer(() => map.close());
    assert.equal(map.isPerCpu, true);
    assert.equal(map.cpus, native.possibleCpus());
    map.update(u32(1), u64(5n));
    assert.deepEqual(map.sumPerCpuU64(u32(1)), [5n * BigInt(map.cpus)]);
    const all = Buffer.alloc(8 * map.cpus);
    for (let cpu = 0; cpu < map.cpus; cpu++) all.writeBigUInt64LE(BigInt(cpu + 1), cpu * 8);
    map.update(u32(1), all);
    const perCpu = map.lookupPerCpu(u32(1))!;
    assert.equal(perCpu.length, map.cpus);
    assert.deepEqual(perCpu.map((v) => readU64(v)), Array.from({ length: map.cpus }, (_v, i) => BigInt(i + 1)));
    assert.deepEqual(map.sumPerCpuU64(u32(1)), [BigInt((map.cpus * (map.cpus + 1)) / 2)]);
    assert.throws(() => map.update(u32(1), Buffer.alloc(4)), { code: 'ERR_NM_INVALID_ARGUMENT' });
  });

  await t.test('cgroup link: connect4 runs for a process in the cgroup until detached', async (st) => {
    const defer = cleanupStack(st);
    const progFd = track(obj.programFd('nm_test_connect4'));
    const info = programInfo(progFd);
    assert.ok('nm_test_connect4'.startsWith(info.name) && info.name.length >= 8, `program name ${info.name}`);
    assert.throws(() => new BpfMap(progFd), { code: 'ERR_NM_WRONG_FD_TYPE' });

    const cgFd = track(openCgroup(cgroup.path));
    const link = BpfLink.create(progFd, cgFd, 'cgroup_inet4_connect');
    defer(() => link.close());
    const linkInfo = link.info();
    assert.equal(linkInfo.attachType, 'cgroup_inet4_connect');
    assert.equal(linkInfo.progId, info.id);
    assert.equal(BigInt(linkInfo.targetId), cgroupId(cgroup.path));
    assert.equal(cgroupId(cgroup.path), BigInt(statSync(cgroup.path, { bigint: true }).ino));

    const counters = obj.map('nm_test_percpu');
    defer(() => counters.close());
    const bss = obj.map('.bss');
    defer(() => bss.close());
    const hits = (): bigint => readU64(bss.lookup(u32(0))!);
    const connects = (): bigint => counters.sumPerCpuU64(u32(0))![0]!;
    const connectsBefore = connects();
    const hitsBefore = hits();

    await connectFromCgroup(cgroup.path, hitPort);
    assert.ok(connects() > connectsBefore, 'the program counted the connect');
    assert.equal(hits(), hitsBefore + 1n, 'it matched the port set through setGlobal');

    const linkPin = path.join(pinRoot, 'connect4_link');
    link.pin(linkPin);
    const pinnedLink = BpfLink.openPinned(linkPin);
    try {
      assert.equal(pinnedLink.info().id, linkInfo.id);
    } finally {
      pinnedLink.close();
    }
    assert.throws(() => BpfLink.openPinned(path.join(pinRoot, 'nm_test_hash')), { code: 'ERR_NM_WRONG_FD_TYPE' });

    link.detach(); // detaches although the link is still pinned
    await connectFromCgroup(cgroup.path, hitPort);
    assert.equal(hits(), hitsBefore + 1n, 'no longer runs after linkDetach');
    unpin(linkPin);
  });

  await t.test('sk_lookup link on a network namespace reports the netns inode', async (st) => {
    const defer = cleanupStack(st);
    const ns = await createTestNetns();
    defer(() => ns.remove());
    const handle = NetnsHandle.open(ns.path);
    defer(() => handle.close());
    const progFd = track(obj.programFd('nm_test_lookup'));
    const link = BpfLink.create(progFd, handle.fd, 'sk_lookup');
    try {
      const info = link.info();
      assert.equal(info.attachType, 'sk_lookup');
      assert.equal(info.targetId, statSync(ns.path).ino);
    } finally {
      link.close();
    }
  });

  await t.test('sockhash: socket fds go in, cookies come out; sk_msg verdict attach and detach', async (st) => {
    const defer = cleanupStack(st);
    const ns = await createTestNetns();
    defer(() => ns.remove());
    const handle = NetnsHandle.open(ns.path);
    defer(() => handle.close());
    const socks = obj.map('nm_test_socks');
    defer(() => socks.close());
    assert.equal(socks.holdsSockets, true);
    const msgFd = track(obj.programFd('nm_test_msg'));
    attachProgram(msgFd, socks.fd, 'sk_msg_verdict');
    defer(() => detachProgram(msgFd, socks.fd, 'sk_msg_verdict'));

    const server = handle.listen({ host: '127.0.0.1', port: 0 });
    defer(() => server.close());
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = handle.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    await once(client, 'connect');
    const [serverSide] = await accepted;
    defer(() => { client.destroy(); serverSide.destroy(); });

    socks.update(u32(1), socketValue((client as unknown as { _handle: { fd: number } })._handle.fd));
    assert.equal(readU64(socks.lookup(u32(1))!), socketCookie(client));
    assert.throws(() => socks.update(u32(2), Buffer.alloc(2)), { code: 'ERR_NM_INVALID_ARGUMENT' });

    // Data still flows through the SK_PASS verdict.
    const got = once(serverSide, 'data') as Promise<[Buffer]>;
    client.write('through sk_msg');
    assert.equal((await got)[0].toString(), 'through sk_msg');
    assert.equal(socks.delete(u32(1)), true);
  });

  await t.test('a verifier rejection carries the verifier log in the error', () => {
    const bad = BpfObject.open(reject, pinRoot);
    try {
      assert.throws(() => bad.load(), (err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        assert.equal(e.syscall, 'bpf_object__load');
        assert.equal(e.path, reject);
        assert.ok(typeof e.errno === 'number' && e.errno > 0);
        assert.match(e.code!, /^E[A-Z]+$/);
        assert.match(e.message, /invalid mem access|map_value_or_null/, e.message);
        assert.ok(e.message.split('\n').length <= 42, 'only the log tail');
        return true;
      });
      assert.throws(() => bad.load(), { code: 'ERR_NM_ALREADY_LOADED' });
    } finally {
      bad.close();
    }
  });

  await t.test('close: handles and fds are released; a closed object refuses calls', () => {
    const other = BpfObject.open(fixture, pinRoot);
    other.close();
    other.close();
    assert.throws(() => other.load(), { code: 'ERR_NM_CLOSED' });
    assert.throws(() => native.objectLoad(123456), { code: 'ERR_NM_BAD_HANDLE' });
  });
});
