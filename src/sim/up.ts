import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DirectorySource } from '../config/directory-source';
import { coreKinds } from '../kinds/registry';
import { NodemeshError } from '../errors';
import { logger } from '../log';
import { detectIptablesBackend } from '../netfilter/iptables';
import { endCgroupProcesses, ensureCgroupDir, requireCgroup2Mount, removeCgroupTree } from './cgroup';
import { buildHostsFile, type HostsPod } from './hosts';
import { ensureNodeDns, nodeDnsAddresses, podNameservers, writeDnsZone } from './dns/node-dns';
import { buildResolvConf } from './dns/resolv-conf';
import { applyServiceRules } from './kube-proxy';
import {
  DEFAULT_SIM_NAME,
  ETC_NETNS_DIR,
  FABRIC_BRIDGE,
  NODE_BRIDGE,
  STATE_ROOT,
  UPLINK,
  agentCgroup,
  bridgeMac,
  dnsCgroup,
  etcNetnsDir,
  fabricNetns,
  netnsPath,
  netnsPrefix,
  nodeCgroup,
  podCgroup,
  podsCgroup,
  simCgroupRoot,
  stateFile,
  validateSimName,
} from './names';
import { deleteNetns, ensureNetns, ipIn, ipInStatus, ipJson, linkExists, listNetns, sysctlIn } from './netns';
import { assertSealed } from './seal';
import { reconcileSidecars } from './sidecars';
import { ensureSimCa, identityCgroup } from './identity';
import { StateStore, emptyCreated, ensureStateDir, tryLoadSimState, withSimLock, type SimNode, type SimPod, type SimState } from './state';
import { nodeRoutes, planTopology, type PlannedNode, type PlannedPod, type TopologyPlan } from './topology';

/**
 * `nodemesh sim up`: builds (or reconciles) a simulation from a YAML directory.
 * Every step is idempotent: running `up` again with the same objects changes nothing;
 * with changed objects it adds and removes nodes, pods, routes and Service rules.
 */

const log = logger('sim');

export interface SimUpOptions {
  /** Simulation name (default "nm"): 1-12 lower-case letters and digits. */
  name?: string;
  /** Directory (or file) of Kubernetes YAML. */
  source: string;
  /** Lifetime of the workload certificates the simulation's CA issues (a duration, default 24h). */
  workloadLifetime?: string;
}

const BRIDGE_NF_HINT =
  'the br_netfilter module is not loaded; run `modprobe br_netfilter` (without it, replies between two pods on one node bypass the Service DNAT)';

export function requireRootUser(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new NodemeshError('ERR_NM_SIM_PRIVILEGES', 'the simulator needs root (network namespaces, cgroups, iptables)', {
      hint: 'run it with sudo',
    });
  }
}

