/** One proxied (or refused) connection, as /debug/connections shows it. */
export interface ConnectionRecord {
  id: number;
  time: string;
  direction: 'outbound' | 'inbound' | 'probe';
  pod: string;
  source: string;
  /** What the app asked for (from SO_ORIGINAL_DST or the local address). */
  originalDestination: string;
  /** Where the proxy connected, when it did. */
  upstream?: string;
  /** How the destination was resolved: a Service, a pod IP, or passthrough. */
  resolution?: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  result: 'ok' | 'error';
  error?: string;
}

/** A bounded ring of the latest connections: enough for debugging, never growing. */
export class ConnectionLog {
  private readonly records: ConnectionRecord[] = [];
  private nextId = 1;

  constructor(private readonly capacity = 1000) {}

  add(record: Omit<ConnectionRecord, 'id' | 'time'>): ConnectionRecord {
    const full = { id: this.nextId++, time: new Date().toISOString(), ...record };
    this.records.push(full);
    if (this.records.length > this.capacity) this.records.shift();
    return full;
  }

  list(filter: { pod?: string; direction?: string } = {}): ConnectionRecord[] {
    return this.records.filter((r) => (!filter.pod || r.pod === filter.pod) && (!filter.direction || r.direction === filter.direction));
  }
}
