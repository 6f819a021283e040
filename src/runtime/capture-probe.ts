import { isIPv4 } from 'node:net';
import { NodemeshError, describeError } from '../errors';
import { PROBE_REPLY_PREFIX } from '../proxy/outbound/probe';
import type { PodSandbox } from '../datapath/pod-sandbox';

/**
 * Proves that capture works for a pod: from inside the pod, without the proxy's mark,
 * connect to the pod's own IP on the probe port. Only the proxy answers that port, and
 * only when the connection was captured and its original destination recovered; without
 * capture the connection is refused inside the pod and nothing leaves it.
 */
/**
 * How long the probe's answer may take. A wrong capture fails at once (refused), so this
 * only bounds a loaded node: 3 s was seen to pass on a 2-core machine running two agents
 * of a node side by side (a rolling update) under load, and the failed enroll's rollback
 * then cut the pod's capture under the agent handing it over.
 */
export const PROBE_TIMEOUT_MS = 10_000;

export async function probeCapture(sandbox: PodSandbox, podIPs: string[], probePort: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const address = podIPs.find((ip) => isIPv4(ip)) ?? podIPs[0];
  if (!address) {
    throw new NodemeshError('ERR_NM_CAPTURE_UNVERIFIED', 'the pod has no IP to probe capture with', { hint: 'check status.podIPs' });
  }
  const family = isIPv4(address) ? 4 : 6;
  const reply = await new Promise<string>((resolve, reject) => {
    let data = '';
    const socket = sandbox.connectAsApp({ family, address, port: probePort, timeoutMs });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { data += chunk; });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data);
    });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
  }).catch((err: unknown) => {
    throw new NodemeshError('ERR_NM_CAPTURE_UNVERIFIED', `capture self-test to ${address}:${probePort} failed: ${describeError(err)}`, {
      hint: 'the pod is left uncaptured; run `nodemesh doctor` and check the agent log for the capture back-end',
      cause: err,
    });
  });
  if (!reply.startsWith(PROBE_REPLY_PREFIX)) {
    throw new NodemeshError('ERR_NM_CAPTURE_UNVERIFIED', `capture self-test to ${address}:${probePort} got an unexpected answer '${reply.slice(0, 60)}'`, {
      hint: 'something else answers the probe port inside the pod; the pod is left uncaptured',
    });
  }
}
