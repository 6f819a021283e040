import { coreKinds } from '../kinds/registry';
import { resolve } from 'node:path';
import type { ConfigSource } from '../config/config-source';
import { iptablesCaptureSettings } from '../capture/iptables/rules';
import { DEFAULT_CAPTURE_SETTINGS, validateCaptureSettings } from '../capture/settings';
import { DirectorySource } from '../config/directory-source';
import { loadNative } from '../datapath/native';
import { NodemeshError } from '../errors';
import { logger } from '../log';
import type { IptablesBackend } from '../netfilter/iptables';
import { runSidecarInit } from '../sidecar/init';
import { openOwnNetwork } from '../sidecar/self-network';
import { Sidecar } from '../sidecar/sidecar';
import { IDENTITY_FLAGS, IDENTITY_HELP, identityFromFlags } from './identity-flags';
import { parseFlags, parseList, parsePort, parsePorts, parseDrainMs } from './args';
import { stopOnSignal } from '../runtime/stop-on-signal';

const SIDECAR_HELP = `usage: nodemesh sidecar --source DIR --pod NS/NAME [flags]   (the simulator, a YAML source)
       nodemesh sidecar --kube [--pod NS/NAME] [flags]        (in an injected pod)

Runs the proxy inside one pod (sidecar mode): the node proxy's code with this pod as its
only pod, listening in the process's own network namespace on 15001 (outbound) and 15006
(inbound). Capture is the iptables rule set \`nodemesh sidecar-init\` installed before.
  --source DIR             Kubernetes YAML (directory or file), watched for changes
  --kube                   read the configuration from the Kubernetes API (in-cluster, or --kubeconfig)
  --kubeconfig PATH        kubeconfig file for --kube
  --node NAME              with --kube: watch only this node's pods (default $NODE_NAME)
  --pod NS/NAME            the pod this sidecar runs in (default $POD_NAMESPACE/$POD_NAME)
  --admin-port N           admin API (/metrics, /debug/*) port (default 15020)
  --admin-host ADDR        address the admin port binds (default 0.0.0.0)
  --health-port N          /healthz/live and /healthz/ready port (default 15021)
  --admin-socket PATH      admin API also on a unix socket
  --access-log PATH        one JSON line per request and TCP connection ('-': stdout)
  --drain-ms N             grace for open connections on SIGTERM (default 5000)
  --no-inbound             no inbound listener (match sidecar-init --no-inbound)
${IDENTITY_HELP}`;

const INIT_HELP = `usage: nodemesh sidecar-init [--pod-ip IP[,IP]]... [flags]

The sidecar's init step: installs the in-pod nat rules (NODEMESH_OUTPUT -> 15001,
NODEMESH_PREROUTING -> 15006) in this process's network namespace. Idempotent. Needs
CAP_NET_ADMIN and CAP_NET_RAW only (no nsenter).
  --pod-ip IP[,IP]         the pod's IPs: refuse to run in a namespace that does not own them
  --exclude-uid UID        never capture connections of this uid (the proxy's, 1337 when injected)
  --iptables-backend B     nft or legacy (default: detected)
  --exclude-outbound-ports LIST, --exclude-inbound-ports LIST, --exclude-cidrs LIST
  --no-inbound             do not capture inbound connections
  --netns PATH             another namespace instead of this process's own (uses nsenter)`;

function podKeyFrom(flag: string | undefined): string {
  const key = flag ?? (process.env.POD_NAMESPACE && process.env.POD_NAME ? `${process.env.POD_NAMESPACE}/${process.env.POD_NAME}` : undefined);
  if (!key) throw new NodemeshError('ERR_NM_USAGE', 'nodemesh sidecar needs the pod: --pod NS/NAME (or POD_NAMESPACE and POD_NAME)', { hint: 'run `nodemesh sidecar --help`' });
  const [ns, name, ...rest] = key.split('/');
  if (!ns || !name || rest.length > 0) throw new NodemeshError('ERR_NM_USAGE', `--pod takes NAMESPACE/NAME, got '${key}'`);
  return key;
}

