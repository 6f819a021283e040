import { native } from './native';
import type { MapInfo } from './native-binding';
import { NodemeshError } from '../errors';
import { assertAbsolutePath, assertBuffer, assertFd, assertOneOf, invalidArgument } from './validate';

/** enum bpf_map_type values the wrappers treat specially. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  SOCKMAP: 15,
  SOCKHASH: 18,
  PERCPU_CGROUP_STORAGE: 21,
  REUSEPORT_SOCKARRAY: 20,
} as const;

const PER_CPU_TYPES: readonly number[] = [MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE];
const SOCKET_TYPES: readonly number[] = [MapType.SOCKMAP, MapType.SOCKHASH, MapType.REUSEPORT_SOCKARRAY];

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/**
 * A BPF map by fd. The BpfMap owns the fd it is given and closes it in close(). Keys and
 * values are Buffers in the map's own layout (see bpf-layout.ts for nodemesh's structs).
 */
export class BpfMap {
  private fdValue: number | undefined;
  readonly info: MapInfo;
  readonly isPerCpu: boolean;
  readonly holdsSockets: boolean;
  /** Number of CPU slots in a per-CPU value (1 for other maps). */
  readonly cpus: number;
  /** Bytes of one CPU's slot in a per-CPU value: valueSize rounded up to 8. */
  readonly slotSize: number;

  /** Takes ownership of `fd`; throws ERR_NM_WRONG_FD_TYPE when it is not a map. */
  constructor(fd: number) {
    assertFd('fd', fd);
    this.info = native.mapInfo(fd);
    this.fdValue = fd;
    this.isPerCpu = PER_CPU_TYPES.includes(this.info.type);
    this.holdsSockets = SOCKET_TYPES.includes(this.info.type);
    this.cpus = this.isPerCpu ? native.possibleCpus() : 1;
    this.slotSize = this.isPerCpu ? Math.ceil(this.info.valueSize / 8) * 8 : this.info.valueSize;
  }

