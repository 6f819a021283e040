import { isIP } from 'node:net';
import { NodemeshError } from '../errors';

/** What capture redirects and where to, shared by both back-ends and the proxy. */
export interface CaptureSettings {
  outboundPort: number;
  inboundPort: number;
  tunnelPort: number;
  /** Capture self-test: a connection from a pod to its own IP on this port is answered
   * by the proxy only, so it proves that capture works for that pod. */
  probePort: number;
  /** SO_MARK on every proxy socket; no hook captures a marked socket. */
  proxyMark: number;
  excludeOutboundPorts: number[];
  excludeInboundPorts: number[];
  excludeOutboundCIDRs: string[];
  captureInbound: boolean;
  /** eBPF only: move bytes between app and proxy loopback sockets with sk_msg. */
  skMsg: boolean;
}

export const DEFAULT_CAPTURE_SETTINGS: CaptureSettings = {
  outboundPort: 15001,
  inboundPort: 15006,
  tunnelPort: 15008,
  probePort: 15009,
  proxyMark: 0x4e4d,
  excludeOutboundPorts: [],
  excludeInboundPorts: [],
  excludeOutboundCIDRs: [],
  captureInbound: true,
  skMsg: false,
};

/** The source address the inbound path uses towards the app; never captured. */
export const INBOUND_PASSTHROUGH_SOURCE = '127.0.0.6';

function checkPort(name: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new NodemeshError('ERR_NM_INVALID_CAPTURE_SETTINGS', `${name} must be a port number from 1 to 65535, got ${String(port)}`);
  }
}

/** Validates settings; throws naming the first bad value. */
export function validateCaptureSettings(s: CaptureSettings): CaptureSettings {
  for (const key of ['outboundPort', 'inboundPort', 'tunnelPort', 'probePort'] as const) checkPort(key, s[key]);
  s.excludeOutboundPorts.forEach((p, i) => checkPort(`excludeOutboundPorts[${i}]`, p));
  s.excludeInboundPorts.forEach((p, i) => checkPort(`excludeInboundPorts[${i}]`, p));
  s.excludeOutboundCIDRs.forEach((c, i) => {
    const [addr, len] = c.split('/');
    const kind = isIP(addr ?? '');
    const n = Number(len);
    if (!kind || len === undefined || !Number.isInteger(n) || n < 0 || n > (kind === 4 ? 32 : 128)) {
      throw new NodemeshError('ERR_NM_INVALID_CAPTURE_SETTINGS', `excludeOutboundCIDRs[${i}] '${c}' is not a CIDR such as 10.0.0.0/8`);
    }
  });
  if (!Number.isInteger(s.proxyMark) || s.proxyMark <= 0 || s.proxyMark > 0xffffffff) {
    throw new NodemeshError('ERR_NM_INVALID_CAPTURE_SETTINGS', `proxyMark must be a non-zero 32-bit value, got ${String(s.proxyMark)}`);
  }
  return s;
}
