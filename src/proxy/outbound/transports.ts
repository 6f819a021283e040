import type { Duplex } from 'node:stream';
import { describeError, hasCode } from '../../errors';
import { getOrCreate, newMap, newWeakMap } from '../../util/get-or-create';
import type { ConnectionInfo } from '../connection-info';
import { connectIn } from '../connect';
import type { ProxyInputs } from '../inputs';
import type { ProxyConfig } from '../proxy-config';
import type { UpstreamTransport } from '../upstream/transport';
import { decideTransport, type TransportDecision } from './decide';
import { TunnelClient } from './tunnel-client';

/**
 * Turns transport decisions into byte streams: the in-process hand-over, the tunnel to
 * another node's proxy, or a direct socket from the source pod. Asked for every request;
 * the answer only changes with the configuration or the pods enrolled here, so it is kept
 * per configuration and forgotten when pods come and go (keyed by objects and strings
 * that already exist: no key string to build and hash).
 */
export class OutboundTransports {
  readonly tunnel = new TunnelClient();
  private cache = new WeakMap<ProxyConfig, WeakMap<ConnectionInfo, Map<string, UpstreamTransport>>>();
  private cachedGeneration = -1;

  constructor(private readonly inputs: ProxyInputs) {}

  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport {
    const config = this.inputs.config.current;
    if (this.cachedGeneration !== this.inputs.pods.generation) {
      this.cache = new WeakMap();
      this.cachedGeneration = this.inputs.pods.generation;
    }
    const byConn = getOrCreate(this.cache, config, newWeakMap<ConnectionInfo, Map<string, UpstreamTransport>>);
    const byAddress = getOrCreate(byConn, conn, newMap<string, UpstreamTransport>);
    let transport = byAddress.get(endpoint.address);
    if (!transport) {
      transport = this.make(conn, endpoint, this.decide(conn, config, endpoint));
      byAddress.set(endpoint.address, transport);
    }
    return transport;
  }

  decide(conn: ConnectionInfo, config: ProxyConfig, endpoint: { address: string }): TransportDecision {
    const { pods, settings, nodeName, tunnelEnabled } = this.inputs;
    const source = pods.get(conn.podKey);
    return decideTransport(
      config,
      { nodeName, tunnelEnabled, tunnelPort: settings.tunnelPort, sourceEnrolled: source !== undefined, localPodAt: (ip) => pods.byAddress(ip)?.pod },
      source?.pod ?? conn.pod!,
      endpoint,
    );
  }

  private make(conn: ConnectionInfo, endpoint: { address: string }, decision: TransportDecision): UpstreamTransport {
    const { pods, logger } = this.inputs;
    switch (decision.kind) {
      case 'local': {
        const local = pods.byAddress(endpoint.address)!;
        return { kind: 'local', key: `local:${local.key}`, open: (target, timeoutMs) => connectIn(local.network, target, timeoutMs, true) };
      }
      case 'tunnel': {
        const source = pods.get(conn.podKey)!;
        const poolKey = `tunnel:${conn.podKey}:${decision.node}:${decision.via.address}`;
        const meta = { sourceWorkload: `${source.pod.namespace}/${decision.present.name}`, originalDestination: `${conn.original.address}:${conn.original.port}` };
        return {
          kind: 'tunnel',
          key: poolKey,
          open: (target, timeoutMs): Promise<Duplex> =>
            this.tunnel
              .open(poolKey, decision.via, () => connectIn(source.network, decision.via, timeoutMs, false), target, meta, timeoutMs)
              .catch((err: unknown) => {
                // No proxy answering on that node (not installed, restarting): go direct
                // rather than fail the pod's traffic.
                if (hasCode(err, 'ECONNREFUSED') || hasCode(err, 'ERR_NM_TUNNEL_REFUSED')) {
                  logger.debug({ node: decision.node, err: describeError(err) }, 'tunnel unavailable, connecting directly');
                  return connectIn(source.network, target, timeoutMs, false);
                }
                throw err;
              }),
        };
      }
      case 'source-gone':
        return { kind: 'direct', key: `direct:${conn.podKey}`, open: () => Promise.reject(Object.assign(new Error(`pod ${conn.podKey} is no longer enrolled`), { code: 'ECONNREFUSED' })) };
      case 'direct': {
        const source = pods.get(conn.podKey)!;
        return { kind: 'direct', key: `direct:${conn.podKey}`, open: (target, timeoutMs) => connectIn(source.network, target, timeoutMs, false) };
      }
    }
  }
}
