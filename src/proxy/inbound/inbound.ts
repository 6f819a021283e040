import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../../errors';
import { serviceHost, type ServiceInfo } from '../../mesh/model';
import type { WorkloadInfo } from '../../mesh/workload-identity';
import { inboundService } from './destination-service';
import { authorizeUpgrade } from '../authz/authorize-upgrade';
import { reportDenial } from '../authz/report-denial';
import type { ConnectionInfo } from '../connection-info';
import { connectIn } from '../connect';
import type { PendingUpgrade } from '../h1/server-connection';
import { HttpFrontend } from '../http/frontend';
import type { ProxyInputs } from '../inputs';
import type { LocalPod } from '../local-pods';
import { formatAddress, type TrackSocket } from '../open-socket';
import { sniff } from '../protocol/sniff';
import { forwardTcp, refuseConnection } from '../tcp-forward';
import { H2Sessions } from '../upstream/h2-sessions';
import { Http1Pools } from '../upstream/http1-pools';
import type { UpstreamTransport } from '../upstream/transport';
import { authorizeConnection, decideInbound, inboundSource, type InboundFacts, type InboundRefusal } from './decide';
import { createInboundPipeline } from './http/inbound-pipeline';
import { TunnelServer, type ServedStream } from './tunnel-server';

/** How long delivering a tunnel stream into its pod may take to connect. */
const DELIVER_CONNECT_MS = 5000;

export interface InboundOptions {
  /** How long to wait for a client's first bytes on a port parsed for L7 before treating it as server-first TCP. */
  sniffTimeoutMs: number;
}

/**
 * The inbound side: what arrives for a pod of this node, either captured on its 15006
 * listener (plaintext from outside the mesh, or from a sidecar) or as a stream of the
 * tunnel (15008) from another node's proxy. Both are decided by `decideInbound`
 * (delivery, PeerAuthentication, authorization) and delivered into the pod's namespace
 * from 127.0.0.6: relayed as bytes when the pod's policies say nothing about HTTP on the
 * port (authorized once, L4), else parsed and authorized request by request (L7).
 */
export class Inbound {
  private readonly tunnelServer: TunnelServer;
  /** The inbound HTTP frontend (15006 connections and tunnel streams); the hand-over takes its plain connections. */
  readonly http: HttpFrontend;
  /** Upstream HTTP/1.1 pools; the hand-over moves their idle connections (NodeProxy). */
  readonly pools = new Http1Pools();
  private readonly sessions = new H2Sessions();

