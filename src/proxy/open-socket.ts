import { formatHostPort } from '../util/host-port';

/** A socket a pod's proxy holds open (`/debug/open`, and what a drain waits for). */
export interface OpenSocket {
  pod: string;
  kind: 'outbound' | 'inbound' | 'tunnel' | 'upstream';
  peer: string;
  local: string;
}

/** Tracks a socket as open until it closes (so a drain can wait for it and name it). */
export type TrackSocket = (socket: import('node:net').Socket, kind: OpenSocket['kind']) => void;

/** "address:port", "[v6]:port" of a socket's end; "?" for what a closed socket no longer knows. */
export function formatAddress(a: { address?: string | undefined; port?: number | undefined }): string {
  return formatHostPort(a.address ?? '?', a.port ?? 0);
}
