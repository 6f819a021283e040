import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildAgent, runDirFor, writePidFile, type AgentConfig } from '../agent/build-agent';
import { SimPodLocator } from '../sim/sim-pod-locator';
import { findCgroup2Mount } from '../datapath/mounts';
import { DEFAULT_CAPTURE_SETTINGS } from '../capture/settings';
import { loadNative } from '../datapath/native';
import { NodemeshError } from '../errors';
import { logger } from '../log';
import { loadSimState } from '../sim/state';
import { ProcPodLocator } from '../agent/proc-pod-locator';
import type { PodLocator } from '../agent/pod-locator';
import type { ConfigSource } from '../config/config-source';
import type { LifecycleFlag } from '../kube/lifecycle-flag';
import type { LeaderElection } from '../kube/leader-election';
import type { MeshMemberWriter } from '../kube/member-writer';
import type { PodInfo } from '../mesh/model';
import { IDENTITY_FLAGS, IDENTITY_HELP, identityFromFlags } from './identity-flags';
import { parseDrainMs, parseFlags, parseList, parsePort, parsePorts } from './args';
import { STOP_MARGIN_MS, stopOnSignal } from '../runtime/stop-on-signal';

/** How long an uninstalling agent may take to remove its node's MeshMembers. */
const MEMBERS_REMOVAL_MS = 5000;

