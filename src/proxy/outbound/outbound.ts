import type { Socket } from 'node:net';
import { describeError } from '../../errors';
import type { Endpoint, PodInfo } from '../../mesh/model';
import { endpointKey } from '../../policy/client/load-balancer';
import { authorize, ipOf } from '../authz-request';
import { authorizeUpgrade } from '../authz/authorize-upgrade';
import { reportDenial } from '../authz/report-denial';
import type { ConnectionInfo } from '../connection-info';
import type { PendingUpgrade } from '../h1/server-connection';
import { HttpFrontend } from '../http/frontend';
import type { ProxyInputs } from '../inputs';
import type { LocalPod } from '../local-pods';
import { formatAddress, type TrackSocket } from '../open-socket';
import type { ProxyConfig } from '../proxy-config';
import { sniff } from '../protocol/sniff';
import { forwardTcp, offerUpgradeRelay, refuseConnection, type TcpTarget } from '../tcp-forward';
import { H2Sessions } from '../upstream/h2-sessions';
import { Http1Pools } from '../upstream/http1-pools';
import type { UpstreamTransport } from '../upstream/transport';
import { decideOutbound, type OutboundDestination } from './decide';
import { createOutboundPipeline } from './http/outbound-pipeline';
import { podSourceAddress } from './pod-source-address';
import { answerProbe } from './probe';
import { OutboundTransports } from './transports';

export interface OutboundOptions {
  /** How long to wait for a client's first bytes before treating it as server-first TCP. */
  sniffTimeoutMs: number;
  random?: () => number;
}

const PASS_THROUGH_CONNECT_MS = 5000;

/**
 * The outbound side: connections the pods of this node open. Each is decided
 * (`decideOutbound`), then sniffed and served by the HTTP pipeline, or relayed as TCP to
 * an endpoint over the transport `decideTransport` chose.
 */
export class Outbound {
  readonly http: HttpFrontend;
  /** Upstream HTTP/1.1 pools; the hand-over moves their idle connections (NodeProxy). */
  readonly pools = new Http1Pools();
  private readonly sessions = new H2Sessions();
  private readonly transports: OutboundTransports;

  constructor(private readonly inputs: ProxyInputs, private readonly options: OutboundOptions) {
    this.transports = new OutboundTransports(inputs);
    const pipeline = createOutboundPipeline({
      config: inputs.config,
      pools: this.pools,
      sessions: this.sessions,
      metrics: inputs.istio,
      accessLog: inputs.accessLog,
      logger: inputs.logger,
      transportFor: (conn, endpoint) => this.transports.transportFor(conn, endpoint),
      random: options.random ?? Math.random,
      authz: { metrics: inputs.metrics },
    });
    // A switched Upgrade (WebSocket) is a byte relay: the next agent can take it over.
    this.http = new HttpFrontend(pipeline, (conn, upgrade) => this.passThrough(conn, upgrade), inputs.logger, undefined, (client, upstream, conn) => offerUpgradeRelay(inputs, client, upstream, conn));
  }

  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport {
    return this.transports.transportFor(conn, endpoint);
  }

