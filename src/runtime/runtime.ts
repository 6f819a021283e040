import { Registry } from 'prom-client';
import { IdleMemoryTrimmer } from './idle-memory';
import { AdminServer } from '../admin/admin-server';
import type { CaptureReply } from '../admin/debug-replies';
import { HealthServer } from '../admin/health-server';
import type { CaptureSettings } from '../capture/settings';
import type { ConfigSource } from '../config/config-source';
import type { SourceResult } from '../config/config-source';
import { MeshSnapshot } from '../config/snapshot';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { NodeProxy, type NodeProxyOptions } from '../proxy/node/node-proxy';
import { authzCheck, authzCheckQuery } from '../proxy/authz-check';
import type { AccessLogDestination } from '../telemetry/access-log';
import { collectProcessMetrics } from '../telemetry/process-metrics';
import { withDeadline } from '../util/deadline';
import { listenFdChannels } from '../datapath/fd-channel';
import { logger } from '../log';
import { HandoverReceiver } from './handover/receiver';
import { HandoverSender } from './handover/sender';
import { idleStatus, type HandoverStatus } from './handover/status';

export interface Readiness {
  ready: boolean;
  reason: string;
}

/**
 * What a run mode adds to the runtime: the agent reconciles the pods of its node, the
 * sidecar its one pod. The runtime calls these; it never looks at pods itself.
 */
export interface RuntimeRole {
  /** Brings the mode's pods in line with a snapshot. Calls are serialised, in order. */
  reconcile(snapshot: MeshSnapshot): Promise<void>;
  /** Readiness once the first configuration applied and while not stopping. */
  readiness(): Readiness;
  /** The /debug/pods reply. */
  podRecords(): unknown[];
  /** The /debug/capture reply. */
  capture(): CaptureReply | Promise<CaptureReply>;
}

/** How a runtime serves: the flags both modes take, passed through by each. */
export interface ServingOptions {
  /** TCP port for the admin API (15020); undefined: none. */
  adminPort?: number;
  /** Address the admin port binds (default 0.0.0.0). */
  adminHost?: string;
  /** Unix socket for the admin API (`nodemesh status`, the simulator, tests). */
  adminSocket?: string;
  /** Health port (15021); undefined: none. */
  healthPort?: number;
  /** Access log destination: a file path, or '-' for stdout; undefined: none. */
  accessLog?: string;
  /** Grace for open connections on stop (ms). */
  drainMs?: number;
  /**
   * The hand-over socket (`/run/nodemesh/<instance>/handover.sock`): a new agent started
   * while one runs there takes its listeners and connections over; then this one listens
   * there for its own successor. Undefined: no hand-over.
   */
  handoverSocket?: string;
  /** Once this runtime handed everything over: the caller stops it (the drain of what is left) and exits. */
  onHandedOver?(): void;
}

export interface RuntimeOptions extends ServingOptions {
  /** Names the process metrics: nodemesh_agent_*, nodemesh_sidecar_*. */
  kind: 'agent' | 'sidecar';
  log: Logger;
  source: ConfigSource;
  settings: CaptureSettings;
  /** The node proxy's options but its access log (given as the flag, above). */
  proxy?: Omit<NodeProxyOptions, 'accessLog'>;
}

/** What a mode does at fixed points of the start; each step is awaited. */
export interface StartSteps {
  /**
   * Once the health port is ours and before anything is served: the port is the hand-off
   * lock of a rolling update, so node-wide state (capture) is touched only from here on.
   */
  afterHealth?(): Promise<void>;
  /** After the first configuration applied, before the runtime reports ready and watches for changes. */
  afterFirstApply?(): Promise<void>;
}

/** What a mode does at fixed points of the stop. */
export interface StopSteps {
  /** Once the reconcile in progress finished (or its wait ran out), before the drain. */
  beforeDrain?(): Promise<void>;
  /** After the drain and the admin server closed, before the health port is let go. */
  afterDrain?(): Promise<void> | void;
}