const HELP = `usage: nodemesh agent --kube --node NAME [flags]              (on a cluster node)
       nodemesh agent --sim SIM --node NAME --source DIR [flags]  (on the local simulator)
       nodemesh agent --sim SIM --node NAME --kube [flags]        (simulator nodes, Kubernetes API)

Runs the node agent: captures the traffic of this node's ambient pods into the node proxy.
  --source DIR             Kubernetes YAML (directory or file), watched for changes
  --kube                   read Pods, Services, EndpointSlices, routes and policies from the
                           Kubernetes API (in-cluster config, or --kubeconfig)
  --kubeconfig PATH        kubeconfig file for --kube
  --proc PATH              the host's /proc, to find pods' network namespaces (default /proc)
  --release-on-exit-configmap NS/NAME
                           the Helm chart's uninstall flag: when it says uninstalling, SIGTERM
                           releases every pod and removes the pinned state
  --leader-election-lease NS/NAME
                           write statuses and Events only while holding this
                           coordination.k8s.io Lease (one writer for all agents); without
                           it this agent writes them itself (a single agent)
  --leader-election-lease-seconds N
                           how long a holder's renewal is good for (default 15); a leader
                           that cannot renew for 2/3 of it stops writing
  --node NAME              the node this agent serves (pods with this spec.nodeName)
  --sim SIM                run against a node of the local simulator: the agent joins the
                           node's agent cgroup and finds pods from the simulator's state
  --capture MODE           auto (default), ebpf or iptables
  --sk-msg                 eBPF: move app<->proxy bytes with sk_msg (measured, not assumed)
  --no-inbound             do not capture inbound plaintext (15006)
  --exclude-outbound-ports LIST, --exclude-inbound-ports LIST, --exclude-cidrs LIST
  --cgroup PATH            cgroup v2 directory the eBPF programs attach to
  --bpffs PATH             BPF filesystem root (default /sys/fs/bpf)
  --instance NAME          names the pinned state (default: node name, or sim-SIM-NODE)
  --admin-port N           admin API port (default 15020; none in --sim mode)
  --health-port N          health port (default 15021; none in --sim mode)
  --admin-socket PATH      admin API on a unix socket (default /run/nodemesh/INSTANCE/admin.sock)
  --drain-ms N             grace for open connections on SIGTERM (default 5000)
  --access-log PATH        one JSON line per request and TCP connection ('-': stdout)
${IDENTITY_HELP}`;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('agent', argv, {
    source: { type: 'string' },
    kube: { type: 'boolean', default: false },
    kubeconfig: { type: 'string' },
    proc: { type: 'string', default: '/proc' },
    'release-on-exit-configmap': { type: 'string' },
    'leader-election-lease': { type: 'string' },
    'leader-election-lease-seconds': { type: 'string', default: String(DEFAULT_LEASE_SECONDS) },
    node: { type: 'string' },
    sim: { type: 'string' },
    capture: { type: 'string', default: 'auto' },
    'sk-msg': { type: 'boolean', default: false },
    'no-inbound': { type: 'boolean', default: false },
    'exclude-outbound-ports': { type: 'string' },
    'exclude-inbound-ports': { type: 'string' },
    'exclude-cidrs': { type: 'string' },
    cgroup: { type: 'string' },
    bpffs: { type: 'string', default: '/sys/fs/bpf' },
    instance: { type: 'string' },
    'admin-port': { type: 'string' },
    'health-port': { type: 'string' },
    'admin-socket': { type: 'string' },
    'drain-ms': { type: 'string', default: '5000' },
    'access-log': { type: 'string' },
    ...IDENTITY_FLAGS,
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if ((!values.source && !values.kube) || !values.node) {
    throw new NodemeshError('ERR_NM_USAGE', 'nodemesh agent needs --node and a configuration source: --source DIR or --kube', { hint: 'run `nodemesh agent --help`' });
  }
  if (values['leader-election-lease'] !== undefined && !values.kube) {
    throw new NodemeshError('ERR_NM_USAGE', '--leader-election-lease needs --kube: only the Kubernetes source writes statuses');
  }
  const leaseSeconds = parseLeaseSeconds(values['leader-election-lease-seconds']);
  const capture = values.capture;
  if (capture !== 'auto' && capture !== 'ebpf' && capture !== 'iptables') {
    throw new NodemeshError('ERR_NM_USAGE', `--capture must be auto, ebpf or iptables, not '${capture}'`);
  }
  const log = logger('agent', { node: values.node });
  let cgroupPath = values.cgroup;
  let instance = values.instance ?? values.node;
  let locator: PodLocator = new ProcPodLocator(values.proc);
  if (values.sim) {
    const state = loadSimState(values.sim);
    const node = state.nodes.find((n) => n.name === values.node);
    if (!node) {
      throw new NodemeshError('ERR_NM_USAGE', `simulation '${values.sim}' has no node '${values.node}'`, { hint: `its nodes: ${state.nodes.map((n) => n.name).join(', ')}` });
    }
    // Join the node's agent cgroup before any socket exists: the getsockopt and sockops
    // programs see the proxy's sockets by the cgroup they were created in.
    writeFileSync(join(node.agentCgroup, 'cgroup.procs'), `${process.pid}\n`);
    cgroupPath ??= node.cgroup;
    instance = values.instance ?? `sim-${values.sim}-${values.node}`;
    // With a YAML source the simulator's state names each pod's namespace; with --kube the
    // pods come from the API and are found as on a real node, through /proc.
    if (!values.kube) locator = new SimPodLocator(values.sim);
  }
  let source: ConfigSource | undefined;
  let lifecycle: LifecycleFlag | undefined;
  let leader: LeaderElection | undefined;
  let members: MeshMemberWriter | undefined;
  if (values.kube) {
    // Loaded here only: the Kubernetes client is most of an agent's memory (kube-mode.ts).
    const { agentKubeInputs } = await import('./kube-mode');
    ({ source, lifecycle, leader, members } = await agentKubeInputs({
      kubeconfig: values.kubeconfig,
      nodeName: values.node,
      releaseFlag: values['release-on-exit-configmap'],
      leaderLease: values['leader-election-lease'],
      leaseDurationSeconds: leaseSeconds,
      // Unique per agent, not per node: during a rolling update (maxSurge) the old and the
      // new agent of a node run side by side, and must not both count as the holder.
      leaderIdentity: `${values.node}_${process.env.POD_NAME || `pid-${process.pid}`}`,
    }));
  }
  const { identity, trustDomain, meshRootNamespace, clusterId } = identityFromFlags(values, logger('identity', { node: values.node }), 'no CA (--ca-address): no workload certificates, so no mTLS tunnel; traffic to other nodes goes direct in plaintext');
  const agentPodKey = process.env.POD_NAMESPACE && process.env.POD_NAME ? `${process.env.POD_NAMESPACE}/${process.env.POD_NAME}` : undefined;
  const config: AgentConfig = {
    nodeName: values.node,
    sourcePath: values.source ? resolve(values.source) : '',
    ...(agentPodKey ? { agentPodKey } : {}),
    capture,
    settings: {
      ...DEFAULT_CAPTURE_SETTINGS,
      skMsg: values['sk-msg']!,
      captureInbound: !values['no-inbound'],
      excludeOutboundPorts: parsePorts('--exclude-outbound-ports', values['exclude-outbound-ports']),
      excludeInboundPorts: parsePorts('--exclude-inbound-ports', values['exclude-inbound-ports']),
      excludeOutboundCIDRs: parseList(values['exclude-cidrs']),
    },
    instance,
    bpffsRoot: values.bpffs!,
    cgroupPath: cgroupPath ?? findCgroup2Mount() ?? '/sys/fs/cgroup',
    objectDir: resolve(__dirname, '..', '..', 'bpf'),
    locator,
    adminSocket: values['admin-socket'] ?? join(runDirFor(instance), 'admin.sock'),
    drainMs: parseDrainMs(values['drain-ms']),
    ...(values['access-log'] ? { accessLog: values['access-log'] } : {}),
    ...(identity ? { identity } : {}),
    trustDomain,
    meshRootNamespace,
    clusterId,
    ...(members ? { onEnrolled: (pods: PodInfo[]) => members!.update(pods) } : {}),
  };
  const adminPort = parsePort('--admin-port', values['admin-port']) ?? (values.sim ? undefined : 15020);
  const healthPort = parsePort('--health-port', values['health-port']) ?? (values.sim ? undefined : 15021);
  if (adminPort !== undefined) config.adminPort = adminPort;
  if (healthPort !== undefined) config.healthPort = healthPort;

  const { agent, report } = await buildAgent(loadNative(), config, source);
  const removePid = writePidFile(instance);
  await agent.start();
  log.info({ backend: report.choice, reason: report.reason, adminSocket: config.adminSocket, pods: agent.podRecords().length }, 'agent ready');

  const releaseAll = () => lifecycle?.uninstalling ?? false;
  return stopOnSignal({
    log,
    drainMs: config.drainMs ?? 0,
    // Uninstalling releases every pod first (iptables commands, each bounded by its own timeout).
    marginMs: () => STOP_MARGIN_MS + (releaseAll() ? UNINSTALL_MARGIN_MS : 0),
    stopping: 'stopping: capture stays installed for the next agent',
    stop: (cut) => {
      const all = releaseAll();
      lifecycle?.stop();
      if (all) log.info('uninstalling: releasing every pod and removing the pinned state');
      // The lease is released at once (bounded, in parallel with the drain), so another
      // agent writes statuses while this one drains.
      // Uninstalling removes this node's MeshMembers too; otherwise the next agent keeps them.
      const membersDone = all ? members?.removeAll(MEMBERS_REMOVAL_MS) : members?.stop();
      return Promise.all([leader?.stop(), agent.stop(all, cut), membersDone]).then(() => undefined);
    },
    finally: removePid,
  });
}

const DEFAULT_LEASE_SECONDS = 15;

/** `--leader-election-lease-seconds`: a whole number of seconds, at least 1 (the Lease's leaseDurationSeconds). */
function parseLeaseSeconds(text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(n) || n < 1) {
    throw new NodemeshError('ERR_NM_USAGE', `--leader-election-lease-seconds must be a whole number of seconds, at least 1, got '${text ?? ''}'`);
  }
  return n;
}

/** Extra time the stop may take when it releases every pod (uninstall, `sim down`). */
const UNINSTALL_MARGIN_MS = 60_000;

