import type { Socket } from 'node:net';
import { describeError } from '../errors';
import { serviceHost, type ServiceInfo } from '../mesh/model';
import { reporterForLeg, type Reporter } from '../telemetry/reporter';
import type { WorkloadInfo } from '../mesh/workload-identity';
import type { ConnectionInfo, ProxyAddress } from './connection-info';
import type { ProxyInputs } from './inputs';
import { formatAddress, type TrackSocket } from './open-socket';
import { relay } from './tcp-relay';
import type { UpstreamTransport } from './upstream/transport';

/** Where a connection relayed as bytes goes, and who is at either end (telemetry). */
export interface TcpTarget {
  address: string;
  port: number;
  /** How the target was found, for the connection log ("service ns/name:80", "pod ...", "passthrough", "local app"). */
  resolution: string;
  service?: ServiceInfo;
  source?: WorkloadInfo;
  destination?: WorkloadInfo;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** One reporter's view of a relayed connection. */
interface TcpLeg {
  reporter: Reporter;
  mtls: boolean;
}

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
  const { metrics, istio, accessLog, log, logger } = inputs;
  const pod = conn.pod!;
  const direction = conn.direction;
  const labels = { direction, namespace: pod.namespace, pod: pod.name };
  const config = inputs.config.current;
  const sourceWorkload = direction === 'outbound' ? config.workload(pod) : target.source;
  const destinationService = target.service ? { name: target.service.name, namespace: target.service.namespace, host: serviceHost(target.service) } : undefined;
  // Outbound: mutual TLS when the transport is (the tunnel); a connection captured on 15006 is plaintext.
  const mtls = direction === 'outbound' ? transport.mtls === true : false;
  const legs: TcpLeg[] = [{ reporter: reporterForLeg(direction), mtls }];
  // A connection handed over in-process to a pod of this node: this pass is the
  // destination's proxy too, and reports it as such (src/telemetry/reporter.ts).
  if (direction === 'outbound' && transport.kind === 'local') legs.push({ reporter: 'destination', mtls: transport.mtls === true });
  const labelsOf = (leg: TcpLeg) => ({
    reporter: leg.reporter,
    ...(sourceWorkload ? { source: sourceWorkload } : {}),
    ...(target.destination ? { destination: target.destination } : {}),
    ...(destinationService ? { destinationService } : {}),
    mtls: leg.mtls,
  });
  metrics.active.inc({ direction });
  for (const leg of legs) istio.tcpOpened(labelsOf(leg));
  const started = Date.now();
  const finish = (up: number, down: number, error: string | undefined, flags: string) => {
    metrics.active.dec({ direction });
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
  transport.open(target, connectTimeoutMs, 'tcp').then(
    (upstream) => {
      track(upstream as Socket, 'upstream');
      relay(client, upstream as Socket).then((r) => finish(r.bytesUp, r.bytesDown, r.error ? describeError(r.error) : undefined, r.error ? 'UC' : '-'));
    },
    (err: unknown) => {
      client.resetAndDestroy();
      finish(0, 0, `upstream connect failed: ${describeError(err)}`, 'UF');
    },
  );
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
