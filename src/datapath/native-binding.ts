/**
 * The whole surface of the native addon (native/, built to build/Release/nodemesh_native.node).
 *
 * Mechanism only: primitives in, primitives or file descriptors out. Node's own `net`
 * objects own all I/O on the descriptors handed back. Every function throws a
 * NativeError-shaped Error (`code`, `errno`, `syscall`) on failure; TypeScript wrappers in
 * this folder validate arguments first, the addon checks again.
 *
 * Only src/datapath may import this module.
 */

/** Error thrown by the addon, shaped like Node's system errors. */
export interface NativeErrorShape extends Error {
  /** Errno name, for example 'ENOENT', or an 'ERR_NM_*' code for libbpf-level failures. */
  code: string;
  /** Positive errno value, 0 when not an OS error. */
  errno: number;
  /** The syscall or libbpf function that failed, for example 'setns' or 'bpf_object__load'. */
  syscall: string;
  /** The path involved, when there is one (pin path, netns path, object file). */
  path?: string;
}

/** Attach types the addon understands (mirrors enum bpf_attach_type names). */
export type AttachType =
  | 'cgroup_inet4_connect'
  | 'cgroup_inet6_connect'
  | 'cgroup_getsockopt'
  | 'cgroup_sock_ops'
  | 'sk_lookup'
  | 'sk_msg_verdict';

export interface SocketInNetnsOptions {
  /** 4 or 6. */
  family: 4 | 6;
  /** Address to bind, textual ('127.0.0.1', '::', '127.0.0.6'); omitted: no bind. */
  bindAddress?: string;
  /** Port to bind, 0 for ephemeral; only with bindAddress. */
  bindPort?: number;
  /** When set, listen() with this backlog, making a listening socket. */
  listenBacklog?: number;
  /** SO_MARK value, set before bind/connect. */
  mark?: number;
  /** SO_REUSEADDR (default true for listening sockets). */
  reuseAddr?: boolean;
  /** SO_REUSEPORT. */
  reusePort?: boolean;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT. */
  transparent?: boolean;
  /** IPV6_V6ONLY for family 6 (default true). */
  v6Only?: boolean;
}

export interface OriginalDestination {
  family: 4 | 6;
  address: string;
  port: number;
}

export interface SocketAddress {
  family: 4 | 6;
  address: string;
  port: number;
}

export interface LinkInfo {
  id: number;
  progId: number;
  /** The attach type name as in AttachType, or 'unknown(N)'. */
  attachType: string;
  /** For cgroup links, the cgroup id; for netns links, the netns inode; else 0. */
  targetId: number;
}

export interface ProgInfo {
  id: number;
  name: string;
  type: number;
}

export interface MapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface NativeBinding {
  // ---- BPF objects (libbpf) -------------------------------------------------------------
  /**
   * Opens an ELF BPF object. Maps declared with LIBBPF_PIN_BY_NAME are pinned (or reused
   * when already pinned and compatible) under pinRoot at load time.
   * Returns an opaque handle for the object functions below.
   */
  objectOpen(path: string, pinRoot: string): number;
  /** Sets a `const volatile` global in .rodata (or .data/.bss) by name before load; the
   * buffer must be exactly the variable's size (checked against BTF). */
  objectSetGlobal(handle: number, name: string, value: Buffer): void;
  /** Loads (verifies) every program; on failure the error message carries the tail of the
   * verifier log. */
  objectLoad(handle: number): void;
  /** A dup()ed fd of the named program in a loaded object; caller closes it. */
  objectProgramFd(handle: number, programName: string): number;
  /** A dup()ed fd of the named map in a loaded object; caller closes it. */
  objectMapFd(handle: number, mapName: string): number;
  /** Releases the object (programs stay alive while links, pins or fds hold them). */
  objectClose(handle: number): void;

  // ---- links and attachment ------------------------------------------------------------
  /** bpf_link_create(progFd, targetFd, attachType). Target is a cgroup dir fd or a netns fd. */
  linkCreate(progFd: number, targetFd: number, attachType: AttachType): number;
  /** bpf_link_detach: detaches even if the link is pinned elsewhere. */
  linkDetach(linkFd: number): void;
  linkInfo(linkFd: number): LinkInfo;
  /** bpf_prog_attach (used for sk_msg_verdict onto a sockhash map fd). */
  progAttach(progFd: number, targetFd: number, attachType: AttachType): void;
  progDetach(progFd: number, targetFd: number, attachType: AttachType): void;
  progInfo(progFd: number): ProgInfo;

