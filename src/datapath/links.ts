import { unlinkSync } from 'node:fs';
import { native } from './native';
import type { AttachType, LinkInfo, ProgInfo } from './native-binding';
import { NodemeshError, hasCode } from '../errors';
import { assertAbsolutePath, assertFd, assertOneOf } from './validate';

/** Attaching programs: BPF links (preferred: they detach when the last fd or pin goes). */

export const ATTACH_TYPES: readonly AttachType[] = [
  'cgroup_inet4_connect',
  'cgroup_inet6_connect',
  'cgroup_getsockopt',
  'cgroup_sock_ops',
  'sk_lookup',
  'sk_msg_verdict',
];

export class BpfLink {
  private fdValue: number | undefined;

  private constructor(fd: number) {
    this.fdValue = fd;
  }

  /**
   * bpf_link_create: attaches `progFd` to `targetFd` (a cgroup directory fd for cgroup_*,
   * a netns fd for sk_lookup, a sockmap/sockhash fd for sk_msg_verdict on Linux 6.10+).
   */
  static create(progFd: number, targetFd: number, attachType: AttachType): BpfLink {
    assertFd('progFd', progFd);
    assertFd('targetFd', targetFd);
    assertOneOf('attachType', attachType, ATTACH_TYPES);
    return new BpfLink(native.linkCreate(progFd, targetFd, attachType));
  }

  /** A link pinned in bpffs (the agent's restart path). */
  static openPinned(path: string): BpfLink {
    assertAbsolutePath('path', path);
    const fd = native.objGet(path);
    try {
      native.linkInfo(fd); // throws ERR_NM_WRONG_FD_TYPE for a pinned map or program
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return new BpfLink(fd);
  }

  get fd(): number {
    if (this.fdValue === undefined) throw new NodemeshError('ERR_NM_CLOSED', 'BPF link is closed');
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue === undefined;
  }

  info(): LinkInfo {
    return native.linkInfo(this.fd);
  }

  /** Pins the link so that it outlives this process. */
  pin(path: string): void {
    assertAbsolutePath('path', path);
    native.objPin(this.fd, path);
  }

  /** Detaches the program now, even when the link is pinned elsewhere. */
  detach(): void {
    native.linkDetach(this.fd);
  }

  /** Closes the fd; an unpinned link detaches when its last fd closes. */
  close(): void {
    if (this.fdValue === undefined) return;
    const fd = this.fdValue;
    this.fdValue = undefined;
    native.close(fd);
  }
}

/** bpf_prog_attach (sk_msg_verdict onto a sockhash map fd, on kernels without sockmap links). */
export function attachProgram(progFd: number, targetFd: number, attachType: AttachType): void {
  assertFd('progFd', progFd);
  assertFd('targetFd', targetFd);
  assertOneOf('attachType', attachType, ATTACH_TYPES);
  native.progAttach(progFd, targetFd, attachType);
}

/** bpf_prog_detach2. */
export function detachProgram(progFd: number, targetFd: number, attachType: AttachType): void {
  assertFd('progFd', progFd);
  assertFd('targetFd', targetFd);
  assertOneOf('attachType', attachType, ATTACH_TYPES);
  native.progDetach(progFd, targetFd, attachType);
}

export function programInfo(progFd: number): ProgInfo {
  assertFd('progFd', progFd);
  return native.progInfo(progFd);
}

/** bpf_obj_pin: pins a program, map or link fd at `path` (in bpffs). */
export function pinObject(fd: number, path: string): void {
  assertFd('fd', fd);
  assertAbsolutePath('path', path);
  native.objPin(fd, path);
}

/** bpf_obj_get: a new fd for whatever is pinned at `path`; the caller closes it. */
export function openPinned(path: string): number {
  assertAbsolutePath('path', path);
  return native.objGet(path);
}

/** Removes a pin; false when nothing was pinned there. */
export function unpin(path: string): boolean {
  assertAbsolutePath('path', path);
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return false;
    throw err;
  }
}
