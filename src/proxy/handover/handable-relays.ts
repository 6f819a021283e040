import type { Socket } from 'node:net';
import { resumeReading, stopReading } from '../../datapath/fd-channel';
import { fdOf } from '../../datapath/fd';
import type { ConnectionInfo } from '../connection-info';
import type { TcpTarget, TransportFacts } from '../tcp-target';
import { pollUntil } from '../../util/deadline';

/**
 * What travels with a relayed connection's two descriptors to the next agent: enough to
 * carry on its relay, telemetry and connection-log record there. The pod is named, not
 * sent: the receiver uses its own record of it (and refuses the connection without one).
 */
export interface RelayMeta {
  podKey: string;
  /** The pod's uid when the connection was accepted: a pod re-created under the same name is another pod. */
  podUid: string;
  conn: Omit<ConnectionInfo, 'pod'>;
  target: TcpTarget;
  /** How the relay's upstream was reached, for its telemetry in the next agent. */
  transport: TransportFacts;
  /** When the relay started (ms since the epoch), for its duration in the access log. */
  startedAt: number;
}

/** What travels with an idle HTTP/1.1 connection (between requests) to the next agent. */
export interface Http1Meta {
  podKey: string;
  podUid: string;
  /** Which listener's connection: the pod's outbound (15001, the default) or inbound (15006). */
  direction?: 'outbound' | 'inbound';
  conn: Omit<ConnectionInfo, 'pod'>;
}

/** An idle upstream HTTP/1.1 connection of a pool (a plain socket: direct, or into a pod on this node). */
export interface UpstreamHttp1Meta {
  /** Whose pools: the outbound side's (to Services) or the inbound side's (to the pod's app). */
  side: 'outbound' | 'inbound';
  /** The pool's key (transport key, address, port): the next agent's pool of the same key takes it. */
  poolKey: string;
  /** The pod whose namespace the socket lives in (the pool key's). */
  podKey: string;
}

/** An idle upstream connection taken out of its pool, stopped reading, on offer. */
export interface HandedUpstream {
  socket: Socket;
  meta: UpstreamHttp1Meta;
}

/** An idle HTTP/1.1 connection detached from this proxy's codec, stopped reading, on offer. */
export interface HandedHttp1 {
  socket: Socket;
  meta: Http1Meta;
}

/** One relay the proxy could give away, while both its sockets are open. */
export interface HandableRelay {
  readonly meta: RelayMeta;
  readonly client: Socket;
  readonly upstream: Socket;
}

/** How long a relay may take to flush what it read before it is handed (a peer that does not read keeps it here). */
export const QUIESCE_MS = 1000;

/**
 * The TCP relays open now whose both ends are plain sockets (direct or same-node
 * upstreams; a tunnel stream is inside TLS and cannot be handed as a descriptor).
 */
export class HandableRelays {
  private readonly relays = new Set<HandableRelay>();

  add(relay: HandableRelay): void {
    this.relays.add(relay);
    const drop = () => this.relays.delete(relay);
    relay.client.once('close', drop);
    relay.upstream.once('close', drop);
  }

  list(): HandableRelay[] {
    return [...this.relays];
  }

  get size(): number {
    return this.relays.size;
  }
}

function open(s: Socket): boolean {
  return !s.destroyed && !s.readableEnded && !s.writableEnded && !(s as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended;
}

function settled(s: Socket): boolean {
  return s.readableLength === 0 && s.writableLength === 0;
}

/**
 * Stops both sockets reading and waits until every byte already read has been written
 * on (nothing left in Node's buffers: what the peers send from now on waits in the kernel
 * and goes with the descriptors). False, with reading resumed, when a side half-closed or
 * the bytes did not drain within `timeoutMs`: the relay then stays with this agent.
 */
export async function quiesce(relay: HandableRelay, timeoutMs = QUIESCE_MS): Promise<boolean> {
  const { client, upstream } = relay;
  if (!open(client) || !open(upstream)) return false;
  stopReading(client);
  stopReading(upstream);
  // Buffered chunks still flow through the pipes (flowing mode); they only never refill.
  client.resume();
  upstream.resume();
  const ok = await pollUntil(() => !open(client) || !open(upstream) || (settled(client) && settled(upstream)), Date.now() + timeoutMs, undefined, 2);
  if (ok && open(client) && open(upstream)) return true;
  resume(relay);
  return false;
}

/** Back to relaying here (the hand-over of this relay failed). */
export function resume(relay: HandableRelay): void {
  resumeReading(relay.client);
  resumeReading(relay.upstream);
}

/** The two descriptors, client first. */
export function relayFds(relay: HandableRelay): [number, number] {
  return [fdOf(relay.client), fdOf(relay.upstream)];
}

/**
 * The next agent holds the sockets now: let go of ours without a FIN or a reset (close
 * the descriptors only; the kernel sockets live on in the receiver).
 */
/** Lets go of a handed socket without FIN or reset (its descriptor only); resolves once closed here. */
export function releaseSocket(socket: Socket): Promise<void> {
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  (socket as unknown as { handedOver?: boolean }).handedOver = true;
  socket.destroy();
  return closed;
}

export function release(relay: HandableRelay): Promise<void> {
  const closed = Promise.all([relay.client, relay.upstream].map((s) => new Promise((resolve) => s.once('close', resolve)))).then(() => undefined);
  relay.client.unpipe(relay.upstream);
  relay.upstream.unpipe(relay.client);
  (relay.client as unknown as { handedOver?: boolean }).handedOver = true;
  (relay.upstream as unknown as { handedOver?: boolean }).handedOver = true;
  relay.client.destroy();
  relay.upstream.destroy();
  return closed;
}

/** True for a socket `release` gave away (its close is no end of the connection). */
export function handedOver(s: Socket): boolean {
  return (s as unknown as { handedOver?: boolean }).handedOver === true;
}
