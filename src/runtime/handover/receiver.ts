import { existsSync } from 'node:fs';
import { closeFds, FdChannel } from '../../datapath/fd-channel';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import { InheritedListeners, type ListenerMeta } from '../../proxy/handover/listeners';
import type { NodeProxy } from '../../proxy/node/node-proxy';
import { expectMessage } from './channel-steps';
import { pauseAt } from './pause-hook';
import { PROTOCOL_VERSION, STEP_MS, type ToReceiver, type ToSender } from './protocol';
import type { HandoverStatus } from './status';

/** How long the new agent waits for the old one's `done` after the last batch (the old one's own steps are bounded). */
const DONE_WAIT_MS = 60_000;

/**
 * The new agent's side of a hand-over (protocol.ts). `connect` takes the listeners
 * before anything else starts (health first: no wait for the port); the runtime adopts
 * them as it starts the pods, then `complete` tells the old agent and takes the relays.
 */
export class HandoverReceiver {
  private readonly started = Date.now();
  private readonly status: HandoverStatus;

  private constructor(
    private readonly channel: FdChannel,
    private readonly log: Logger,
    private readonly setStatus: (s: HandoverStatus) => void,
    readonly inherited: InheritedListeners,
    readonly health: { fd: number; port: number } | undefined,
    readonly admin: { fd: number; port: number } | undefined,
    peerPid: number,
  ) {
    this.status = { state: 'receiving', role: 'receiver', peerPid, startedAt: new Date(this.started).toISOString(), listeners: 0, connections: 0, kept: 0 };
    this.show();
  }

  /**
   * Connects to the agent running for this instance and receives its listeners;
   * undefined when nobody listens at `path` (a first start) or it refuses.
   */
  static async connect(path: string, log: Logger, setStatus: (s: HandoverStatus) => void): Promise<HandoverReceiver | undefined> {
    const channel = FdChannel.connect(path);
    if (!channel) {
      // Which of the two it was tells a failed rolling restart apart from a first start.
      log.info({ socket: path, socketFile: existsSync(path) ? 'present, nobody listening' : 'absent' }, 'no running agent to take over from: starting on our own');
      return undefined;
    }
    const offers: Array<{ meta: ListenerMeta; fd: number }> = [];
    try {
      await channel.send({ type: 'hello', version: PROTOCOL_VERSION, pid: process.pid } satisfies ToSender, [], STEP_MS);
      let pid = 0;
      for (;;) {
        const { message, fds } = await expectMessage<ToReceiver, 'listeners'>(channel, 'listeners', STEP_MS);
        if (fds.length !== message.listeners.length) {
          closeFds(fds);
          throw new Error(`${message.listeners.length} listeners announced, ${fds.length} descriptors came`);
        }
        message.listeners.forEach((meta, i) => offers.push({ meta, fd: fds[i]! }));
        pid = message.pid;
        if (message.last) break;
      }
      const node = (kind: string) => {
        const i = offers.findIndex((o) => o.meta.kind === kind);
        const offer = i >= 0 ? offers.splice(i, 1)[0]! : undefined;
        return offer ? { fd: offer.fd, port: offer.meta.port } : undefined;
      };
      const health = node('health');
      const admin = node('admin');
      log.info({ peerPid: pid, listeners: offers.length + (health ? 1 : 0) + (admin ? 1 : 0) }, 'hand-over started: receiving from the running agent');
      return new HandoverReceiver(channel, log, setStatus, new InheritedListeners(offers), health, admin, pid);
    } catch (err) {
      closeFds(offers.map((o) => o.fd));
      channel.close();
      log.warn({ err: describeError(err) }, 'hand-over not possible: starting on our own');
      return undefined;
    }
  }

  private show(): void {
    this.setStatus({ ...this.status, durationMs: Date.now() - this.started });
  }

  /** Tells the old agent which node ports (health, admin) are served here now. False: the old agent's hand-over has gone. */
  async confirmNodePorts(health: boolean, admin: boolean): Promise<boolean> {
    this.status.listeners += (health ? 1 : 0) + (admin ? 1 : 0);
    return this.step(() => this.channel.send({ type: 'received', health, admin } satisfies ToSender, [], STEP_MS));
  }