export async function simUp(options: SimUpOptions): Promise<SimState> {
  const name = validateSimName(options.name ?? DEFAULT_SIM_NAME);
  requireRootUser();
  const sourcePath = resolve(options.source);
  const source = await new DirectorySource(sourcePath, { kinds: coreKinds() }).load();
  for (const r of source.rejected) log.warn({ sim: name, file: r.file, object: r.object }, `not applied: ${r.reason}`);
  const cgroup2 = requireCgroup2Mount();
  if (!existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
    throw new NodemeshError('ERR_NM_SIM_BR_NETFILTER', 'net.bridge.bridge-nf-call-iptables does not exist on this host', { hint: BRIDGE_NF_HINT });
  }

  return withSimLock(name, async () => {
    const previous = tryLoadSimState(name);
    const backend = previous?.iptablesBackend ?? (await detectIptablesBackend()).backend;
    const plan = planTopology(name, source, previous?.nodes ?? []);
    for (const s of plan.skipped) log.warn({ sim: name, object: s.object }, `not simulated: ${s.reason}`);

    const now = new Date().toISOString();
    const { createdRoot } = ensureStateDir(name);
    const state: SimState = {
      version: 1,
      name,
      source: sourcePath,
      phase: 'building',
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      stateFile: stateFile(name),
      cgroup2Mount: cgroup2,
      cgroupRoot: simCgroupRoot(cgroup2, name),
      iptablesBackend: backend,
      fabric: { netns: fabricNetns(name), netnsPath: netnsPath(fabricNetns(name)), bridge: FABRIC_BRIDGE },
      nodes: previous?.nodes ?? [],
      pods: previous?.pods ?? [],
      services: previous?.services ?? [],
      // The CA of a previous `up` is kept while it runs (src/sim/identity.ts).
      ...(previous?.identity ? { identity: previous.identity } : {}),
      rejected: [...source.rejected.map((r) => ({ file: r.file, object: r.object, reason: r.reason })), ...plan.skipped.map((s) => ({ file: '(simulator)', object: s.object, reason: s.reason }))],
      created: previous?.created ?? emptyCreated(),
    };
    const store = new StateStore(state);
    if (createdRoot) store.record('dirs', STATE_ROOT);
    store.save();

    await ensureFabric(store);
    await removeStale(store, plan);
    await sweepUnplanned(store, plan);
    for (const node of plan.nodes) await ensureNode(store, node);
    for (const pod of plan.pods) await ensurePod(store, plan, pod);
    for (const node of plan.nodes) await reconcileRoutes(plan, node);
    const activePods = plan.pods.map((p) => p.pod);
    let services = state.services;
    for (const node of plan.nodes) services = await applyServiceRules(backend, netnsPath(node.netns), source.services, activePods);
    state.services = plan.nodes.length > 0 ? services : [];
    writeHostsFiles(store, plan, source.services);
    store.save();

    await assertSealed(state);
    // DNS before any program of the simulation starts (the CA's and sidecars' included).
    await ensureNodeDns(store);
    // The CA before the sidecars and agents, which get their certificates from it.
    await ensureSimCa(store, options.workloadLifetime ? { workloadLifetime: options.workloadLifetime } : {});
    // Sidecar-mode pods: the init step, then the pod's own proxy (left running).
    await reconcileSidecars(store, plan);
    state.phase = 'ready';
    store.save();
    log.info({ sim: name, nodes: state.nodes.length, pods: state.pods.length, services: state.services.length }, 'simulation ready');
    return state;
  });
}

async function ensureFabric(store: StateStore): Promise<void> {
  const { netns } = store.state.fabric;
  const record = (n: string): void => store.record('netns', n);
  if (await ensureNetns(netns, record)) {
    // The fabric is a bare switch: no addresses at all, not even IPv6 link-local ones.
    await sysctlIn(netns, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1, 'net.ipv4.ip_forward': 0 });
  }
  if (!(await linkExists(netns, FABRIC_BRIDGE))) await ipIn(netns, ['link', 'add', FABRIC_BRIDGE, 'type', 'bridge']);
  await ipIn(netns, ['link', 'set', FABRIC_BRIDGE, 'up']);
}

