import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../errors';
import { serviceHost } from '../mesh/model';
import { reporterForLeg, type Reporter } from '../telemetry/reporter';
import type { ConnectionInfo, ProxyAddress } from './connection-info';
import type { TcpTarget, TransportFacts } from './tcp-target';
import type { ProxyInputs } from './inputs';
import { formatAddress, type TrackSocket } from './open-socket';
import { handedOver, type RelayMeta } from './handover/handable-relays';
import { relay } from './tcp-relay';
import type { UpstreamTransport } from './upstream/transport';

export type { TcpTarget } from './tcp-target';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Relays a connection as bytes to `target` over `transport`, with its metrics, access
 * log line and connection-log record when it ends. Outbound (TCP, TLS pass-through) and
 * inbound (15006 to the pod's app) differ only in the facts they pass.
 */
export function forwardTcp(
  inputs: ProxyInputs,
  client: Socket,
  conn: ConnectionInfo,
  target: TcpTarget,
  transport: UpstreamTransport,
  track: TrackSocket,
  connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
): void {
  const started = Date.now();
  const facts: TransportFacts = { local: transport.kind === 'local', mtls: transport.mtls === true };
  const finish = tcpRecord(inputs, conn, target, facts, started);
  transport.open(target, connectTimeoutMs, 'tcp').then(
    (upstream) => {
      track(upstream as Socket, 'upstream');
      relayTracked(inputs, client, upstream as Socket, conn, target, facts, started, finish);
    },
    (err: unknown) => {
      client.resetAndDestroy();
      finish(0, 0, `upstream connect failed: ${describeError(err)}`, 'UF');
    },
  );
}

/**
 * Carries on a relay a previous agent handed over (both sockets adopted from their
 * descriptors): the same relay, telemetry and record as if it had started here.
 */
export function adoptTcp(inputs: ProxyInputs, client: Socket, upstream: Socket, conn: ConnectionInfo, target: TcpTarget, facts: TransportFacts, track: TrackSocket, startedAt: number): void {
  track(client, conn.direction);
  track(upstream, 'upstream');
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  relayTracked(inputs, client, upstream, conn, target, facts, startedAt, tcpRecord(inputs, conn, target, facts, startedAt));
}

/**
 * A switched Upgrade (WebSocket, CONNECT) relays bytes from now on: offered to the next
 * agent like a TCP relay (it carries it on with a TCP record; the request was logged here).
 */
export function offerUpgradeRelay(inputs: ProxyInputs, client: Socket, upstream: Duplex, conn: ConnectionInfo): void {
  if (!inputs.handable || !(upstream instanceof Socket) || !conn.pod) return;
  const { pod: _pod, ...rest } = conn;
  const target: TcpTarget = { address: upstream.remoteAddress ?? conn.original.address, port: upstream.remotePort ?? conn.original.port, resolution: 'upgrade (handed over)' };
  // Recorded here as an HTTP request already; carried on as plain bytes (no local destination leg).
  inputs.handable.add({ meta: { podKey: conn.podKey, podUid: conn.pod.uid, conn: rest, target, transport: { local: false, mtls: false }, startedAt: Date.now() }, client, upstream });
}

type Finish = (up: number, down: number, error: string | undefined, flags: string) => void;

/** One reporter's view of a relayed connection. */
interface TcpLeg {
  reporter: Reporter;
  mtls: boolean;
}

function relayTracked(inputs: ProxyInputs, client: Socket, upstream: Socket, conn: ConnectionInfo, target: TcpTarget, facts: TransportFacts, startedAt: number, finish: Finish): void {
  // Both ends plain sockets: the next agent can take this relay over (handover/).
  if (inputs.handable && client instanceof Socket && upstream instanceof Socket && conn.pod) {
    const { pod: _pod, ...rest } = conn;
    const meta: RelayMeta = { podKey: conn.podKey, podUid: conn.pod.uid, conn: rest, target, transport: facts, startedAt };
    inputs.handable.add({ meta, client, upstream });
  }
  relay(client, upstream).then((r) => {
    // Handed to the next agent: it reports the connection when it really ends.
    if (handedOver(client)) finish(-1, -1, undefined, '-');
    else finish(r.bytesUp, r.bytesDown, r.error ? describeError(r.error) : undefined, r.error ? 'UC' : '-');
  });
}

/** The metrics of an opened connection now, and what to record when it ends (`up < 0`: handed over, only the gauge). */
function tcpRecord(inputs: ProxyInputs, conn: ConnectionInfo, target: TcpTarget, facts: TransportFacts, started: number): Finish {
  const { metrics, istio, accessLog, log, logger } = inputs;
  const pod = conn.pod!;
  const direction = conn.direction;
  const labels = { direction, namespace: pod.namespace, pod: pod.name };
  const config = inputs.config.current;
  const sourceWorkload = direction === 'outbound' ? config.workload(pod) : target.source;
  const destinationService = target.service ? { name: target.service.name, namespace: target.service.namespace, host: serviceHost(target.service) } : undefined;
  // Outbound: mutual TLS when the transport is (the tunnel); a connection captured on 15006 is plaintext.
  const mtls = direction === 'outbound' ? facts.mtls : false;
  const legs: TcpLeg[] = [{ reporter: reporterForLeg(direction), mtls }];
  // A connection handed over in-process to a pod of this node: this pass is the
  // destination's proxy too, and reports it as such (src/telemetry/reporter.ts).
  if (direction === 'outbound' && facts.local) legs.push({ reporter: 'destination', mtls: facts.mtls });
  const labelsOf = (leg: TcpLeg) => ({
    reporter: leg.reporter,
    ...(sourceWorkload ? { source: sourceWorkload } : {}),
    ...(target.destination ? { destination: target.destination } : {}),
    ...(destinationService ? { destinationService } : {}),
    mtls: leg.mtls,
  });
  metrics.active.inc({ direction });
  for (const leg of legs) istio.tcpOpened(labelsOf(leg));
  return (up: number, down: number, error: string | undefined, flags: string) => {
    metrics.active.dec({ direction });
    if (up < 0) return;
    metrics.connections.inc({ ...labels, result: error ? 'error' : 'ok' });
    metrics.bytes.inc({ ...labels, flow: 'sent' }, up);
    metrics.bytes.inc({ ...labels, flow: 'received' }, down);
    for (const leg of legs) {
      istio.tcpClosed({ ...labelsOf(leg), responseFlags: flags, sentBytes: down, receivedBytes: up });
      accessLog?.tcp({
        startTime: started,
        durationMs: Date.now() - started,
        reporter: leg.reporter,
        ...(sourceWorkload ? { source: sourceWorkload } : {}),
        sourceAddress: conn.sourceAddress,
        mtls: leg.mtls,
        ...(target.destination ? { destination: target.destination } : {}),
        ...(destinationService ? { destinationService: destinationService.host } : {}),
        upstreamHost: formatAddress(target),
        responseFlags: flags,
        bytesReceived: up,
        bytesSent: down,
      });
    }
    const record = log.add({
      direction,
      pod: conn.podKey,
      source: conn.sourceAddress,
      originalDestination: formatAddress(conn.original),
      upstream: formatAddress(target),
      resolution: target.resolution,
      bytesUp: up,
      bytesDown: down,
      durationMs: Date.now() - started,
      result: error ? 'error' : 'ok',
      ...(error ? { error } : {}),
    });
    logger.debug({ connection: record }, 'connection closed');
  };
}

/** A connection the proxy cannot serve: counted, logged with the reason, and reset. */
export function refuseConnection(inputs: ProxyInputs, client: Socket, conn: { direction: 'outbound' | 'inbound'; pod: { namespace: string; name: string }; podKey: string; sourceAddress: string }, original: ProxyAddress | undefined, reason: string): void {
  const { metrics, log, logger } = inputs;
  const originalDestination = original ? formatAddress(original) : '?';
  metrics.connections.inc({ direction: conn.direction, namespace: conn.pod.namespace, pod: conn.pod.name, result: 'error' });
  log.add({ direction: conn.direction, pod: conn.podKey, source: conn.sourceAddress, originalDestination, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'error', error: reason });
  logger.warn({ pod: conn.podKey, direction: conn.direction, source: conn.sourceAddress, originalDestination }, reason);
  client.resetAndDestroy();
}
