import { native } from './native';
import { NodemeshError } from '../errors';
import { BpfMap, u32, u64 } from './bpf-map';
import { assertAbsolutePath, assertBuffer, assertInteger, assertString } from './validate';

/**
 * A BPF ELF object through libbpf: open, set const volatile globals, load, then take
 * program and map fds (dup()ed: they stay valid after close()). Maps declared with
 * LIBBPF_PIN_BY_NAME are pinned, or reused when already pinned, under pinRoot at load.
 */
export class BpfObject {
  private handle: number | undefined;
  private stage: 'opened' | 'loaded' | 'failed' = 'opened';

  private constructor(
    readonly path: string,
    readonly pinRoot: string,
    handle: number,
  ) {
    this.handle = handle;
  }

  /** Opens (parses) the object; nothing reaches the kernel until load(). */
  static open(path: string, pinRoot: string): BpfObject {
    assertAbsolutePath('path', path);
    assertAbsolutePath('pinRoot', pinRoot);
    return new BpfObject(path, pinRoot, native.objectOpen(path, pinRoot));
  }

  get loaded(): boolean {
    return this.stage === 'loaded';
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  private openHandle(): number {
    if (this.handle === undefined) throw new NodemeshError('ERR_NM_CLOSED', `BPF object ${this.path} is closed`);
    return this.handle;
  }

  /** Sets a global (in .rodata, .data or .bss) before load; `value` must be its exact size. */
  setGlobal(name: string, value: Buffer): void {
    assertString('name', name);
    assertBuffer('value', value);
    const handle = this.openHandle();
    if (this.stage !== 'opened') {
      throw new NodemeshError('ERR_NM_ALREADY_LOADED', `globals of ${this.path} can only be set before load()`);
    }
    native.objectSetGlobal(handle, name, value);
  }

  /** Sets a __u32 global. */
  setGlobalU32(name: string, value: number): void {
    assertInteger('value', value, 0, 0xffffffff);
    this.setGlobal(name, u32(value));
  }

  /** Sets a __u64 global. */
  setGlobalU64(name: string, value: bigint): void {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) {
      throw new NodemeshError('ERR_NM_INVALID_ARGUMENT', `value must be a bigint from 0 to 2^64-1, got ${String(value)}`);
    }
    this.setGlobal(name, u64(value));
  }

  /** Verifies and loads every program; a rejection's error carries the verifier log tail. */
  load(): void {
    const handle = this.openHandle();
    if (this.stage !== 'opened') {
      throw new NodemeshError('ERR_NM_ALREADY_LOADED', `BPF object ${this.path} was loaded already${this.stage === 'failed' ? ' and failed; open it again' : ''}`);
    }
    try {
      native.objectLoad(handle);
      this.stage = 'loaded';
    } catch (err) {
      this.stage = 'failed';
      throw err;
    }
  }

  private loadedHandle(): number {
    const handle = this.openHandle();
    if (this.stage !== 'loaded') throw new NodemeshError('ERR_NM_NOT_LOADED', `BPF object ${this.path} is not loaded; call load() first`);
    return handle;
  }

  /** A new fd of the named program; the caller closes it. */
  programFd(name: string): number {
    assertString('name', name);
    return native.objectProgramFd(this.loadedHandle(), name);
  }

  /** A new fd of the named map; the caller closes it. */
  mapFd(name: string): number {
    assertString('name', name);
    return native.objectMapFd(this.loadedHandle(), name);
  }

  /** The named map as a BpfMap owning its own fd. */
  map(name: string): BpfMap {
    const fd = this.mapFd(name);
    try {
      return new BpfMap(fd);
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /** Releases the object; programs and maps live on while fds, links or pins hold them. */
  close(): void {
    if (this.handle === undefined) return;
    const handle = this.handle;
    this.handle = undefined;
    native.objectClose(handle);
  }
}
