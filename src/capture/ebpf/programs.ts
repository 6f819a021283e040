import type { AttachType } from '../../datapath/native-binding';
import type { CaptureSettings } from '../settings';

/** One BPF program: the object file it is in, its function name and where it attaches. */
export interface ProgramSpec {
  object: string;
  program: string;
  attach: AttachType;
}

/** Attached once per node, at the capture cgroup. */
export const CAPTURE_PROGRAMS: readonly ProgramSpec[] = [
  { object: 'connect.bpf.o', program: 'nm_connect4', attach: 'cgroup_inet4_connect' },
  { object: 'connect.bpf.o', program: 'nm_connect6', attach: 'cgroup_inet6_connect' },
  { object: 'sockops.bpf.o', program: 'nm_sockops', attach: 'cgroup_sock_ops' },
  { object: 'getsockopt.bpf.o', program: 'nm_getsockopt', attach: 'cgroup_getsockopt' },
];

/** Attached per pod network namespace. */
export const SK_LOOKUP_PROGRAM: ProgramSpec = { object: 'sk_lookup.bpf.o', program: 'nm_sk_lookup', attach: 'sk_lookup' };

/** Attached to the pair sockhash when the accelerator is on. */
export const SK_MSG_PROGRAM: ProgramSpec = { object: 'sk_msg.bpf.o', program: 'nm_sk_msg', attach: 'sk_msg_verdict' };

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** The const volatile globals of ebpf/common.h, set in every object before load. */
export function settingsGlobals(s: CaptureSettings): Array<[string, Buffer]> {
  return [
    ['nm_outbound_port', u16(s.outboundPort)],
    ['nm_inbound_port', u16(s.inboundPort)],
    ['nm_tunnel_port', u16(s.tunnelPort)],
    ['nm_probe_port', u16(s.probePort)],
    ['nm_proxy_mark', u32(s.proxyMark)],
    ['nm_sk_msg_enabled', Buffer.from([s.skMsg ? 1 : 0])],
  ];
}
