import type { AdminServer } from '../../admin/admin-server';
import type { HealthServer } from '../../admin/health-server';
import { MAX_FDS_PER_MESSAGE, type FdChannel } from '../../datapath/fd-channel';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import { quiesce, release, releaseSocket, relayFds, resume, type HandableRelay, type HandedHttp1, type HandedUpstream } from '../../proxy/handover/handable-relays';
import { fdOf } from '../../datapath/fd';
import type { OfferedListener } from '../../proxy/handover/listeners';
import type { NodeProxy } from '../../proxy/node/node-proxy';
import { withDeadline } from '../../util/deadline';
import { expectMessage } from './channel-steps';
import { ADOPT_WAIT_MS, HTTP1_HANDOFF_MS, LISTENING_WAIT_MS, MAX_HTTP1_PER_BATCH, MAX_RELAYS_PER_BATCH, PROTOCOL_VERSION, STEP_MS, type ToReceiver, type ToSender } from './protocol';
import type { HandoverStatus } from './status';

export interface SenderDeps {
  proxy: NodeProxy;
  health: HealthServer | undefined;
  admin: AdminServer | undefined;
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
    const { proxy, health, admin, log } = this.deps;
    const started = Date.now();
    const status: HandoverStatus = { state: 'sending', role: 'sender', startedAt: new Date(started).toISOString(), listeners: 0, connections: 0, kept: 0 };
    const show = () => this.deps.setStatus({ ...status, durationMs: Date.now() - started });
    let healthPaused = false;
    let adminPaused = false;
    let podsPaused = false;
    let inFlight: HandableRelay[] = [];
    let http1InFlight: HandedHttp1[] = [];
    // HTTP/1.1 connections handed off (detached) and not yet sent to the new agent.
    const waiting: HandedHttp1[] = [];
    // Idle upstream connections out of their pools, not yet (or not yet acknowledged as) taken.
    let upstreams: HandedUpstream[] = [];
    let upstreamsInFlight: HandedUpstream[] = [];
    try {
      const { message: hello } = await expectMessage<ToSender, 'hello'>(channel, 'hello', STEP_MS);
      if (hello.version !== PROTOCOL_VERSION) throw new Error(`the new agent speaks hand-over protocol ${hello.version}, this one ${PROTOCOL_VERSION}`);
      status.peerPid = hello.pid;
      show();
      const offers: OfferedListener[] = [health?.offer(), admin?.offer(), ...proxy.offerListeners()].filter((o): o is OfferedListener => o !== undefined);
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
      if (received.admin && admin) {
        admin.pause();
        adminPaused = true;
        status.listeners += 1;
      }
      const { message: listening } = await expectMessage<ToSender, 'listening'>(channel, 'listening', LISTENING_WAIT_MS);
      const pods = new Set(listening.adopted.map((m) => m.podKey).filter((k): k is string => k !== undefined));
      proxy.pauseListeners(pods);
      podsPaused = true;
      status.listeners += listening.adopted.length;
      show();

      const relays = proxy.handableRelays().filter((r) => pods.has(r.meta.podKey));
      const perBatch = Math.min(MAX_RELAYS_PER_BATCH, Math.max(1, Math.ceil(relays.length / 2)));
      const released: Array<Promise<void>> = [];
      let seq = 0;
      // One batch out with its descriptors, the new agent's acknowledgement back: which of
      // the batch it took (by index; an answer to another batch takes none), counted.
      const exchange = async (message: ToReceiver, fds: number[]): Promise<Set<number>> => {
        await channel.send(message, fds, STEP_MS);
        const { message: ack } = await expectMessage<ToSender, 'adopted'>(channel, 'adopted', ADOPT_WAIT_MS);
        const adopted = new Set(ack.seq === seq ? ack.adopted : []);
        status.connections += adopted.size;
        seq += 1;
        return adopted;
      };
      for (let i = 0; i < relays.length; i += perBatch) {
        const quiet = await Promise.all(relays.slice(i, i + perBatch).map(async (r) => ((await quiesce(r)) ? r : undefined)));
        inFlight = quiet.filter((r): r is HandableRelay => r !== undefined);
        if (inFlight.length === 0) continue;
        const adopted = await exchange({ type: 'relays', seq, relays: inFlight.map((r) => r.meta) }, inFlight.flatMap(relayFds));
        inFlight.forEach((r, index) => {
          if (!adopted.has(index)) return resume(r);
          released.push(release(r));
        });
        inFlight = [];
        show();
      }
      // HTTP/1.1 connections, each once it is between requests (idle ones now, busy ones when
      // their response is written out): the next request goes to the new agent. Those still
      // busy after HTTP1_HANDOFF_MS finish here and close after their response.
      let wake: (() => void) | undefined;
      proxy.handOffHttp1(pods, (h) => {
        waiting.push(h);
        wake?.();
      });
      const giveUpAt = Date.now() + HTTP1_HANDOFF_MS;
      for (;;) {
        if (waiting.length === 0) {
          if (proxy.pendingHttp1() === 0 || Date.now() >= giveUpAt) break;
          // Woken by the next connection handed off, or after a short poll of pendingHttp1.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 20);
            wake = () => { clearTimeout(timer); resolve(); };
          });
          wake = undefined;
          continue;
        }
        http1InFlight = waiting.splice(0, MAX_HTTP1_PER_BATCH).filter((h) => !h.socket.destroyed);
        if (http1InFlight.length === 0) continue;
        const batch = http1InFlight;
        const adopted = await exchange({ type: 'http1', seq, connections: batch.map((h) => h.meta) }, batch.map((h) => fdOf(h.socket)));
        batch.forEach((h, index) => {
          if (adopted.has(index)) released.push(releaseSocket(h.socket));
          else proxy.keepHttp1(h);
        });
        http1InFlight = [];
        show();
      }
      proxy.stopHandingOffHttp1();
      // Handed off while the loop ended: served here (the last batch went already).
      for (const h of waiting.splice(0)) proxy.keepHttp1(h);
      // Idle upstream HTTP/1.1 connections (the pools' keep-alive ones to the pods' apps and
      // to direct endpoints): the new agent's pools of the same keys take them. One not
      // taken is closed: it is idle, nothing is lost.
      upstreams = proxy.takeIdleUpstreams(pods);
      while (upstreams.length > 0) {
        const batch = upstreams.splice(0, MAX_HTTP1_PER_BATCH).filter((u) => !u.socket.destroyed);
        if (batch.length === 0) continue;
        upstreamsInFlight = batch;
        const adopted = await exchange({ type: 'upstream1', seq, connections: batch.map((u) => u.meta) }, batch.map((u) => fdOf(u.socket)));
        batch.forEach((u, index) => {
          if (adopted.has(index)) released.push(releaseSocket(u.socket));
          else u.socket.destroy();
        });
        upstreamsInFlight = [];
        status.upstreams = (status.upstreams ?? 0) + adopted.size;
        show();
      }
      // What stays here to drain: sockets still open once the released ones have closed.
      await withDeadline(Promise.all(released), STEP_MS, 'the handed sockets to close here').catch(() => undefined);
      status.kept = proxy.activeConnections();
      proxy.releaseListeners();
      health?.release();
      admin?.release();
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
      proxy.stopHandingOffHttp1();
      for (const h of [...http1InFlight, ...waiting.splice(0)]) proxy.keepHttp1(h);
      // Idle upstream connections out of their pools: closed (the pools open new ones).
      for (const u of [...upstreamsInFlight, ...upstreams]) u.socket.destroy();
      if (podsPaused) await proxy.resumeListeners();
      if (healthPaused) await health?.resume();
      if (adminPaused) await admin?.resume();
      status.state = 'failed';
      status.error = describeError(err);
      show();
      log.warn({ peerPid: status.peerPid, err: status.error, listeners: status.listeners, connections: status.connections, ms: Date.now() - started }, 'hand-over failed: serving on with what this agent still holds');
    }
  }
}