  /** A connection accepted on a pod's outbound listener (15001). */
  async accept(client: Socket, local: LocalPod, track: TrackSocket): Promise<void> {
    // Like every upstream socket: a proxy must not add Nagle's delay to small writes
    // (a streamed response's chunks waited for the client's delayed ACK, ~40 ms each).
    client.setNoDelay(true);
    track(client, 'outbound');
    client.pause();
    client.on('error', () => undefined);
    const { settings } = this.inputs;
    const { pod, key } = local;
    const source = formatAddress({ address: podSourceAddress(client.remoteAddress, pod.ips), port: client.remotePort });
    const facts = { direction: 'outbound' as const, pod, podKey: key, sourceAddress: source };
    const original = local.network.originalDestination(client, settings.outboundPort);
    if (!original) {
      refuseConnection(this.inputs, client, facts, undefined, 'no original destination: capture did not record one for this connection (SO_ORIGINAL_DST unanswered)');
      return;
    }
    const config = this.inputs.config.current;
    const decision = decideOutbound(config, { source: pod, original, probePort: settings.probePort });
    if (decision.kind === 'probe') {
      answerProbe(this.inputs, client, key, pod, source, formatAddress(original));
      return;
    }
    const conn: ConnectionInfo = { ...facts, original, protocol: 'http1' };
    let sni: string | undefined;
    if (decision.kind !== 'passthrough') {
      let protocol = decision.kind === 'service' ? decision.protocol : undefined;
      if (!protocol) ({ protocol, sni } = await sniff(client, this.options.sniffTimeoutMs));
      if (client.destroyed) return;
      if (protocol === 'http1' || protocol === 'h2') {
        if (protocol === 'http1') this.http.serveHttp1(client, conn);
        else this.http.serveH2(client, conn);
        this.logHttp(client, key, source, formatAddress(original));
        return;
      }
    }
    const target = this.tcpTarget(config, decision, original);
    if (!target) {
      const svc = decision.kind === 'service' ? decision.service : undefined;
      refuseConnection(this.inputs, client, facts, original, `service ${svc?.namespace}/${svc?.name} has no ready endpoints: check its selector and that its pods are ready`);
      return;
    }
    const transport = this.transports.transportFor(conn, target);
    if (transport.kind === 'local') {
      const denied = this.handOverConnectionDenied(config, pod, target, source, sni);
      if (denied) {
        refuseConnection(this.inputs, client, facts, original, denied);
        return;
      }
    }
    forwardTcp(this.inputs, client, conn, target, transport, track);
  }

  /**
   * A connection handed over to a pod of this node is authorized here as a connection
   * (L4), as the pod's inbound side would authorize it (HTTP went to the pipeline, which
   * authorizes each request): the reason when denied, counted and logged.
   */
  private handOverConnectionDenied(config: ProxyConfig, sourcePod: PodInfo, target: { address: string; port: number }, sourceAddress: string, sni: string | undefined): string | undefined {
    const destination = this.inputs.pods.byAddress(target.address)?.pod;
    if (!destination) return undefined;
    const sourcePrincipal = config.workload(sourcePod).principal;
    const authz = authorize(config, { destination, port: target.port, destinationIp: target.address, sourcePrincipal, sourceIp: ipOf(sourceAddress), ...(sni ? { sni } : {}) });
    if (authz.verdict === 'allow') return undefined;
    reportDenial(this.inputs, destination, authz, 'l4', { source: sourceAddress, principal: sourcePrincipal, port: target.port });
    return `connection from ${sourcePrincipal ?? sourceAddress} to ${destination.namespace}/${destination.name} port ${target.port} refused: ${authz.reason}`;
  }

  /** The endpoint of a TCP (or TLS pass-through) connection. */
  private tcpTarget(config: ProxyConfig, decision: Exclude<OutboundDestination, { kind: 'probe' }>, original: { family: 4 | 6; address: string; port: number }): TcpTarget | undefined {
    if (decision.kind === 'service') {
      const { service, port } = decision;
      const ep = this.pickEndpoint(decision.policyKey, decision.endpoints);
      if (!ep) return undefined;
      const pod = ep.podKey ? config.snapshot.pods.get(ep.podKey) : config.snapshot.podByIP(ep.address);
      return { address: ep.address, port: ep.port, resolution: `service ${service.namespace}/${service.name}:${port.port}`, service, ...(pod ? { destination: config.workload(pod) } : {}) };
    }
    if (decision.kind === 'pod') {
      return { address: original.address, port: original.port, resolution: `pod ${decision.pod.namespace}/${decision.pod.name}`, destination: decision.destination };
    }
    return { address: original.address, port: original.port, resolution: 'passthrough' };
  }