export async function sidecarCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('sidecar', argv, {
    source: { type: 'string' },
    kube: { type: 'boolean', default: false },
    kubeconfig: { type: 'string' },
    node: { type: 'string' },
    pod: { type: 'string' },
    'admin-port': { type: 'string', default: '15020' },
    'admin-host': { type: 'string', default: '0.0.0.0' },
    'health-port': { type: 'string', default: '15021' },
    'admin-socket': { type: 'string' },
    'access-log': { type: 'string' },
    'drain-ms': { type: 'string', default: '5000' },
    'no-inbound': { type: 'boolean', default: false },
    ...IDENTITY_FLAGS,
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(SIDECAR_HELP);
    return 0;
  }
  if (!values.source === !values.kube) {
    throw new NodemeshError('ERR_NM_USAGE', 'nodemesh sidecar needs one configuration source: --source DIR or --kube', { hint: 'run `nodemesh sidecar --help`' });
  }
  const podKey = podKeyFrom(values.pod);
  const log = logger('sidecar', { pod: podKey });
  const drainMs = parseDrainMs(values['drain-ms']);
  const settings = validateCaptureSettings({ ...DEFAULT_CAPTURE_SETTINGS, captureInbound: !values['no-inbound'] });

  let source: ConfigSource;
  if (values.kube) {
    // Loaded here only: the Kubernetes client is most of a proxy's memory (kube-mode.ts).
    const { sidecarKubeSource } = await import('./kube-mode');
    source = sidecarKubeSource({ kubeconfig: values.kubeconfig, nodeName: values.node ?? process.env.NODE_NAME });
  } else {
    source = new DirectorySource(resolve(values.source!), { kinds: coreKinds() });
  }
  const own = await openOwnNetwork(loadNative(), settings.proxyMark);
  log.info({ loopAvoidance: own.loopAvoidance, reason: own.reason }, 'sidecar network');
  const adminPort = parsePort('--admin-port', values['admin-port']);
  const healthPort = parsePort('--health-port', values['health-port']);
  const { identity, trustDomain, meshRootNamespace, clusterId } = identityFromFlags(values, logger('identity', { pod: podKey }), 'no CA (--ca-address): no certificate for the pod, so no mTLS tunnel; peers are reached in plaintext');
  const sidecar = new Sidecar({
    podKey,
    ...(identity && { identity }),
    trustDomain,
    meshRootNamespace,
    clusterId,
    source,
    network: own.network,
    ...(own.sandbox ? { sandbox: own.sandbox } : {}),
    settings,
    loopAvoidance: own.loopAvoidance,
    ...(adminPort !== undefined ? { adminPort, adminHost: values['admin-host']! } : {}),
    ...(healthPort !== undefined ? { healthPort } : {}),
    ...(values['admin-socket'] ? { adminSocket: values['admin-socket'] } : {}),
    ...(values['access-log'] ? { accessLog: values['access-log'] } : {}),
    drainMs,
  });
  await sidecar.start();
  const status = sidecar.status();
  log.info({ status: status.status, reason: status.reason, ips: status.ips, adminSocket: values['admin-socket'] }, 'sidecar started');

  return stopOnSignal({
    log,
    drainMs,
    stopping: 'stopping: draining open connections',
    stop: (cut) => sidecar.stop(cut),
  });
}

export async function sidecarInitCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('sidecar-init', argv, {
    'pod-ip': { type: 'string', multiple: true },
    'exclude-uid': { type: 'string' },
    'iptables-backend': { type: 'string' },
    'exclude-outbound-ports': { type: 'string' },
    'exclude-inbound-ports': { type: 'string' },
    'exclude-cidrs': { type: 'string' },
    'no-inbound': { type: 'boolean', default: false },
    netns: { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(INIT_HELP);
    return 0;
  }
  const backend = values['iptables-backend'];
  if (backend !== undefined && backend !== 'nft' && backend !== 'legacy') {
    throw new NodemeshError('ERR_NM_USAGE', `--iptables-backend must be nft or legacy, not '${backend}'`);
  }
  let excludeUid: number | undefined;
  if (values['exclude-uid'] !== undefined) {
    excludeUid = Number(values['exclude-uid']);
    if (values['exclude-uid'].trim() === '' || !Number.isInteger(excludeUid) || excludeUid < 0) {
      throw new NodemeshError('ERR_NM_USAGE', `--exclude-uid takes a numeric uid, got '${values['exclude-uid']}'`);
    }
  }
  const settings = iptablesCaptureSettings({
    captureInbound: !values['no-inbound'],
    excludeOutboundPorts: parsePorts('--exclude-outbound-ports', values['exclude-outbound-ports']),
    excludeInboundPorts: parsePorts('--exclude-inbound-ports', values['exclude-inbound-ports']),
    excludeOutboundCIDRs: parseList(values['exclude-cidrs']),
    ...(excludeUid !== undefined ? { excludeUid } : {}),
  });
  const podIPs = (values['pod-ip'] ?? []).flatMap((v) => parseList(v));
  const result = await runSidecarInit({
    settings,
    podIPs,
    ...(backend ? { backend: backend as IptablesBackend } : {}),
    ...(values.netns ? { netnsPath: values.netns } : {}),
  });
  const families = Object.entries(result.outcome).map(([family, action]) => `IPv${family} ${action}`).join(', ');
  console.log(`nodemesh sidecar-init: capture rules ${families} (iptables ${result.backend}: ${result.backendReason})`);
  return 0;
}
