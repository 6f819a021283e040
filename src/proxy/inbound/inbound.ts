import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WorkloadInfo } from '../../mesh/workload-identity';
import type { ConnectionInfo } from '../connection-info';
import { connectIn } from '../connect';
import type { ProxyInputs } from '../inputs';
import type { LocalPod } from '../local-pods';
import { formatAddress, type TrackSocket } from '../open-socket';
import { forwardTcp, refuseConnection } from '../tcp-forward';
import type { UpstreamTransport } from '../upstream/transport';
import { decideInbound, inboundSource, type InboundFacts } from './decide';
import { TunnelServer } from './tunnel-server';

/** How long delivering a tunnel stream into its pod may take to connect. */
const DELIVER_CONNECT_MS = 5000;

/**
 * The inbound side: what arrives for a pod of this node, either captured on its 15006
 * listener (plaintext from outside the mesh, or from a sidecar) or as a stream of the
 * tunnel (15008) from another node's proxy. Both are decided by `decideInbound` and
 * delivered into the pod's namespace from 127.0.0.6.
 */
export class Inbound {
  private readonly tunnelServer: TunnelServer;

  constructor(private readonly inputs: ProxyInputs) {
    this.tunnelServer = new TunnelServer({
      deliver: (target, meta) => {
        const decision = decideInbound(inputs.config.current, this.tunnelFacts(target, meta));
        if (decision.kind === 'refuse') return Promise.reject(Object.assign(new Error(decision.reason), { status: decision.status }));
        // The client checked that this end is `listenerIdentity`: deliver only to a pod that is.
        if (decision.destination.principal !== meta.listenerIdentity) {
          return Promise.reject(Object.assign(new Error(`${target.address} is ${decision.destination.principal ?? 'unknown'}, not ${meta.listenerIdentity} whose certificate this session saw`), { status: 403 }));
        }
        const local = inputs.pods.byAddress(target.address)!;
        return connectIn(local.network, target, DELIVER_CONNECT_MS, true).then((s) => {
          inputs.istio.tcpOpened(streamLabels(decision.source, decision.destination));
          return s;
        });
      },
      onHandshakeFailure: (reason) => {
        inputs.metrics.tlsFailures.inc({ side: 'server', reason: reason.includes('certificate') ? 'no_client_certificate' : 'handshake' });
      },
      onStream: (info) => {
        // The destination's half of the story (Istio's reporter="destination"): the
        // source node's proxy reported the requests; this side reports the connection.
        const config = inputs.config.current;
        const facts = this.tunnelFacts(info.target, info);
        const source = inboundSource(config, facts);
        const destination = facts.localPod ? config.workload(facts.localPod) : undefined;
        const labels = streamLabels(source, destination);
        const flags = info.error ? 'UC' : '-';
        inputs.istio.tcpClosed({ ...labels, responseFlags: flags, sentBytes: info.bytesIn, receivedBytes: info.bytesOut });
        inputs.accessLog?.tcp({
          startTime: info.startedAt,
          durationMs: info.durationMs,
          reporter: 'destination',
          ...(source ? { source } : {}),
          sourceAddress: info.peer,
          mtls: true,
          ...(destination ? { destination } : {}),
          upstreamHost: `${info.target.address}:${info.target.port}`,
          responseFlags: flags,
          bytesReceived: info.bytesIn,
          bytesSent: info.bytesOut,
        });
        inputs.logger.debug({ tunnel: info }, 'tunnel stream closed');
      },
    }, inputs.logger.child({ component: 'tunnel' }));
  }

  private tunnelFacts(target: { address: string; port: number }, meta: { peerIdentity: string; peer: string }): InboundFacts {
    return { target, localPod: this.inputs.pods.byAddress(target.address)?.pod, peer: meta.peer, peerIdentity: meta.peerIdentity };
  }

  /** A connection accepted on a pod's inbound listener (15006): delivered to the pod's app. */
  accept(client: Socket, local: LocalPod, track: TrackSocket): void {
    client.setNoDelay(true);
    track(client, 'inbound');
    client.pause();
    client.on('error', () => undefined);
    const { pod, key, network } = local;
    const source = formatAddress({ address: client.remoteAddress, port: client.remotePort });
    const facts = { direction: 'inbound' as const, pod, podKey: key, sourceAddress: source };
    const original = network.originalDestination(client, this.inputs.settings.inboundPort);
    if (!original) {
      refuseConnection(this.inputs, client, facts, undefined, 'no original destination for an inbound connection');
      return;
    }
    // The listener is the pod's own: what reaches it is for that pod.
    const decision = decideInbound(this.inputs.config.current, { target: original, localPod: pod, peer: client.remoteAddress ?? '' });
    if (decision.kind === 'refuse') {
      if (decision.policy) this.inputs.metrics.plaintextRefused.inc({ namespace: pod.namespace, pod: pod.name, policy: decision.policy });
      refuseConnection(this.inputs, client, facts, original, decision.reason);
      return;
    }
    const conn: ConnectionInfo = { ...facts, original, protocol: 'http1' };
    const toApp: UpstreamTransport = { kind: 'local', key: `local:${key}`, open: (target, timeoutMs): Promise<Duplex> => connectIn(network, target, timeoutMs, true) };
    forwardTcp(this.inputs, client, conn, {
      address: original.address,
      port: original.port,
      resolution: 'local app',
      destination: decision.destination,
      ...(decision.source ? { source: decision.source } : {}),
    }, toApp, track);
  }

  /** A connection accepted on a pod's tunnel listener (15008): mutual TLS as that pod's workload. */
  acceptTunnel(socket: Socket, local: LocalPod, track: TrackSocket): void {
    socket.setNoDelay(true);
    track(socket, 'tunnel');
    socket.on('error', () => undefined);
    const principal = this.inputs.config.current.workload(local.pod).principal;
    const credential = principal ? this.inputs.identity?.current(principal) : undefined;
    if (!principal || !credential) {
      this.inputs.metrics.tlsFailures.inc({ side: 'server', reason: 'no_server_certificate' });
      this.inputs.logger.warn({ pod: local.key, principal }, 'tunnel connection refused: this pod has no certificate');
      socket.destroy();
      return;
    }
    this.tunnelServer.accept(socket, { ...credential, listenerIdentity: principal });
  }

  /** The drain begins: GOAWAY to every tunnel session. */
  stopAccepting(): void {
    this.tunnelServer.close();
  }

  destroy(): void {
    this.tunnelServer.destroy();
  }
}

/** The labels of a tunnel stream: always mutual TLS (15008 accepts nothing else). */
function streamLabels(source: WorkloadInfo | undefined, destination: WorkloadInfo | undefined) {
  return { reporter: 'destination' as const, ...(source ? { source } : {}), ...(destination ? { destination } : {}), mtls: true };
}