/** How long a stop waits for the reconcile in progress (one pod's set-up, normally milliseconds). */
export const RECONCILE_WAIT_MS = 5000;

/**
 * One runtime for both run modes (the agent and the sidecar): the metrics registry with
 * the process metrics, the node proxy, the health and admin servers with the common
 * /debug routes, the apply loop (configuration source -> snapshot -> proxy, then the
 * mode's reconcile, one at a time), readiness, and the bounded stop: not ready at once,
 * the reconcile in progress gets RECONCILE_WAIT_MS, the proxy drains for drainMs (or until
 * `cut`), and the health port goes last so a successor starts only once this one is done.
 */
export class Runtime {
  readonly registry = new Registry();
  readonly proxy: NodeProxy;
  private snapshot = MeshSnapshot.empty();
  private version = 0;
  private lastRejected: SourceResult['rejected'] = [];
  private queue: Promise<void> = Promise.resolve();
  private admin: AdminServer | undefined;
  private health: HealthServer | undefined;
  private synced = false;
  private stoppingNow = false;
  private readonly trimmer: IdleMemoryTrimmer;
  private handoverStatus: HandoverStatus = idleStatus();
  private handoverServer: { close(): void; disown(): void } | undefined;
  private readonly handoverLog = logger('handover');

  constructor(
    private readonly options: RuntimeOptions,
    private readonly role: RuntimeRole,
  ) {
    collectProcessMetrics(this.registry, `nodemesh_${options.kind}_`);
    const accessLog = accessLogDestination(options.accessLog);
    this.proxy = new NodeProxy(this.registry, options.settings, { ...options.proxy, ...(accessLog ? { accessLog } : {}) });
    this.trimmer = new IdleMemoryTrimmer(options.log);
  }

  /** True from the first moment of stop(). */
  get stopping(): boolean {
    return this.stoppingNow;
  }

  /** Serves health and admin, loads the configuration, applies it and watches for changes. */
  async start(steps: StartSteps = {}): Promise<void> {
    const { options } = this;
    const setStatus = (s: HandoverStatus) => { this.handoverStatus = s; };
    // A running agent of this instance gives us its listeners first (health included).
    const receiver = options.handoverSocket ? await HandoverReceiver.connect(options.handoverSocket, this.handoverLog, setStatus) : undefined;
    this.health = new HealthServer(() => this.readiness());
    if (receiver?.health) await this.health.adopt(receiver.health.fd, receiver.health.port);
    else if (options.healthPort !== undefined) await this.health.start(options.healthPort, '0.0.0.0', options.log);
    const inheritedAdmin = options.adminPort !== undefined ? receiver?.takeAdmin() : undefined;
    if (receiver && (await receiver.confirmNodePorts(receiver.health !== undefined, inheritedAdmin !== undefined))) this.proxy.inheritListeners(receiver.inherited);
    await steps.afterHealth?.();
    this.admin = new AdminServer({
      registry: this.registry,
      ...(options.adminPort !== undefined ? { port: options.adminPort, host: options.adminHost ?? '0.0.0.0' } : {}),
      ...(inheritedAdmin !== undefined ? { inheritedFd: inheritedAdmin } : {}),
      ...(options.adminSocket ? { socketPath: options.adminSocket } : {}),
      routes: {
        '/debug/pods': () => this.role.podRecords(),
        '/debug/connections': (q) => this.proxy.log.list({ pod: q.get('pod') ?? undefined, direction: q.get('direction') ?? undefined }),
        '/debug/capture': () => this.role.capture(),
        '/debug/config': () => this.proxy.describeConfig(this.lastRejected),
        '/debug/open': () => this.proxy.openConnections(),
        '/debug/authz': (q) => authzCheck(this.proxy.config.current, authzCheckQuery(q)),
        '/debug/handover': () => this.handoverStatus,
      },
    });
    await this.admin.start();
    const first = await options.source.load();
    await this.apply(first);
    await steps.afterFirstApply?.();
    this.synced = true;
    if (receiver) {
      if (!receiver.failed) await receiver.complete(this.proxy);
      receiver.close();
      this.proxy.inheritListeners(undefined);
    }
    if (options.handoverSocket) await this.listenForSuccessor(options.handoverSocket, setStatus);
    // Without an error handler: each source logs its own failures (and retries) with what failed.
    options.source.watch((result) => void this.apply(result));
    // Start-up grew the young generation to its maximum: given back once idle.
    this.trimmer.start();
  }

