import { Socket } from 'node:net';
import { describeError } from '../errors';
import type { ConnectionInfo, ProxyAddress } from './connection-info';
import type { TcpTarget } from './tcp-target';
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
  const finish = tcpRecord(inputs, conn, target, started);
  transport.open(target, connectTimeoutMs).then(
    (upstream) => {
      track(upstream as Socket, 'upstream');
      relayTracked(inputs, client, upstream as Socket, conn, target, started, finish);
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
export function adoptTcp(inputs: ProxyInputs, client: Socket, upstream: Socket, conn: ConnectionInfo, target: TcpTarget, track: TrackSocket, startedAt: number): void {
  track(client, conn.direction);
  track(upstream, 'upstream');
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  relayTracked(inputs, client, upstream, conn, target, startedAt, tcpRecord(inputs, conn, target, startedAt));
}

type Finish = (up: number, down: number, error: string | undefined, flags: string) => void;

function relayTracked(inputs: ProxyInputs, client: Socket, upstream: Socket, conn: ConnectionInfo, target: TcpTarget, startedAt: number, finish: Finish): void {
  // Both ends plain sockets: the next agent can take this relay over (handover/).
  if (inputs.handable && client instanceof Socket && upstream instanceof Socket && conn.pod) {
    const { pod: _pod, ...rest } = conn;
    const meta: RelayMeta = { podKey: conn.podKey, podUid: conn.pod.uid, conn: rest, target, startedAt };
    inputs.handable.add({ meta, client, upstream });
  }
  relay(client, upstream).then((r) => {
    // Handed to the next agent: it reports the connection when it really ends.
    if (handedOver(client)) finish(-1, -1, undefined, '-');
    else finish(r.bytesUp, r.bytesDown, r.error ? describeError(r.error) : undefined, r.error ? 'UC' : '-');
  });
}

/** The metrics of an opened connection now, and what to record when it ends (`up < 0`: handed over, only the gauge). */
function tcpRecord(inputs: ProxyInputs, conn: ConnectionInfo, target: TcpTarget, started: number): Finish {
  const { metrics, istio, accessLog, log, logger } = inputs;
  const pod = conn.pod!;
  const direction = conn.direction;
  const labels = { direction, namespace: pod.namespace, pod: pod.name };
  const config = inputs.config.current;
  const sourceWorkload = direction === 'outbound' ? config.workload(pod) : target.source;
  const tcpLabels = {
    reporter: direction === 'outbound' ? ('source' as const) : ('destination' as const),
    ...(sourceWorkload ? { source: sourceWorkload } : {}),
    ...(target.destination ? { destination: target.destination } : {}),
    ...(target.service ? { destinationService: { name: target.service.name, namespace: target.service.namespace, host: `${target.service.name}.${target.service.namespace}.svc.cluster.local` } } : {}),
    // The source side cannot know how the destination received it (Istio: "unknown"); a
    // connection captured on 15006 is plaintext.
    ...(direction === 'outbound' ? {} : { mtls: false }),
  };
  metrics.active.inc({ direction });
  istio.tcpOpened(tcpLabels);
  return (up: number, down: number, error: string | undefined, flags: string) => {
    metrics.active.dec({ direction });
    if (up < 0) return;
    metrics.connections.inc({ ...labels, result: error ? 'error' : 'ok' });
    metrics.bytes.inc({ ...labels, flow: 'sent' }, up);
    metrics.bytes.inc({ ...labels, flow: 'received' }, down);
    istio.tcpClosed({ ...tcpLabels, responseFlags: flags, sentBytes: up, receivedBytes: down });
    accessLog?.tcp({
      startTime: started,
      durationMs: Date.now() - started,
      reporter: tcpLabels.reporter,
      ...(sourceWorkload ? { source: sourceWorkload } : {}),
      sourceAddress: conn.sourceAddress,
      ...(tcpLabels.mtls !== undefined ? { mtls: tcpLabels.mtls } : {}),
      ...(target.destination ? { destination: target.destination } : {}),
      ...(tcpLabels.destinationService ? { destinationService: tcpLabels.destinationService.host } : {}),
      upstreamHost: formatAddress(target),
      responseFlags: flags,
      bytesReceived: up,
      bytesSent: down,
    });
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