  // ---- pinning -------------------------------------------------------------------------
  /** bpf_obj_pin. */
  objPin(fd: number, path: string): void;
  /** bpf_obj_get: returns a new fd for a pinned program, map or link. */
  objGet(path: string): number;

  // ---- maps ----------------------------------------------------------------------------
  mapInfo(mapFd: number): MapInfo;
  /** Returns the value, or null when the key is absent (ENOENT is not an error). */
  mapLookup(mapFd: number, key: Buffer): Buffer | null;
  /** flags: 0 BPF_ANY, 1 BPF_NOEXIST, 2 BPF_EXIST. For sockmap/sockhash the value is a
   * 4- or 8-byte buffer holding a socket fd. */
  mapUpdate(mapFd: number, key: Buffer, value: Buffer, flags: number): void;
  /** Returns false when the key was absent. */
  mapDelete(mapFd: number, key: Buffer): boolean;
  /** The key after `key` (or the first key when key is null), or null at the end. */
  mapNextKey(mapFd: number, key: Buffer | null): Buffer | null;
  /** For per-CPU maps: lookup returns every CPU's value concatenated; this is their count. */
  possibleCpus(): number;

  // ---- sockets in network namespaces ---------------------------------------------------
  /**
   * Opens a network namespace file (/run/netns/NAME, /proc/PID/ns/net) and returns its fd
   * (O_RDONLY|O_CLOEXEC), after checking it really is a network namespace.
   */
  netnsOpen(path: string): number;
  /** Creates a TCP socket inside the namespace behind netnsFd, on the calling thread, then
   * returns the thread to its own namespace. The fd is non-blocking and close-on-exec. */
  socketInNetns(netnsFd: number, options: SocketInNetnsOptions): number;
  /** SO_NETNS_COOKIE of a socket created inside the namespace (kernel 5.14+). */
  netnsCookie(netnsFd: number): bigint;

  // ---- socket options ------------------------------------------------------------------
  setMark(fd: number, mark: number): void;
  setTransparent(fd: number, on: boolean): void;
  setReusePort(fd: number, on: boolean): void;
  /** SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6), picked by the socket's family. */
  getOriginalDst(fd: number): OriginalDestination;
  /** SO_COOKIE. */
  socketCookie(fd: number): bigint;
  localAddress(fd: number): SocketAddress;
  peerAddress(fd: number): SocketAddress;
  /** close(2), for descriptors not (yet) owned by a Node object. */
  close(fd: number): void;

  // ---- cgroups -------------------------------------------------------------------------
  /** Opens a cgroup v2 directory (O_RDONLY|O_DIRECTORY) for linkCreate. */
  cgroupOpen(path: string): number;
  /** The cgroup id (the directory's inode, as bpf_get_current_cgroup_id reports). */
  cgroupId(path: string): bigint;

  // ---- probes --------------------------------------------------------------------------
  /** statfs f_type of a path, for cgroup2 / bpffs mount checks. */
  statfsType(path: string): number;
  /** libbpf_probe_bpf_prog_type: 1 supported, 0 not, negative errno on probe failure. */
  probeProgType(progType: string): number;
  /** libbpf_probe_bpf_map_type. */
  probeMapType(mapType: string): number;

  // ---- descriptors over a unix socket (the agent hand-over) ---------------------------
  /** A unix stream socket connected to path (non-blocking, close-on-exec). ENOENT or
   * ECONNREFUSED: nobody listens there. */
  unixConnect(path: string): number;
  /** Sends one message (a 4-byte length is prefixed) with up to 253 descriptors as
   * SCM_RIGHTS, on the thread pool, within timeoutMs (ETIMEDOUT). */
  fdChannelSend(fd: number, message: Buffer, fds: number[], timeoutMs: number): Promise<void>;
  /** Receives one message and its descriptors (close-on-exec, now the caller's), within
   * timeoutMs; `eof` at a clean end of stream between messages. */
  fdChannelRecv(fd: number, timeoutMs: number): Promise<{ eof: boolean; data: Buffer; fds: number[] }>;
  /** F_DUPFD_CLOEXEC: a descriptor that outlives the Node object owning the original. */
  dupFd(fd: number): number;
  /** Sets or clears O_NONBLOCK (received descriptors keep the sender's flags). */
  setNonBlocking(fd: number, on: boolean): void;
}
