import type { HealthServer } from '../../admin/health-server';
import { MAX_FDS_PER_MESSAGE, type FdChannel } from '../../datapath/fd-channel';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import { quiesce, release, relayFds, resume, type HandableRelay } from '../../proxy/handover/handable-relays';
import type { OfferedListener } from '../../proxy/handover/listeners';
import type { NodeProxy } from '../../proxy/node/node-proxy';
import { expectMessage } from './channel-steps';
import { ADOPT_WAIT_MS, LISTENING_WAIT_MS, MAX_RELAYS_PER_BATCH, PROTOCOL_VERSION, STEP_MS, type ToReceiver, type ToSender } from './protocol';
import type { HandoverStatus } from './status';

export interface SenderDeps {
  proxy: NodeProxy;
  health: HealthServer | undefined;
  log: Logger;
  setStatus(status: HandoverStatus): void;
  /** Everything handable was handed: the caller drains the rest and exits. */
  onDone(): void;
}

/**
 * The running agent's side of a hand-over (protocol.ts): offers its listeners, stops
 * accepting once the new agent accepts on them, hands its TCP relays batch by batch, and
 * on any failure of the new agent takes everything it still holds back into use.
 */
export class HandoverSender {
  private busy = false;
  private finished = false;

  constructor(private readonly deps: SenderDeps) {}

  /** A new agent connected. One hand-over at a time; none after one succeeded. */
  serve(channel: FdChannel): void {
    if (this.busy || this.finished) {
      const reason = this.finished ? 'this agent already handed over and is exiting' : 'a hand-over is in progress';
      void channel.send({ type: 'refused', reason } satisfies ToReceiver, [], STEP_MS).catch(() => undefined).finally(() => channel.close());
      return;
    }
    this.busy = true;
    void this.run(channel).finally(() => {
      this.busy = false;
      channel.close();
    });
  }

  private async run(channel: FdChannel): Promise<void> {
    const { proxy, health, log } = this.deps;
    const started = Date.now();
    const status: HandoverStatus = { state: 'sending', role: 'sender', startedAt: new Date(started).toISOString(), listeners: 0, connections: 0, kept: 0 };
    const show = () => this.deps.setStatus({ ...status, durationMs: Date.now() - started });
    let healthPaused = false;
    let podsPaused = false;
    let inFlight: HandableRelay[] = [];
    try {
      const { message: hello } = await expectMessage<ToSender, 'hello'>(channel, 'hello', STEP_MS);
      if (hello.version !== PROTOCOL_VERSION) throw new Error(`the new agent speaks hand-over protocol ${hello.version}, this one ${PROTOCOL_VERSION}`);
      status.peerPid = hello.pid;
      show();
      const offers: OfferedListener[] = [...(health?.offer() ? [health.offer()!] : []), ...proxy.offerListeners()];
      log.info({ peerPid: hello.pid, listeners: offers.length, relays: proxy.handableRelays().length }, 'hand-over started: sending to the new agent');
      for (let i = 0; i < offers.length || i === 0; i += MAX_FDS_PER_MESSAGE) {
        const batch = offers.slice(i, i + MAX_FDS_PER_MESSAGE);
        const last = i + MAX_FDS_PER_MESSAGE >= offers.length;
        await channel.send({ type: 'listeners', pid: process.pid, listeners: batch.map((o) => o.meta), last } satisfies ToReceiver, batch.map((o) => o.fd), STEP_MS);
      }
      const { message: received } = await expectMessage<ToSender, 'received'>(channel, 'received', STEP_MS);
      if (received.health && health) {
        health.pause();
        healthPaused = true;
        status.listeners += 1;
      }
      const { message: listening } = await expectMessage<ToSender, 'listening'>(channel, 'listening', LISTENING_WAIT_MS);
      const pods = new Set(listening.adopted.map((m) => m.podKey).filter((k): k is string => k !== undefined));
      proxy.pauseListeners(pods);
      podsPaused = true;
      status.listeners += listening.adopted.filter((m) => m.kind !== 'health').length;
      show();

      const relays = proxy.handableRelays().filter((r) => pods.has(r.meta.podKey));
      const perBatch = Math.min(MAX_RELAYS_PER_BATCH, Math.max(1, Math.ceil(relays.length / 2)));
      let seq = 0;
      for (let i = 0; i < relays.length; i += perBatch) {
        const quiet = await Promise.all(relays.slice(i, i + perBatch).map(async (r) => ((await quiesce(r)) ? r : undefined)));
        inFlight = quiet.filter((r): r is HandableRelay => r !== undefined);
        if (inFlight.length === 0) continue;
        await channel.send({ type: 'relays', seq, relays: inFlight.map((r) => r.meta) } satisfies ToReceiver, inFlight.flatMap(relayFds), STEP_MS);
        const { message: ack } = await expectMessage<ToSender, 'adopted'>(channel, 'adopted', ADOPT_WAIT_MS);
        const adopted = new Set(ack.seq === seq ? ack.adopted : []);
        inFlight.forEach((r, index) => (adopted.has(index) ? release(r) : resume(r)));
        status.connections += adopted.size;
        inFlight = [];
        seq += 1;
        show();
      }
      status.kept = proxy.activeConnections();
      proxy.releaseListeners();
      health?.release();
      const ms = Date.now() - started;
      await channel.send({ type: 'done', listeners: status.listeners, connections: status.connections, kept: status.kept, ms } satisfies ToReceiver, [], STEP_MS);
      status.state = 'done';
      show();
      log.info({ peerPid: hello.pid, listeners: status.listeners, connections: status.connections, kept: status.kept, ms }, 'hand-over done: draining what is left, then exiting');
      this.finished = true;
      this.deps.onDone();
    } catch (err) {
      // The new agent died or misbehaved: everything we still hold serves again.
      for (const r of inFlight) resume(r);
      if (podsPaused) await proxy.resumeListeners();
      if (healthPaused) await health?.resume();
      status.state = 'failed';
      status.error = describeError(err);
      show();
      log.warn({ peerPid: status.peerPid, err: status.error, listeners: status.listeners, connections: status.connections, ms: Date.now() - started }, 'hand-over failed: serving on with what this agent still holds');
    }
  }
}
