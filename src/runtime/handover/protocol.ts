import type { ListenerMeta } from '../../proxy/handover/listeners';
import type { Http1Meta, RelayMeta, UpstreamHttp1Meta } from '../../proxy/handover/handable-relays';

/**
 * The hand-over dialogue on `/run/nodemesh/<instance>/handover.sock` (a unix stream socket,
 * one JSON message per frame, descriptors as SCM_RIGHTS: datapath/fd-channel.ts). The new
 * agent (receiver) connects and drives it; the running one (sender) answers:
 *
 *   receiver → hello
 *   sender   → listeners (+ fds) ... last: true          every listener, health first
 *   receiver → received                                 health adopted: sender stops answering probes
 *   receiver → listening                                first configuration applied, pods' listeners adopted
 *   sender   → relays (+ 2 fds each)   receiver → adopted   batch by batch, TCP relays
 *   sender   → http1 (+ 1 fd each)     receiver → adopted   idle HTTP/1.1 connections
 *   sender   → upstream1 (+ 1 fd each) receiver → adopted   idle upstream HTTP/1.1 connections
 *   sender   → done                                      sender drains the rest and exits
 *
 * Until it got `listening` the sender accepts on every listener as before; until a
 * batch's `adopted` it holds that batch's sockets too, so a receiver that dies at any
 * point leaves it serving everything it held.
 */
export const PROTOCOL_VERSION = 1;

export type ToSender =
  | { type: 'hello'; version: number; pid: number }
  | { type: 'received'; health: boolean; admin: boolean }
  | { type: 'listening'; adopted: ListenerMeta[] }
  | { type: 'adopted'; seq: number; adopted: number[] };

export type ToReceiver =
  | { type: 'listeners'; pid: number; listeners: ListenerMeta[]; last: boolean }
  | { type: 'relays'; seq: number; relays: RelayMeta[] }
  | { type: 'http1'; seq: number; connections: Http1Meta[] }
  | { type: 'upstream1'; seq: number; connections: UpstreamHttp1Meta[] }
  | { type: 'done'; listeners: number; connections: number; kept: number; ms: number }
  | { type: 'refused'; reason: string };

/** How long each step may take; the receiver's `listening` waits for its whole start. */
export const STEP_MS = 10_000;
export const LISTENING_WAIT_MS = 120_000;
/** A batch's adoption (the test hook may hold the receiver this long before it is killed). */
export const ADOPT_WAIT_MS = 30_000;
/** Relays per batch at most (two descriptors each, under SCM_MAX_FD). */
export const MAX_RELAYS_PER_BATCH = 100;
/** Idle HTTP/1.1 connections per batch at most (one descriptor each). */
export const MAX_HTTP1_PER_BATCH = 200;
/** How long the old agent waits for busy HTTP/1.1 connections to finish their request before it keeps them to drain. */
export const HTTP1_HANDOFF_MS = 3000;
