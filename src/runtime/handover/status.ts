/** What `/debug/handover` answers: the last hand-over this agent took part in. */
export interface HandoverStatus {
  state: 'idle' | 'sending' | 'receiving' | 'done' | 'failed';
  role?: 'sender' | 'receiver';
  /** The other agent's pid. */
  peerPid?: number;
  startedAt?: string;
  durationMs?: number;
  listeners: number;
  connections: number;
  /** Of `connections`: idle upstream HTTP/1.1 connections (the pools' keep-alive ones) handed. */
  upstreams?: number;
  /** Sender: sockets it still holds after the hand-over and drains (HTTP, tunnel, relays it could not hand: half-closed, unflushed). */
  kept: number;
  /** The test hook's point the receiver is paused at (NODEMESH_HANDOVER_PAUSE_AT). */
  pausedAt?: string;
  error?: string;
}

export function idleStatus(): HandoverStatus {
  return { state: 'idle', listeners: 0, connections: 0, kept: 0 };
}
