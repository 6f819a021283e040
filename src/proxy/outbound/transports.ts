import type { Duplex } from 'node:stream';
import { describeError, hasCode, NodemeshError } from '../../errors';
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
  readonly tunnel = new TunnelClient(() => this.inputs.metrics.tunnelSessions.inc({ side: 'client' }));
  private cache = new WeakMap<ProxyConfig, WeakMap<ConnectionInfo, Map<string, Map<number, UpstreamTransport>>>>();
  private cachedGeneration = -1;

  constructor(private readonly inputs: ProxyInputs) {
    // A renewed certificate (or a new trust bundle): sessions made with the old one take no
    // new streams; their streams in flight finish on them.
    inputs.identity?.on('rotated', (_id, _next, previous) => this.tunnel.retire((key) => key.includes(`:g${previous.generation}:`)));
  }

  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport {
    const config = this.inputs.config.current;
    if (this.cachedGeneration !== this.inputs.pods.generation) {
      this.cache = new WeakMap();
      this.cachedGeneration = this.inputs.pods.generation;
    }
    const byConn = getOrCreate(this.cache, config, newWeakMap<ConnectionInfo, Map<string, Map<number, UpstreamTransport>>>);
    const byAddress = getOrCreate(byConn, conn, newMap<string, Map<number, UpstreamTransport>>);
    // By port too: PeerAuthentication's portLevelMtls can make one port DISABLE.
    const byPort = getOrCreate(byAddress, endpoint.address, newMap<number, UpstreamTransport>);
    let transport = byPort.get(endpoint.port);
    if (!transport) {
      transport = this.make(conn, endpoint, this.decide(conn, config, endpoint));
      byPort.set(endpoint.port, transport);
    }
    return transport;
  }

  decide(conn: ConnectionInfo, config: ProxyConfig, endpoint: { address: string; port: number }): TransportDecision {
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
        // With a CA, pods are served only once they have their certificates, so this proxy
        // holds both ends' and has authenticated both workloads: the hand-over counts as
        // mutual TLS, as the tunnel between them would be (and as ztunnel's local path reports).
        return { kind: 'local', mtls: this.inputs.identity !== undefined, key: `local:${local.key}`, open: (target, timeoutMs) => connectIn(local.network, target, timeoutMs, true) };
      }
      case 'tunnel': {
        const source = pods.get(conn.podKey)!;
        const meta = { originalDestination: `${conn.original.address}:${conn.original.port}` };
        const { identity } = this.inputs;
        return {
          kind: 'tunnel',
          mtls: true,
          // The authorization generation: see ProxyConfig.authorizationGeneration.
          key: `tunnel:${conn.podKey}:${decision.node}:${decision.via.address}:a${this.inputs.config.current.authorizationGeneration}`,
          open: (target, timeoutMs, carries): Promise<Duplex> => {
            // The source's certificate, as it is now: a renewal moves new streams to a new session.
            const credential = decision.present.principal ? identity?.current(decision.present.principal) : undefined;
            if (!credential || !decision.expect.principal) {
              this.inputs.metrics.tlsFailures.inc({ side: 'client', reason: 'no_certificate' });
              return Promise.reject(new NodemeshError('ERR_NM_NO_IDENTITY', `pod ${conn.podKey} has no certificate for ${decision.present.principal ?? 'its service account'}: its traffic to ${target.address} cannot be authenticated`, {
                hint: 'nothing is sent in plaintext instead; check the pod\'s identity in `nodemesh status` and the CA',
              }));
            }
            const poolKey = `tunnel:${conn.podKey}:g${credential.generation}:${decision.node}:${decision.via.address}`;
            return this.tunnel
              .open(poolKey, decision.via, () => connectIn(source.network, decision.via, timeoutMs, false), target, carries ? { ...meta, protocol: carries } : meta, timeoutMs, { context: credential.context, expectedServerId: decision.expect.principal })
              .catch((err: unknown) => {
                if (hasCode(err, 'ERR_NM_TUNNEL_TLS')) this.inputs.metrics.tlsFailures.inc({ side: 'client', reason: 'handshake' });
                // No proxy answering on that node (not installed, restarting): go direct
                // rather than fail the pod's traffic. Never after a failed handshake: a peer
                // that cannot prove its identity gets nothing, in plaintext least of all.
                // Nor to a STRICT port: plaintext would bypass the destination's policy if
                // its capture failed open.
                if (!decision.strict && (hasCode(err, 'ECONNREFUSED') || hasCode(err, 'ERR_NM_TUNNEL_REFUSED'))) {
                  logger.debug({ node: decision.node, err: describeError(err) }, 'tunnel unavailable, connecting directly');
                  return connectIn(source.network, target, timeoutMs, false);
                }
                throw err;
              });
          },
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
