/**
 * Node.js flags for the processes that carry traffic (the node agent and the sidecar). The
 * container image's ENTRYPOINT (deploy/Dockerfile) passes the same flags; keep them equal.
 *
 * --max-semi-space-size=8: V8 lets the young generation grow to two 16 MiB semi-spaces
 * (Node 20 on 64-bit), and a proxy's per-request garbage fills them, so they stay resident.
 * Measured on the 2-core test VM (agent peak RSS under `nodemesh bench`, same node; the
 * garbage collector's share of the agent's CPU profile at full load, two runs each):
 *   16 MiB (default)  144-145 MiB  GC 2.5-2.8%
 *    8 MiB            126-127 MiB  GC 3.6-4.6%
 *    4 MiB            115-117 MiB  GC 6.4-6.5%
 * Smaller semi-spaces mean more scavenges, each costing about the same (the live set is
 * the requests in flight); 8 MiB keeps about two thirds of the saving for about a third
 * of the extra collection time.
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
