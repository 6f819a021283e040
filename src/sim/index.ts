/**
 * The local node simulator (DESIGN.md, "The local node simulator"): nodes and pods as
 * network namespaces and cgroups, built from the same YAML as the embedded source.
 *
 *   const state = await simUp({ name: 'demo', source: 'deploy/examples/sim' });
 *   const server = execInPod(state, 'demo/b1', ['node', 'server.js']);
 *   ...
 *   await simDown('demo');
 */
export { simUp, type SimUpOptions } from './up';
export { simDown, type SimDownReport } from './down';
export { simStatus, formatStatus, type SimStatus, type SimNodeStatus, type SimPodStatus } from './status';
export { loadSimState, tryLoadSimState, type SimState, type SimNode, type SimPod, type SimService, type SimServicePort, type SimCreated } from './state';
export { execInPod, execOnNode, runInPod, waitExit, findPod, findNode } from './exec';
export { checkSealed } from './seal';
export { requireCgroup2Mount } from './cgroup';
export { DEFAULT_SIM_NAME, netnsPrefix, nodeAddresses } from './names';
