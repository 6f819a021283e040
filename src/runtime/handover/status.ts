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
  /** Sender: relays it could not hand (half-closed, unflushed, over a tunnel) and drains instead. */
  kept: number;
  /** The test hook's point the receiver is paused at (NODEMESH_HANDOVER_PAUSE_AT). */
  pausedAt?: string;
  error?: string;
}

export function idleStatus(): HandoverStatus {
  return { state: 'idle', listeners: 0, connections: 0, kept: 0 };
}