async function ensureNode(store: StateStore, node: PlannedNode): Promise<void> {
  const { state } = store;
  const record = (n: string): void => store.record('netns', n);
  await ensureNetns(node.netns, record);
  await sysctlIn(
    node.netns,
    {
      'net.ipv6.conf.all.accept_dad': 0,
      'net.ipv6.conf.default.accept_dad': 0,
      'net.ipv4.conf.all.rp_filter': 0,
      'net.ipv4.conf.default.rp_filter': 0,
      'net.ipv4.ip_forward': 1,
      'net.ipv6.conf.all.forwarding': 1,
      'net.bridge.bridge-nf-call-iptables': 1,
      'net.bridge.bridge-nf-call-ip6tables': 1,
    },
    { 'net.bridge.bridge-nf-call-iptables': BRIDGE_NF_HINT, 'net.bridge.bridge-nf-call-ip6tables': BRIDGE_NF_HINT },
  );
  // Link to the fabric: created from the fabric side, the peer lands in the node.
  if (!(await linkExists(node.netns, UPLINK))) {
    if (await linkExists(state.fabric.netns, node.fabricVeth)) await ipIn(state.fabric.netns, ['link', 'delete', node.fabricVeth]);
    await ipIn(state.fabric.netns, ['link', 'add', node.fabricVeth, 'type', 'veth', 'peer', 'name', UPLINK, 'netns', node.netns]);
  }
  await ipIn(state.fabric.netns, ['link', 'set', node.fabricVeth, 'master', FABRIC_BRIDGE, 'up']);
  await ipIn(node.netns, ['addr', 'replace', `${node.fabricIP}/24`, 'dev', UPLINK]);
  await ipIn(node.netns, ['addr', 'replace', `${node.fabricIPv6}/64`, 'dev', UPLINK, 'nodad']);
  await ipIn(node.netns, ['link', 'set', UPLINK, 'up']);
  // A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so removing a pod
  // would change the gateway's MAC under the other pods' ARP caches.
  const mac = bridgeMac(node.index);
  if (!(await linkExists(node.netns, NODE_BRIDGE))) await ipIn(node.netns, ['link', 'add', NODE_BRIDGE, 'address', mac, 'type', 'bridge']);
  await ipIn(node.netns, ['link', 'set', NODE_BRIDGE, 'address', mac]);
  await ipIn(node.netns, ['addr', 'replace', `${node.gateway}/24`, 'dev', NODE_BRIDGE]);
  await ipIn(node.netns, ['addr', 'replace', `${node.gatewayV6}/64`, 'dev', NODE_BRIDGE, 'nodad']);
  await ipIn(node.netns, ['link', 'set', NODE_BRIDGE, 'up']);

  const mount = state.cgroup2Mount;
  const recordCg = (p: string): void => store.record('cgroups', p);
  ensureCgroupDir(mount, podsCgroup(mount, state.name, node.name), recordCg);
  ensureCgroupDir(mount, agentCgroup(mount, state.name, node.name), recordCg);

  const entry: SimNode = {
    name: node.name,
    index: node.index,
    netns: node.netns,
    netnsPath: netnsPath(node.netns),
    fabricIP: node.fabricIP,
    fabricIPv6: node.fabricIPv6,
    podCIDR: node.podCIDR,
    podCIDRv6: node.podCIDRv6,
    gateway: node.gateway,
    gatewayV6: node.gatewayV6,
    bridge: NODE_BRIDGE,
    fabricVeth: node.fabricVeth,
    cgroup: nodeCgroup(mount, state.name, node.name),
    podsCgroup: podsCgroup(mount, state.name, node.name),
    agentCgroup: agentCgroup(mount, state.name, node.name),
    hostsFile: `${etcNetnsDir(node.netns)}/hosts`,
    // A running DNS server stays with its node (src/sim/dns/node-dns.ts decides whether it still fits).
    ...dnsFields(state.nodes.find((n) => n.name === node.name)),
  };
  state.nodes = [...state.nodes.filter((n) => n.name !== node.name), entry].sort((a, b) => a.index - b.index);
  store.save();
}

function dnsFields(previous: SimNode | undefined): Pick<SimNode, 'dnsPid' | 'dnsCgroup' | 'dnsAddresses'> {
  if (!previous) return {};
  return {
    ...(previous.dnsPid !== undefined ? { dnsPid: previous.dnsPid } : {}),
    ...(previous.dnsCgroup !== undefined ? { dnsCgroup: previous.dnsCgroup } : {}),
    ...(previous.dnsAddresses !== undefined ? { dnsAddresses: previous.dnsAddresses } : {}),
  };
}

