import type { Socket } from 'node:net';
import type { ProxyInputs } from '../inputs';

/** The reply to a capture self-test connection; the agent checks for it. */
export const PROBE_REPLY_PREFIX = 'nodemesh-capture-ok';

/** How long a prober may keep the connection after the reply (it closes once it has read it). */
const PROBE_LINGER_MS = 5000;

/**
 * Answers the capture self-test: a connection from a pod to its own IP on the probe port
 * reaches the proxy only when capture worked and the original destination was recovered.
 */
export function answerProbe(inputs: ProxyInputs, client: Socket, podKey: string, pod: { namespace: string; name: string }, source: string, original: string): void {
  client.on('end', () => client.destroy());
  client.setTimeout(PROBE_LINGER_MS, () => client.destroy());
  client.end(`${PROBE_REPLY_PREFIX} ${podKey}\n`);
  inputs.metrics.connections.inc({ direction: 'probe', namespace: pod.namespace, pod: pod.name, result: 'ok' });
  inputs.log.add({ direction: 'probe', pod: podKey, source, originalDestination: original, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'ok' });
}
