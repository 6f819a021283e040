/**
 * The report `nodemesh bench` writes (report.json), version 1. The same schema as JSON
 * Schema (draft 2020-12) is deploy/bench/report.schema.json; test/bench-report.test.ts
 * checks every report it produces against that file, and this file against it.
 *
 * Units: latency in milliseconds, rates in requests per second, CPU in CPU-seconds,
 * memory in MiB. A number that cannot be had (no requests, a mode without proxies) is
 * `null`, never 0 or NaN (JSON has no NaN).
 *
 * Shape:
 *   BenchReport
 *     settings     what was asked for (rate, payload, connection counts, durations, rounds)
 *     load         the load generator used (fortio, or the built-in one and why)
 *     modes[]      every mode of BENCH_MODES, in that order: `measured`, or `skipped` with
 *                  the reason (a missing tool, a capture back-end the kernel refuses)
 *     results[]    one row per (mode, placement, load, connections) of a measured mode:
 *                  rounds merged (HDR histograms added, requests and CPU summed)
 *     scale        `--scale`: the agent's memory, CPU and start-up by enrolled pods and by
 *                  Services and endpoints, and the time a change takes to apply; null
 *                  when not run
 *     goals[]      the goals, each with the figures it was judged on
 */

export const REPORT_SCHEMA_ID = 'https://nodemesh.dev/schemas/bench-report/v1';
export const REPORT_VERSION = 1;