  /**
   * An endpoint of a Service port for a connection-level hand-off (TCP, TLS, upgrades):
   * ready endpoints, outlier-ejected ones left out, the Service's load balancer.
   */
  private pickEndpoint(policyKey: string, endpoints: readonly Endpoint[]): Endpoint | undefined {
    const policy = this.inputs.config.policies.forService(policyKey);
    return policy.pick(endpoints.map((e) => ({ key: endpointKey(e.address, e.port), e })))?.e;
  }

  /** WebSocket upgrades and CONNECT: open the target; the HTTP/1.1 connection does the rest. */
  private passThrough(conn: ConnectionInfo, upgrade: PendingUpgrade): void {
    const decision = decideOutbound(this.inputs.config.current, { source: conn.pod!, original: conn.original, probePort: this.inputs.settings.probePort });
    let target = { address: conn.original.address, port: conn.original.port };
    if (decision.kind === 'service') {
      const ep = this.pickEndpoint(decision.policyKey, decision.endpoints);
      if (!ep) {
        upgrade.refuse(503, 'no ready endpoint for the upgrade');
        return;
      }
      target = { address: ep.address, port: ep.port };
    }
    const transport = this.transports.transportFor(conn, target);
    if (transport.kind === 'local' && !this.handOverUpgradeAllowed(conn, upgrade, target)) return;
    transport.open(target, PASS_THROUGH_CONNECT_MS).then(
      (upstream) => upgrade.connect(upstream),
      (err: unknown) => {
        this.inputs.logger.debug({ err: describeError(err) }, 'pass-through connect failed');
        upgrade.refuse(503, 'upstream connect failed');
      },
    );
  }

  /**
   * An upgrade handed over to a pod of this node is authorized here, as its inbound side
   * would (see local-authorization.ts); denied: 403 "RBAC: access denied", and closed.
   */
  private handOverUpgradeAllowed(conn: ConnectionInfo, upgrade: PendingUpgrade, target: { address: string; port: number }): boolean {
    const config = this.inputs.config.current;
    const destination = this.inputs.pods.byAddress(target.address)?.pod;
    if (!destination) return true;
    const sourcePrincipal = conn.pod ? config.workload(conn.pod).principal : undefined;
    return authorizeUpgrade(this.inputs, config, { destination, target, sourcePrincipal, sourceAddress: conn.sourceAddress }, upgrade);
  }

  /** One connection-log record per HTTP connection, when it closes. */
  private logHttp(client: Socket, podKey: string, source: string, original: string): void {
    const started = Date.now();
    client.once('close', () => {
      this.inputs.log.add({
        direction: 'outbound',
        pod: podKey,
        source,
        originalDestination: original,
        resolution: 'http (per-request routing)',
        bytesUp: client.bytesRead,
        bytesDown: client.bytesWritten,
        durationMs: Date.now() - started,
        result: 'ok',
      });
    });
  }

  /** Pooled connections made from (or into) a pod's namespace must not outlive it. */
  async dropPod(key: string): Promise<void> {
    this.transports.tunnel.dropPrefix(`tunnel:${key}:`);
    await Promise.all([this.pools.dropTransport(`direct:${key}`), this.pools.dropTransport(`local:${key}`), this.sessions.dropTransport(`direct:${key}`), this.sessions.dropTransport(`local:${key}`)]);
  }

  /** The drain begins: HTTP/1.1 connections close after their response, h2 sessions get a GOAWAY. */
  stopAccepting(): void {
    this.http.close();
  }

  /** The drain is over: downstream h2 sessions go; pooled upstream sessions get until `deadlineAt`. */
  async destroy(deadlineAt: number): Promise<void> {
    this.http.destroy();
    await Promise.all([this.pools.close(), this.sessions.close(deadlineAt), this.transports.tunnel.close(deadlineAt)]);
  }
}