async function ensurePod(store: StateStore, plan: TopologyPlan, planned: PlannedPod): Promise<void> {
  const { state } = store;
  const node = plan.nodes.find((n) => n.name === planned.node)!;
  const { pod } = planned;
  if (!pod.hostNetwork) {
    const ns = planned.netns;
    const veth = planned.hostVeth!;
    const created = await ensureNetns(ns, (n) => store.record('netns', n));
    if (created) await sysctlIn(ns, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    if (!(await linkExists(ns, UPLINK))) {
      if (await linkExists(node.netns, veth)) await ipIn(node.netns, ['link', 'delete', veth]);
      await ipIn(node.netns, ['link', 'add', veth, 'type', 'veth', 'peer', 'name', UPLINK, 'netns', ns]);
    }
    await ipIn(node.netns, ['link', 'set', veth, 'master', NODE_BRIDGE, 'up']);
    // Hairpin, as kubelet sets it: a pod reaching itself through its Service gets its
    // DNATed packet bridged back out of the port it came in on.
    await ipIn(node.netns, ['link', 'set', 'dev', veth, 'type', 'bridge_slave', 'hairpin', 'on']);
    if (planned.ipv4 !== undefined) await ipIn(ns, ['addr', 'replace', `${planned.ipv4}/${planned.ipv4OnLink ? 24 : 32}`, 'dev', UPLINK]);
    if (planned.ipv6 !== undefined) await ipIn(ns, ['addr', 'replace', `${planned.ipv6}/${planned.ipv6OnLink ? 64 : 128}`, 'dev', UPLINK, 'nodad']);
    await ipIn(ns, ['link', 'set', UPLINK, 'up']);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
    if (planned.ipv4 !== undefined) await ipIn(ns, ['-4', 'route', 'replace', 'default', 'via', node.gateway, 'dev', UPLINK, 'onlink']);
    if (planned.ipv6 !== undefined) await ipIn(ns, ['-6', 'route', 'replace', 'default', 'via', node.gatewayV6, 'dev', UPLINK, 'onlink']);
  }
  const mount = state.cgroup2Mount;
  const cgroup = podCgroup(mount, state.name, node.name, pod.namespace, pod.name, pod.uid);
  ensureCgroupDir(mount, cgroup, (p) => store.record('cgroups', p));

  const previous = state.pods.find((p) => p.key === planned.key);
  const entry: SimPod = {
    key: planned.key,
    namespace: pod.namespace,
    name: pod.name,
    uid: pod.uid,
    node: node.name,
    // A hostNetwork pod's addresses are its node's, as in a cluster.
    ips: pod.hostNetwork ? [node.fabricIP, node.fabricIPv6] : [planned.ipv4, planned.ipv6].filter((ip): ip is string => ip !== undefined),
    hostNetwork: pod.hostNetwork,
    netns: planned.netns,
    netnsPath: netnsPath(planned.netns),
    cgroup,
    hostVeth: planned.hostVeth,
    hostsFile: `${etcNetnsDir(planned.netns)}/hosts`,
    resolvConf: `${etcNetnsDir(planned.netns)}/resolv.conf`,
    labels: pod.labels,
    annotations: pod.annotations,
    serviceAccount: pod.serviceAccount,
    containerPorts: pod.containerPorts,
    mode: planned.mode,
    // A running sidecar stays with its pod (src/sim/sidecars.ts decides what to do with it).
    ...(previous?.sidecarPid !== undefined ? { sidecarPid: previous.sidecarPid } : {}),
    ...(previous?.sidecarAdminSocket !== undefined ? { sidecarAdminSocket: previous.sidecarAdminSocket } : {}),
  };
  state.pods = [...state.pods.filter((p) => p.key !== planned.key), entry].sort((a, b) => (a.key < b.key ? -1 : 1));
  store.save();
}

/** Pods and nodes of the previous `up` that are gone or changed (node, addresses, hostNetwork). */
async function removeStale(store: StateStore, plan: TopologyPlan): Promise<void> {
  const { state } = store;
  const wantedPods = new Map(plan.pods.map((p) => [p.key, p]));
  for (const pod of [...state.pods]) {
    const want = wantedPods.get(pod.key);
    const same =
      want !== undefined &&
      want.node === pod.node &&
      want.pod.hostNetwork === pod.hostNetwork &&
      (pod.hostNetwork || JSON.stringify([want.ipv4, want.ipv6].filter(Boolean)) === JSON.stringify(pod.ips));
    if (same) continue;
    log.info({ sim: state.name, pod: pod.key }, want ? 'pod changed: recreating it' : 'pod removed');
    await endCgroupProcesses(pod.cgroup);
    if (!pod.hostNetwork) {
      await deleteNetns(pod.netns);
      store.forget('netns', pod.netns);
      removeEtcNetns(store, pod.netns);
    }
    await removeCgroupTree(pod.cgroup);
    store.forget('cgroups', pod.cgroup);
    state.pods = state.pods.filter((p) => p.key !== pod.key);
    store.save();
  }
  const wantedNodes = new Map(plan.nodes.map((n) => [n.name, n]));
  for (const node of [...state.nodes]) {
    const want = wantedNodes.get(node.name);
    if (want && want.index === node.index) continue;
    log.info({ sim: state.name, node: node.name }, 'node removed');
    await endCgroupProcesses(node.cgroup);
    for (const pod of state.pods.filter((p) => p.node === node.name)) {
      await deleteNetns(pod.netns);
      store.forget('netns', pod.netns);
      removeEtcNetns(store, pod.netns);
    }
    state.pods = state.pods.filter((p) => p.node !== node.name);
    await deleteNetns(node.netns);
    store.forget('netns', node.netns);
    removeEtcNetns(store, node.netns);
    await removeCgroupTree(node.cgroup);
    for (const cg of [...state.created.cgroups]) if (cg === node.cgroup || cg.startsWith(`${node.cgroup}/`)) store.forget('cgroups', cg);
    state.nodes = state.nodes.filter((n) => n.name !== node.name);
    store.save();
  }
}

/**
 * What a crashed `up` created before it could record the pod or node in the state, and
 * that the new plan does not want: namespaces, hosts dirs and cgroups with our names.
 */
async function sweepUnplanned(store: StateStore, plan: TopologyPlan): Promise<void> {
  const { state } = store;
  const wanted = new Set([state.fabric.netns, ...plan.nodes.map((n) => n.netns), ...plan.pods.map((p) => p.netns)]);
  const prefix = netnsPrefix(state.name);
  for (const netns of await listNetns()) {
    if (!netns.startsWith(prefix) || wanted.has(netns)) continue;
    log.info({ sim: state.name, netns }, 'removing a namespace no object wants');
    await deleteNetns(netns);
    store.forget('netns', netns);
  }
  if (existsSync(ETC_NETNS_DIR)) {
    for (const entry of readdirSync(ETC_NETNS_DIR)) if (entry.startsWith(prefix) && !wanted.has(entry)) removeEtcNetns(store, entry);
  }
  const wantedCgroups = new Set<string>();
  for (const node of plan.nodes) {
    wantedCgroups.add(nodeCgroup(state.cgroup2Mount, state.name, node.name));
    wantedCgroups.add(podsCgroup(state.cgroup2Mount, state.name, node.name));
    wantedCgroups.add(agentCgroup(state.cgroup2Mount, state.name, node.name));
    wantedCgroups.add(dnsCgroup(state.cgroup2Mount, state.name, node.name));
  }
  for (const pod of plan.pods) wantedCgroups.add(podCgroup(state.cgroup2Mount, state.name, pod.node, pod.pod.namespace, pod.pod.name, pod.pod.uid));
  wantedCgroups.add(identityCgroup(state));
  const root = state.cgroupRoot;
  // Only the levels the simulator creates: <root>/<node>, <root>/<node>/{pods,agent}, <root>/<node>/pods/<pod>.
  const levels = (dir: string): string[] => {
    try {
      return readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => `${dir}/${e.name}`);
    } catch {
      return [];
    }
  };
  const candidates = levels(root).flatMap((node) => [node, ...levels(node), ...levels(`${node}/pods`)]);
  for (const dir of candidates.sort((a, b) => b.length - a.length)) {
    if (wantedCgroups.has(dir) || !existsSync(dir)) continue;
    log.info({ sim: state.name, cgroup: dir }, 'removing a cgroup no object wants');
    await endCgroupProcesses(dir);
    await removeCgroupTree(dir);
    for (const cg of [...state.created.cgroups]) if (cg === dir || cg.startsWith(`${dir}/`)) store.forget('cgroups', cg);
  }
}