  /** Opens a map pinned in bpffs. */
  static openPinned(path: string): BpfMap {
    assertAbsolutePath('path', path);
    const fd = native.objGet(path);
    try {
      return new BpfMap(fd);
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  get fd(): number {
    if (this.fdValue === undefined) {
      throw new NodemeshError('ERR_NM_CLOSED', `BPF map '${this.info.name}' (id ${this.info.id}) is closed`);
    }
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue === undefined;
  }

  private checkKey(key: unknown): asserts key is Buffer {
    assertBuffer('key', key);
    if (key.length !== this.info.keySize) {
      throw invalidArgument(`key must be ${this.info.keySize} bytes for map '${this.info.name}', got ${key.length}`);
    }
  }

  /** The value (every CPU's slot concatenated for per-CPU maps), or null when absent. */
  lookup(key: Buffer): Buffer | null {
    this.checkKey(key);
    return native.mapLookup(this.fd, key);
  }

  /**
   * Inserts or replaces. Per-CPU maps take either one value (copied to every CPU) or
   * every CPU's slot concatenated; socket maps take a socket fd as a 4- or 8-byte Buffer
   * (see socketValue).
   */
  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.checkKey(key);
    assertBuffer('value', value);
    assertOneOf('flag', flag, Object.keys(UPDATE_FLAGS) as UpdateFlag[]);
    const { valueSize, name } = this.info;
    if (this.holdsSockets) {
      if (value.length !== 4 && value.length !== 8) {
        throw invalidArgument(`value for socket map '${name}' must be a socket fd in a 4- or 8-byte Buffer, got ${value.length} bytes`);
      }
    } else if (this.isPerCpu) {
      const full = this.slotSize * this.cpus;
      if (value.length !== valueSize && value.length !== full) {
        throw invalidArgument(
          `value for per-CPU map '${name}' must be ${valueSize} bytes (copied to every CPU) or ${full} bytes (${this.cpus} CPUs x ${this.slotSize}), got ${value.length}`,
        );
      }
    } else if (value.length !== valueSize) {
      throw invalidArgument(`value must be ${valueSize} bytes for map '${name}', got ${value.length}`);
    }
    native.mapUpdate(this.fd, key, value, UPDATE_FLAGS[flag]);
  }

  /** Deletes the key; false when it was absent. */
  delete(key: Buffer): boolean {
    this.checkKey(key);
    return native.mapDelete(this.fd, key);
  }

  /** The key after `key`, the first key for null, null at the end. */
  nextKey(key: Buffer | null): Buffer | null {
    if (key !== null) this.checkKey(key);
    return native.mapNextKey(this.fd, key);
  }

  /**
   * Every key. Keys deleted while iterating can make the kernel restart from the first
   * key; repeats are skipped and the walk is bounded, so it always ends.
   */
  *keys(): IterableIterator<Buffer> {
    const seen = new Set<string>();
    const limit = this.info.maxEntries * 2 + 16;
    let key: Buffer | null = null;
    for (let steps = 0; steps < limit; steps++) {
      key = this.nextKey(key);
      if (key === null) return;
      const hex = key.toString('hex');
      if (seen.has(hex)) continue;
      seen.add(hex);
      yield key;
    }
  }

  /** Every [key, value] pair; keys that vanish between the two calls are skipped. */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== null) yield [key, value];
    }
  }

  /** Per-CPU maps: each CPU's value (valueSize bytes each), or null when absent. */
  lookupPerCpu(key: Buffer): Buffer[] | null {
    this.requirePerCpu('lookupPerCpu');
    const all = this.lookup(key);
    if (all === null) return null;
    const values: Buffer[] = [];
    for (let cpu = 0; cpu < this.cpus; cpu++) {
      values.push(all.subarray(cpu * this.slotSize, cpu * this.slotSize + this.info.valueSize));
    }
    return values;
  }

  /**
   * Per-CPU counters: the value read as u64 fields (host byte order), each summed over
   * every CPU. A value of one u64 gives a one-element array. Null when absent.
   */
  sumPerCpuU64(key: Buffer): bigint[] | null {
    this.requirePerCpu('sumPerCpuU64');
    if (this.info.valueSize % 8 !== 0) {
      throw invalidArgument(`map '${this.info.name}' values are ${this.info.valueSize} bytes, not a whole number of u64 counters`);
    }
    const values = this.lookupPerCpu(key);
    if (values === null) return null;
    const sums = new Array<bigint>(this.info.valueSize / 8).fill(0n);
    const little = isLittleEndian();
    for (const value of values) {
      for (let i = 0; i < sums.length; i++) {
        sums[i] = BigInt.asUintN(64, sums[i]! + (little ? value.readBigUInt64LE(i * 8) : value.readBigUInt64BE(i * 8)));
      }
    }
    return sums;
  }

  private requirePerCpu(method: string): void {
    if (!this.isPerCpu) throw invalidArgument(`${method} needs a per-CPU map; '${this.info.name}' has type ${this.info.type}`);
  }

  /** Pins the map at `path` in bpffs. */
  pin(path: string): void {
    assertAbsolutePath('path', path);
    native.objPin(this.fd, path);
  }

  close(): void {
    if (this.fdValue === undefined) return;
    const fd = this.fdValue;
    this.fdValue = undefined;
    native.close(fd);
  }
}

function isLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** A socket fd as a socket-map value (host byte order, 4 bytes). */
export function socketValue(fd: number): Buffer {
  assertFd('fd', fd);
  const value = Buffer.alloc(4);
  if (isLittleEndian()) value.writeUInt32LE(fd);
  else value.writeUInt32BE(fd);
  return value;
}

/** Host-byte-order integer encodings for keys and values. */
export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  if (isLittleEndian()) b.writeUInt32LE(value);
  else b.writeUInt32BE(value);
  return b;
}

export function u64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  if (isLittleEndian()) b.writeBigUInt64LE(BigInt.asUintN(64, value));
  else b.writeBigUInt64BE(BigInt.asUintN(64, value));
  return b;
}

export function readU32(buffer: Buffer, offset = 0): number {
  return isLittleEndian() ? buffer.readUInt32LE(offset) : buffer.readUInt32BE(offset);
}

export function readU64(buffer: Buffer, offset = 0): bigint {
  return isLittleEndian() ? buffer.readBigUInt64LE(offset) : buffer.readBigUInt64BE(offset);
}