/** Every mode the bench knows, in report order. */
export const BENCH_MODES = ['direct', 'sidecar', 'ambient-iptables', 'ambient-ebpf', 'ambient-ebpf-sockmap', 'envoy-sidecar'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export const PLACEMENTS = ['same-node', 'cross-node'] as const;
export type Placement = (typeof PLACEMENTS)[number];

/** `fixed-rate`: open loop at settings.rate; `max-throughput`: as fast as answers come. */
export const LOAD_KINDS = ['fixed-rate', 'max-throughput'] as const;
export type LoadKind = (typeof LOAD_KINDS)[number];

export const PROXY_KINDS = ['node-agent', 'nodemesh-sidecar', 'envoy-sidecar'] as const;
export type ProxyKind = (typeof PROXY_KINDS)[number];

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface AddedLatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

/** One proxy process that carried a row's traffic. */
export interface ProxyFigures {
  /** e.g. "agent node1", "sidecar bench/c-sidecar", "envoy bench/s1-envoy". */
  name: string;
  kind: ProxyKind;
  node: string;
  /** utime + stime over the measured windows of the row (all rounds), from /proc/<pid>/stat. */
  cpuS: number;
  /** The largest VmHWM (/proc/<pid>/status) seen in any of the row's runs; it is reset (clear_refs 5) before each run. */
  peakMemoryMiB: number | null;
}

export interface ResultRow {
  mode: BenchMode;
  placement: Placement;
  load: LoadKind;
  connections: number;
  /** Requests per second asked for; null for max-throughput. */
  targetRate: number | null;
  /** Measured runs merged into this row (one per round). */
  runs: number;
  /** Requests answered with 2xx inside the measured windows. */
  requests: number;
  /** Non-2xx answers and transport errors inside the windows. */
  failures: number;
  /** requests / the summed window length. */
  achievedRate: number;
  /** Sum of the measured windows (s). */
  windowS: number;
  latencyMs: LatencyMs;
  /** This row minus `direct` at the same placement, load and connections; null for direct, max-throughput, or no direct row. */
  addedLatencyMs: AddedLatencyMs | null;
  /** CPU-seconds of every proxy of the row per 1000 requests; null for direct. */
  proxyCpuSPer1000: number | null;
  /** The sum of the proxies' peak memory; null for direct. */
  proxyPeakMemoryMiB: number | null;
  proxies: ProxyFigures[];
  /** Busy CPU of the whole machine per 1000 requests (load generator, server, proxies, kernel). */
  machineCpuSPer1000: number;
  /** TLS sessions the client side opened in the row's runs (the handshakes paid); null where nothing speaks TLS. */
  tlsSessions: number | null;
}

export interface ModeStatus {
  name: BenchMode;
  status: 'measured' | 'skipped';
  /** Why the mode was skipped; absent when measured. */
  reason?: string;
  /** What the mode is, in one line. */
  description: string;
  /** Version of the proxy software where it is not nodemesh itself (Envoy). */
  proxyVersion?: string;
}

export interface Goal {
  id: string;
  description: string;
  /** true / false, or null when a mode it needs was skipped or gave no numbers. */
  met: boolean | null;
  /** The measured figure compared with the target (a ratio, CPU-s, MiB). */
  value: number | null;
  target: number;
  /** How the figure was obtained, with the inputs. */
  detail: string;
}

export interface BenchSettings {
  quick: boolean;
  rate: number;
  payloadBytes: number;
  connections: number[];
  /** The connection count of the markdown's headline table. */
  headlineConnections: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  maxThroughput: { connections: number; durationS: number } | null;
  placements: Placement[];
}

export interface LoadTool {
  tool: 'fortio' | 'builtin';
  version: string;
  /** Why this tool (e.g. "fortio not installed: ..."). */
  reason: string;
  /** The command line of one fixed-rate run, as run inside the client pod. */
  example: string;
}

/** What one scale row measured (Services and pods of the row, in the agent's source). */
export const SCALE_SERIES = ['pods', 'services', 'kube'] as const;
export type ScaleSeries = (typeof SCALE_SERIES)[number];

/** The time from writing one change into the source directory until /debug/config shows it (ms). */
export interface ChangeApply {
  changes: number;
  medianMs: number;
  maxMs: number;
}

/**
 * One agent started on one scale step and left idle. `pods`: the step's number of ambient
 * pods on the agent's node; `services`: extra Services, each with `endpointsPerService`
 * Pod objects on nodes outside the simulation; `kube`: the agent with --kube against a
 * test API server.
 */
export interface ScaleRow {
  series: ScaleSeries;
  enrolledPods: number;
  services: number;
  endpointsPerService: number;
  /** Every Pod object the agent's source holds (enrolled ones included). */
  podObjects: number;
  /** From spawning the agent until every pod of the step is enrolled and the Services are loaded (s). */
  readyS: number | null;
  /** VmRSS once idle (after settle.idleS past ready). */
  idleRssMiB: number | null;
  /** VmHWM at that moment: the high-water mark of start-up. */
  peakRssMiB: number | null;
  /** utime + stime from start to ready. */
  startCpuS: number | null;
  /** CPU while idle: CPU-s per second over the settle window, in percent of one core. */
  idleCpuPercent: number | null;
  /** Changes written after the idle reading; null where none were made (the kube row). */
  change: ChangeApply | null;
}

export interface ScaleFigures {
  settings: { pods: number[]; services: number[]; endpointsPerService: number; changes: number; idleS: number; kube: boolean };
  /** RSS of a bare Node.js process with the agent's V8 flags: what the runtime costs before any of nodemesh. */
  bareNodeRssMiB: number | null;
  rows: ScaleRow[];
  /** A part that could not run (e.g. no test API server for the kube row), with the reason. */
  skipped: string[];
  elapsedS: number;
}

export interface BenchReport {
  $schema: typeof REPORT_SCHEMA_ID;
  version: typeof REPORT_VERSION;
  generatedAt: string;
  /** The commit measured (and whether src/ had uncommitted changes). */
  source: string;
  /** The command that produced the report. */
  command: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string };
  /** The simulator topology: where each placement's client and server run. */
  topology: string;
  settings: BenchSettings;
  load: LoadTool;
  modes: ModeStatus[];
  results: ResultRow[];
  /** `--scale` figures; null when the scale phase did not run. */
  scale: ScaleFigures | null;
  goals: Goal[];
  elapsedS: number;
}