export function removeEtcNetns(store: StateStore, netns: string): void {
  rmSync(etcNetnsDir(netns), { recursive: true, force: true });
  store.forget('etcNetns', etcNetnsDir(netns));
}

interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
}

async function reconcileRoutes(plan: TopologyPlan, node: PlannedNode): Promise<void> {
  const want = nodeRoutes(plan, node.name, NODE_BRIDGE, UPLINK);
  for (const route of want) {
    const args = [`-${route.family}`, 'route', 'replace', route.dst];
    if (route.via !== undefined) args.push('via', route.via);
    args.push('dev', route.dev, 'proto', 'static');
    await ipIn(node.netns, args);
  }
  for (const family of [4, 6] as const) {
    const current = await ipJson<RouteEntry>(node.netns, [`-${family}`, 'route', 'show', 'proto', 'static']);
    for (const route of current) {
      const dst = route.dst.includes('/') ? route.dst : `${route.dst}/${family === 4 ? 32 : 128}`;
      if (want.some((w) => w.family === family && w.dst === dst)) continue;
      if ((await ipInStatus(node.netns, [`-${family}`, 'route', 'delete', dst, 'proto', 'static'])) !== 0) {
        log.warn({ node: node.name, dst }, 'could not delete a stale route');
      }
    }
  }
}