  constructor(private readonly inputs: ProxyInputs, private readonly options: InboundOptions) {
    const pipeline = createInboundPipeline({ config: inputs.config, pods: inputs.pods, pools: this.pools, sessions: this.sessions, istio: inputs.istio, metrics: inputs.metrics, accessLog: inputs.accessLog, logger: inputs.logger });
    this.http = new HttpFrontend(pipeline, (conn, upgrade) => this.upgrade(conn, upgrade), inputs.logger);
    this.tunnelServer = new TunnelServer({
      deliver: (target, meta) => {
        const config = inputs.config.current;
        const facts = this.tunnelFacts(target, meta);
        const decision = decideInbound(config, facts);
        const sourceAddress = formatAddress({ address: meta.peer, port: meta.peerPort });
        if (decision.kind === 'refuse') {
          if (decision.authz && facts.localPod) reportDenial(inputs, facts.localPod, decision.authz, 'l4', { source: sourceAddress, principal: meta.peerIdentity, port: target.port });
          return Promise.reject(Object.assign(new Error(decision.reason), { status: decision.status }));
        }
        // The client checked that this end is `listenerIdentity`: deliver only to a pod that is.
        if (decision.destination.principal !== meta.listenerIdentity) {
          return Promise.reject(Object.assign(new Error(`${target.address} is ${decision.destination.principal ?? 'unknown'}, not ${meta.listenerIdentity} whose certificate this session saw`), { status: 403 }));
        }
        const local = inputs.pods.byAddress(target.address)!;
        const service = inboundService(config, local.pod, target.port, meta.originalDestination);
        const open = (): Promise<Duplex> => connectIn(local.network, target, DELIVER_CONNECT_MS, true).then((s) => {
          inputs.istio.tcpOpened(streamLabels(decision.source, decision.destination, service?.service));
          return s;
        });
        // Bytes the source relays unparsed, on a port authorized as a connection: relayed as
        // they are. Anything else is sniffed: HTTP is parsed, so that this side reports its
        // requests (reporter="destination") as a destination sidecar does.
        if (decision.authorization === 'connection' && meta.sourceProtocol === 'tcp') return open();
        const conn = this.inboundConnection(local, target, sourceAddress, meta.peerIdentity, decision.source, service?.service);
        const served: ServedStream = {
          serve: async (stream) => {
            const outcome = await this.serveParsed(stream, conn, facts, decision.authorization);
            if (outcome === 'served') return undefined;
            if (outcome === 'tcp') return open();
            reportDenial(inputs, local.pod, outcome.authz!, 'l4', { source: sourceAddress, principal: meta.peerIdentity, port: target.port });
            throw new Error(outcome.reason);
          },
        };
        return Promise.resolve(served);
      },
      onHandshakeFailure: (reason) => {
        inputs.metrics.tlsFailures.inc({ side: 'server', reason: reason.includes('certificate') ? 'no_client_certificate' : 'handshake' });
      },
      onStream: (info) => {
        // A stream relayed as bytes (not HTTP: HTTP streams are parsed and their requests
        // reported by the pipeline), as the destination reports TCP (reporter="destination").
        const config = inputs.config.current;
        const facts = this.tunnelFacts(info.target, info);
        const source = inboundSource(config, facts);
        const destination = facts.localPod ? config.workload(facts.localPod) : undefined;
        const service = facts.localPod ? inboundService(config, facts.localPod, info.target.port, info.originalDestination)?.service : undefined;
        const labels = streamLabels(source, destination, service);
        const flags = info.error ? 'UC' : '-';
        // Sent: toward the source (from the pod); received: from the source.
        inputs.istio.tcpClosed({ ...labels, responseFlags: flags, sentBytes: info.bytesOut, receivedBytes: info.bytesIn });
        inputs.accessLog?.tcp({
          startTime: info.startedAt,
          durationMs: info.durationMs,
          reporter: 'destination',
          ...(source ? { source } : {}),
          sourceAddress: info.peer,
          mtls: true,
          ...(destination ? { destination } : {}),
          ...(labels.destinationService ? { destinationService: labels.destinationService.host } : {}),
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

  private inboundConnection(local: LocalPod, original: { address: string; port: number }, sourceAddress: string, principal: string | undefined, source: WorkloadInfo | undefined, service: ServiceInfo | undefined): ConnectionInfo {
    const family = original.address.includes(':') ? 6 : 4;
    return { direction: 'inbound', pod: local.pod, podKey: local.key, original: { family, address: original.address, port: original.port }, sourceAddress, protocol: 'http1', peer: { principal, workload: source }, ...(service ? { service } : {}) };
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
    const inboundFacts: InboundFacts = { target: original, localPod: pod, peer: client.remoteAddress ?? '' };
    const decision = decideInbound(this.inputs.config.current, inboundFacts);
    if (decision.kind === 'refuse') {
      this.refuse(client, facts, original, decision);
      return;
    }
    const served = inboundService(this.inputs.config.current, pod, original.port);
    const conn: ConnectionInfo = { ...facts, original, protocol: 'http1', peer: { principal: undefined, workload: decision.source }, ...(served ? { service: served.service } : {}) };
    const relay = () => {
      const toApp: UpstreamTransport = { kind: 'local', key: `local:${key}`, open: (target, timeoutMs): Promise<Duplex> => connectIn(network, target, timeoutMs, true) };
      forwardTcp(this.inputs, client, conn, {
        address: original.address,
        port: original.port,
        resolution: 'local app',
        destination: decision.destination,
        ...(decision.source ? { source: decision.source } : {}),
        ...(served ? { service: served.service } : {}),
      }, toApp, track);
    };
    // A port whose Service declares TCP (or TLS) is relayed at once; anything else is
    // sniffed, and HTTP parsed to report its requests (a server-first protocol on an
    // undeclared port waits for the sniff timeout first, as on the outbound side).
    if (decision.authorization === 'connection' && served?.declared !== undefined && served.declared !== 'http1' && served.declared !== 'h2') {
      relay();
      return;
    }
    void this.serveParsed(client, conn, inboundFacts, decision.authorization).then((outcome) => {
      if (outcome === 'tcp') relay();
      else if (outcome !== 'served') this.refuse(client, facts, original, outcome);
    });
  }

  /** A refused 15006 connection: counted by its cause (PeerAuthentication, authorization), logged, reset. */
  private refuse(client: Socket, facts: Parameters<typeof refuseConnection>[2], original: { address: string; port: number; family: 4 | 6 }, decision: InboundRefusal): void {
    const pod = facts.pod;
    if (decision.authz) reportDenial(this.inputs, pod, decision.authz, 'l4', { source: facts.sourceAddress, port: original.port });
    else if (decision.policy) this.inputs.metrics.plaintextRefused.inc({ namespace: pod.namespace, pod: pod.name, policy: decision.policy });
    refuseConnection(this.inputs, client, facts, original, decision.reason);
  }

  /**
   * A connection or tunnel stream: sniffed, then served by the inbound HTTP pipeline
   * (telemetry per request, each request authorized), or, when it is not HTTP, relayed
   * ('tcp'): on a port whose policies need L7 once it is authorized as a connection (HTTP
   * rules then fail closed); on one already authorized as a connection, at once.
   */
  private async serveParsed(stream: Duplex, conn: ConnectionInfo, facts: InboundFacts, authorization: 'connection' | 'per-request'): Promise<'served' | 'tcp' | InboundRefusal> {
    const sniffed = await sniff(stream, this.options.sniffTimeoutMs);
    if (stream.destroyed) return 'served';
    // The frontend's servers take any byte stream (a tunnel stream as much as a socket); the
    // Socket type is what their signature names.
    if (sniffed.protocol === 'http1') {
      this.http.serveHttp1(stream as Socket, conn);
      return 'served';
    }
    if (sniffed.protocol === 'h2') {
      this.http.serveH2(stream as Socket, conn);
      return 'served';
    }
    if (authorization === 'connection') return 'tcp';
    return authorizeConnection(this.inputs.config.current, conn.pod!, { ...facts, ...(sniffed.sni ? { sni: sniffed.sni } : {}) }) ?? 'tcp';
  }

  /** WebSocket upgrades (and CONNECT) to the app: authorized like any request, then relayed once the app has switched. */
  private upgrade(conn: ConnectionInfo, upgrade: PendingUpgrade): void {
    const local = this.inputs.pods.get(conn.podKey);
    if (!local) {
      upgrade.refuse(503, `pod ${conn.podKey} is no longer enrolled on this node`);
      return;
    }
    const to = { destination: local.pod, target: conn.original, sourcePrincipal: conn.peer?.principal, sourceAddress: conn.sourceAddress };
    if (!authorizeUpgrade(this.inputs, this.inputs.config.current, to, upgrade)) return;
    connectIn(local.network, conn.original, DELIVER_CONNECT_MS, true).then(
      (upstream) => upgrade.connect(upstream),
      (err: unknown) => {
        this.inputs.logger.debug({ err: describeError(err) }, 'upgrade: the app did not answer');
        upgrade.refuse(503, 'upstream connect failed');
      },
    );
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

  /** Connections made into a released pod's namespace must not outlive it. */
  async dropPod(key: string): Promise<void> {
    await Promise.all([this.pools.dropTransport(`local:${key}`), this.sessions.dropTransport(`local:${key}`)]);
  }

  /** The drain begins: GOAWAY to every tunnel session; parsed HTTP/1.1 connections close after their response. */
  stopAccepting(): void {
    this.tunnelServer.close();
    this.http.close();
  }

  async destroy(deadlineAt = Date.now()): Promise<void> {
    this.tunnelServer.destroy();
    this.http.destroy();
    await Promise.all([this.pools.close(), this.sessions.close(deadlineAt)]);
  }
}

/** The labels of a tunnel stream: always mutual TLS (15008 accepts nothing else). */
function streamLabels(source: WorkloadInfo | undefined, destination: WorkloadInfo | undefined, service: ServiceInfo | undefined) {
  return {
    reporter: 'destination' as const,
    ...(source ? { source } : {}),
    ...(destination ? { destination } : {}),
    ...(service ? { destinationService: { name: service.name, namespace: service.namespace, host: serviceHost(service) } } : {}),
    mtls: true,
  };
}
