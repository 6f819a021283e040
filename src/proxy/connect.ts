import { isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { INBOUND_PASSTHROUGH_SOURCE } from '../capture/settings';
import type { PodNetwork } from '../datapath/pod-network';

/**
 * A connection from inside a pod's namespace. `asInbound`: delivering into that pod, from
 * 127.0.0.6, which no capture hook touches (IPv6: from the pod's own address, which
 * sk_lookup skips as a self-connection). Otherwise the pod's own source address.
 */
export function connectIn(network: PodNetwork, target: { address: string; port: number }, timeoutMs: number, asInbound: boolean): Promise<Duplex> {
  const family = isIPv6(target.address) ? 6 : 4;
  const bindAddress = asInbound && family === 4 ? INBOUND_PASSTHROUGH_SOURCE : undefined;
  return new Promise((resolve, reject) => {
    let socket: Socket;
    try {
      socket = network.connect({ family, address: target.address, port: target.port, timeoutMs, ...(bindAddress ? { bindAddress } : {}) });
    } catch (err) {
      reject(err);
      return;
    }
    socket.setNoDelay(true);
    socket.once('connect', () => { socket.removeListener('error', reject); resolve(socket); });
    socket.once('error', reject);
  });
}
