import { networkInterfaces } from 'node:os';
import { IptablesCapture, OWN_NETNS, type EnrollOutcome } from '../capture/iptables/iptables-capture';
import type { IptablesCaptureSettings } from '../capture/iptables/rules';
import { NodemeshError } from '../errors';
import type { IptablesBackend } from '../netfilter/iptables';

/**
 * `nodemesh sidecar-init`: the sidecar's init step. It runs inside the pod's network
 * namespace (an init container with NET_ADMIN and NET_RAW, or the simulator's pod) and
 * installs the same in-pod nat rules as the agent's iptables back-end, with the iptables
 * tools run directly (no nsenter, no CAP_SYS_ADMIN). Idempotent: a second run with the
 * same settings changes nothing, with other settings it replaces the rules atomically.
 */

export interface SidecarInitOptions {
  settings: IptablesCaptureSettings;
  /**
   * The pod's IPs: when given, each must be an address of this namespace, so that the
   * rules never land in the wrong one (a hostNetwork pod, a mistaken nsenter).
   */
  podIPs?: string[];
  backend?: IptablesBackend;
  /** Where the rules go; default the process's own namespace. */
  netnsPath?: string;
  /** The addresses of the namespace (tests); default os.networkInterfaces(). */
  localAddresses?: () => string[];
}

export interface SidecarInitResult {
  backend: IptablesBackend;
  backendReason: string;
  outcome: EnrollOutcome;
}

function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
}

/** Checks that every pod IP is configured here; throws ERR_NM_SIDECAR_WRONG_NETNS naming the missing ones. */
export function checkPodIPs(podIPs: readonly string[], addresses: readonly string[]): void {
  const have = new Set(addresses.map((a) => a.toLowerCase()));
  const missing = podIPs.filter((ip) => !have.has(ip.toLowerCase()));
  if (missing.length > 0) {
    throw new NodemeshError('ERR_NM_SIDECAR_WRONG_NETNS', `the pod IP(s) ${missing.join(', ')} are not addresses of this network namespace (it has ${addresses.join(', ') || 'none'})`, {
      hint: 'run sidecar-init inside the pod (an init container of a pod without hostNetwork); no rules were installed',
      details: { podIPs, addresses },
    });
  }
}

export async function runSidecarInit(options: SidecarInitOptions): Promise<SidecarInitResult> {
  const ips = (options.podIPs ?? []).filter((ip) => ip !== '');
  if (ips.length > 0) checkPodIPs(ips, (options.localAddresses ?? ownAddresses)());
  const capture = await IptablesCapture.create(options.backend ? { backend: options.backend } : {});
  const outcome = await capture.enrollAndReport(options.netnsPath ?? OWN_NETNS, options.settings);
  return { backend: capture.backend, backendReason: capture.backendReason, outcome };
}