  /** From now on a new agent of this instance can take over from this one. */
  private async listenForSuccessor(path: string, setStatus: (s: HandoverStatus) => void): Promise<void> {
    const sender = new HandoverSender({
      proxy: this.proxy,
      health: this.health,
      admin: this.admin,
      log: this.handoverLog,
      setStatus,
      onDone: () => {
        // The successor binds the instance's shared socket paths now: never remove them.
        this.handoverServer?.disown();
        this.admin?.disownSharedPath();
        this.options.onHandedOver?.();
      },
    });
    this.handoverServer = await listenFdChannels(path, (channel) => {
      if (this.stoppingNow) channel.close();
      else sender.serve(channel);
    });
  }

  /** `/debug/handover`. */
  handover(): HandoverStatus {
    return this.handoverStatus;
  }

  readiness(): Readiness {
    if (this.stoppingNow) return { ready: false, reason: 'stopping: draining open connections' };
    if (!this.synced) return { ready: false, reason: 'configuration not synced yet' };
    return this.role.readiness();
  }

  /**
   * A new configuration: swap the snapshot at once (new connections see it), then queue
   * the mode's reconcile of it behind the one in progress. Resolves when that ran.
   */
  apply(result: SourceResult): Promise<void> {
    this.version += 1;
    // Built from the one before: only what changed costs (MeshSnapshot).
    this.snapshot = MeshSnapshot.from(result, this.version, this.snapshot);
    this.lastRejected = result.rejected;
    for (const r of result.rejected) this.options.log.warn({ rejected: r }, 'configuration object rejected');
    // The proxy compiles routes and policies; an object it rejects is reported and
    // skipped, everything else applies.
    this.proxy.updateSnapshot(this.snapshot, result.rejected);
    return this.reconcileAgain();
  }

  /** Queues the mode's reconcile of the current snapshot again (a failure that may pass). */
  reconcileAgain(): Promise<void> {
    const snapshot = this.snapshot;
    this.queue = this.queue.then(() => this.role.reconcile(snapshot)).catch((err: unknown) => {
      this.options.log.error({ err: describeError(err) }, 'reconcile failed');
    });
    return this.queue;
  }

  /** Waits until every queued reconcile has run. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Stops serving, bounded (see the class comment); `steps` are the mode's own. */
  async stop(cut?: AbortSignal, steps: StopSteps = {}): Promise<void> {
    const { options } = this;
    this.stoppingNow = true;
    this.trimmer.stop();
    options.source.close();
    // Not the socket file: a successor that took over has bound its own there.
    this.handoverServer?.close();
    await withDeadline(this.queue, RECONCILE_WAIT_MS, 'the reconcile in progress', 'setting up or releasing a pod is stuck (listeners, an iptables or netns command); stopping anyway').catch((err: unknown) => {
      options.log.warn({ err: describeError(err) }, 'stopping before the reconcile finished');
    });
    await steps.beforeDrain?.();
    await this.proxy.close(options.drainMs ?? 0, cut);
    await this.admin?.close();
    await steps.afterDrain?.();
    // Last: a successor waiting for the health port starts only once we are done.
    await this.health?.close();
  }
}

/** The --access-log flag: '-' is stdout, anything else a file path. */
function accessLogDestination(flag: string | undefined): AccessLogDestination | undefined {
  if (!flag) return undefined;
  return flag === '-' ? 'stdout' : { path: flag };
}