function writeFile(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** The names files of every namespace (hosts, resolv.conf) and the DNS servers' zone. */
function writeHostsFiles(store: StateStore, plan: TopologyPlan, services: Parameters<typeof buildHostsFile>[1]): void {
  const { state } = store;
  if (!existsSync(ETC_NETNS_DIR)) {
    store.record('dirs', ETC_NETNS_DIR);
    mkdirSync(ETC_NETNS_DIR, { recursive: true });
  }
  const pods: HostsPod[] = state.pods.map((p) => ({ namespace: p.namespace, name: p.name, ips: p.ips, labels: p.labels, hostNetwork: p.hostNetwork }));
  const nodes = state.nodes;
  const write = (netns: string, hosts: string, resolvConf: string): void => {
    const dir = etcNetnsDir(netns);
    store.record('etcNetns', dir);
    mkdirSync(dir, { recursive: true });
    writeFile(`${dir}/hosts`, hosts);
    writeFile(`${dir}/resolv.conf`, resolvConf);
  };
  for (const node of plan.nodes) {
    const entry = nodes.find((n) => n.name === node.name)!;
    // A node (and its hostNetwork pods) asks its own server, without a pod namespace's search domain.
    const resolvConf = buildResolvConf({ simName: state.name, owner: `node ${node.name}`, nameservers: nodeDnsAddresses(entry) });
    write(node.netns, buildHostsFile({ simName: state.name, node: node.name }, services, pods, nodes), resolvConf);
  }
  for (const pod of state.pods) {
    if (pod.hostNetwork) continue;
    const node = nodes.find((n) => n.name === pod.node)!;
    const resolvConf = buildResolvConf({ simName: state.name, owner: `pod ${pod.key}`, nameservers: podNameservers(pod, node), namespace: pod.namespace });
    write(pod.netns, buildHostsFile({ simName: state.name, self: { namespace: pod.namespace, name: pod.name, ips: pod.ips } }, services, pods, nodes), resolvConf);
  }
  writeDnsZone(store, services, pods);
}