  /**
   * Once the first configuration applied (the pods' listeners adopted): the old agent
   * stops accepting, and its TCP relays come over batch by batch until `done`.
   */
  async complete(proxy: NodeProxy): Promise<void> {
    try {
      await pauseAt('after-listeners', this.log, (p) => this.pause(p));
      this.status.listeners += this.inherited.adopted.length;
      await this.channel.send({ type: 'listening', adopted: [...this.inherited.adopted] } satisfies ToSender, [], STEP_MS);
      this.show();
      let batches = 0;
      for (;;) {
        const got = await this.channel.recv<ToReceiver>(DONE_WAIT_MS);
        if (!got) throw new Error('the old agent closed the hand-over before it was done');
        const { message, fds } = got;
        if (message.type === 'done') {
          closeFds(fds);
          this.status.state = 'done';
          this.status.kept = message.kept;
          this.show();
          this.log.info({ peerPid: this.status.peerPid, listeners: this.status.listeners, connections: this.status.connections, keptByOld: message.kept, ms: Date.now() - this.started }, 'hand-over done: serving everything handed over');
          return;
        }
        if (message.type === 'upstream1' && fds.length === message.connections.length) {
          const adopted = await this.adoptBatch(message.seq, message.connections.map((meta, i) => () => proxy.adoptUpstream(meta, fds[i]!)));
          this.status.upstreams = (this.status.upstreams ?? 0) + adopted;
          this.show();
          continue;
        }
        if (message.type === 'http1' && fds.length === message.connections.length) {
          await this.adoptBatch(message.seq, message.connections.map((meta, i) => () => proxy.adoptHttp1(meta, fds[i]!)));
          continue;
        }
        if (message.type !== 'relays' || fds.length !== message.relays.length * 2) {
          closeFds(fds);
          throw new Error(`unexpected hand-over message '${message.type}'`);
        }
        await this.adoptBatch(message.seq, message.relays.map((meta, i) => () => proxy.adoptRelay(meta, fds[2 * i]!, fds[2 * i + 1]!)));
        batches += 1;
        if (batches === 1) await pauseAt('after-half-connections', this.log, (p) => this.pause(p));
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.close();
    }
  }

  /** Adopts each of a batch (false: not taken here), tells the old agent which, counts them; how many were taken. */
  private async adoptBatch(seq: number, adoptions: Array<() => boolean>): Promise<number> {
    const adopted = adoptions.flatMap((adopt, i) => (adopt() ? [i] : []));
    await this.channel.send({ type: 'adopted', seq, adopted } satisfies ToSender, [], STEP_MS);
    this.status.connections += adopted.length;
    this.show();
    return adopted.length;
  }

  private pause(point: string | undefined): void {
    if (point === undefined) delete this.status.pausedAt;
    else this.status.pausedAt = point;
    this.show();
  }

  private async step(work: () => Promise<void>): Promise<boolean> {
    try {
      await work();
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private fail(err: unknown): void {
    if (this.status.state !== 'receiving') return;
    this.status.state = 'failed';
    this.status.error = describeError(err);
    this.show();
    this.log.warn({ peerPid: this.status.peerPid, err: this.status.error, listeners: this.status.listeners, connections: this.status.connections, ms: Date.now() - this.started }, 'hand-over failed: this agent serves what it received and opens the rest itself');
  }

  private adminTaken = false;

  /** The admin port's descriptor, once (the runtime serves it). */
  takeAdmin(): number | undefined {
    if (!this.admin || this.adminTaken) return undefined;
    this.adminTaken = true;
    return this.admin.fd;
  }

  get failed(): boolean {
    return this.status.state === 'failed';
  }

  close(): void {
    this.inherited.closeRest();
    if (this.admin && !this.adminTaken) closeFds([this.admin.fd]);
    this.channel.close();
  }
}
