/**
 * The scale part of the bench's reports (`nodemesh bench --scale`, measured by
 * ./scale-runner.ts): its goals, its markdown section and its panel of report.svg. Pure
 * functions, like ./report.ts, which calls them.
 */
import type { Goal, ScaleFigures, ScaleRow } from './report-schema';

const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;

/** The issue's targets for the agent at scale. */
export const SCALE_TARGETS = {
  idleSourceMiB: 60,
  idleKubeMiB: 80,
  perPodMiB: 0.1,
  /** MiB more for ENDPOINTS_REFERENCE endpoints (1000 Services x 10). */
  endpointsMiB: 40,
  changeMs: 20,
  readyS: 2,
} as const;
export const ENDPOINTS_REFERENCE = 10_000;

export function rowLabel(r: ScaleRow): string {
  if (r.series === 'kube') return `--kube, ${r.enrolledPods} pod${r.enrolledPods === 1 ? '' : 's'}`;
  if (r.series === 'pods') return `${r.enrolledPods} enrolled pod${r.enrolledPods === 1 ? '' : 's'}`;
  if (r.services === 0) return 'no Services, 1 enrolled pod';
  return `${r.services} Services x ${r.endpointsPerService}`;
}

function undecided(id: string, description: string, target: number, detail: string): Goal {
  return { id, description, met: null, value: null, target, detail };
}

function atMost(id: string, description: string, value: number | null, target: number, detail: string): Goal {
  if (value === null) return undecided(id, description, target, detail);
  return { id, description, met: value <= target, value, target, detail };
}

/** The scale goals; each undecided when the rows it needs are missing. */
export function scaleGoals(scale: ScaleFigures): Goal[] {
  const goals: Goal[] = [];
  const pods = scale.rows.filter((r) => r.series === 'pods' && r.idleRssMiB !== null).sort((a, b) => a.enrolledPods - b.enrolledPods);
  const fewest = pods[0];
  goals.push(atMost('scale-idle-memory-source', `idle agent (--source, fewest pods) at most ${SCALE_TARGETS.idleSourceMiB} MiB RSS`, fewest?.idleRssMiB ?? null, SCALE_TARGETS.idleSourceMiB,
    fewest ? `VmRSS ${fewest.idleRssMiB} MiB with ${fewest.enrolledPods} enrolled pod(s), ${scale.settings.idleS} s after ready` : 'no pods row'));

  const most = pods[pods.length - 1];
  if (fewest && most && most.enrolledPods > fewest.enrolledPods) {
    const per = (most.idleRssMiB! - fewest.idleRssMiB!) / (most.enrolledPods - fewest.enrolledPods);
    goals.push(atMost('scale-memory-per-pod', `at most ${SCALE_TARGETS.perPodMiB} MiB more idle RSS per enrolled pod`, round3(per), SCALE_TARGETS.perPodMiB,
      `(${most.idleRssMiB} - ${fewest.idleRssMiB} MiB) / (${most.enrolledPods} - ${fewest.enrolledPods} pods); ${pods.map((r) => `${r.enrolledPods}: ${r.idleRssMiB}`).join(', ')}`));
  } else goals.push(undecided('scale-memory-per-pod', `at most ${SCALE_TARGETS.perPodMiB} MiB more idle RSS per enrolled pod`, SCALE_TARGETS.perPodMiB, 'needs two pods rows with different counts'));

  const services = scale.rows.filter((r) => r.series === 'services' && r.idleRssMiB !== null).sort((a, b) => a.services - b.services);
  const none = services.find((r) => r.services === 0);
  const largest = services[services.length - 1];
  const endpointsDescription = `at most ${SCALE_TARGETS.endpointsMiB} MiB more idle RSS for ${ENDPOINTS_REFERENCE.toLocaleString('en-US')} endpoints (1000 Services x 10)`;
  if (none && largest && largest.services > 0) {
    const endpoints = largest.services * largest.endpointsPerService;
    const delta = largest.idleRssMiB! - none.idleRssMiB!;
    const scaled = (delta * ENDPOINTS_REFERENCE) / endpoints;
    goals.push(atMost('scale-memory-endpoints', endpointsDescription, round1(scaled), SCALE_TARGETS.endpointsMiB,
      `${largest.idleRssMiB} - ${none.idleRssMiB} MiB = ${round1(delta)} MiB for ${endpoints} endpoints in ${largest.services} Services and ${largest.podObjects} Pod objects` +
      (endpoints === ENDPOINTS_REFERENCE ? '' : `, scaled to ${ENDPOINTS_REFERENCE}`)));
  } else goals.push(undecided('scale-memory-endpoints', endpointsDescription, SCALE_TARGETS.endpointsMiB, 'needs a services row with none and one with some'));

  const changeDescription = `a change at the largest scale applied within ${SCALE_TARGETS.changeMs} ms (largest of the changes; write to /debug/config)`;
  goals.push(largest?.change && largest.services > 0
    ? atMost('scale-change-apply', changeDescription, largest.change.maxMs, SCALE_TARGETS.changeMs, `${rowLabel(largest)}: ${largest.change.changes} changes, median ${largest.change.medianMs} ms, max ${largest.change.maxMs} ms`)
    : undecided('scale-change-apply', changeDescription, SCALE_TARGETS.changeMs, 'no services row with changes'));
  const readyDescription = `ready within ${SCALE_TARGETS.readyS} s at the largest scale`;
  goals.push(largest && largest.services > 0
    ? atMost('scale-ready', readyDescription, largest.readyS, SCALE_TARGETS.readyS, `${rowLabel(largest)}: from spawning the agent to its pod enrolled and every Service loaded`)
    : undecided('scale-ready', readyDescription, SCALE_TARGETS.readyS, 'no services row with Services'));

  const kube = scale.rows.find((r) => r.series === 'kube');
  goals.push(atMost('scale-idle-memory-kube', `idle agent (--kube) at most ${SCALE_TARGETS.idleKubeMiB} MiB RSS`, kube?.idleRssMiB ?? null, SCALE_TARGETS.idleKubeMiB,
    kube ? `VmRSS ${kube.idleRssMiB} MiB, ${rowLabel(kube)} (test API server), ${scale.settings.idleS} s after ready` : `no kube row${scale.skipped.length ? `: ${scale.skipped.join('; ')}` : ''}`));
  return goals;
}

const num = (n: number | null | undefined, digits: number) => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));

/** The markdown table of the scale rows. */
export function scaleTable(scale: ScaleFigures): string {
  const lines = [
    '| agent | Pod objects | ready s | idle RSS MiB | start-up peak MiB | start-up CPU-s | idle CPU % | change applied, median / max ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of scale.rows) {
    lines.push(`| ${rowLabel(r)} | ${r.podObjects} | ${num(r.readyS, 2)} | ${num(r.idleRssMiB, 1)} | ${num(r.peakRssMiB, 1)} | ${num(r.startCpuS, 2)} | ${num(r.idleCpuPercent, 2)} | ${r.change ? `${num(r.change.medianMs, 1)} / ${num(r.change.maxMs, 1)} (${r.change.changes})` : '–'} |`);
  }
  return lines.join('\n');
}

export function scaleMarkdown(scale: ScaleFigures): string[] {
  const s = scale.settings;
  const out = [
    '',
    '## Scale',
    '',
    `One agent per row, started on the simulator and left idle for ${s.idleS} s after it is ready (every pod enrolled, every Service loaded); memory from /proc/<pid>/status. ` +
      `Pods rows: that many ambient pods on the agent’s node. Services rows: one enrolled pod, plus N Services with ${s.endpointsPerService} Pod objects each on nodes outside the simulation (selector endpoints). ` +
      `A change: one new Service (with one Pod object) written into the source directory, timed until /debug/config counts it; ${s.changes} per row, one after another. ` +
      `A bare Node.js process with the agent’s flags: ${num(scale.bareNodeRssMiB, 1)} MiB RSS. Scale phase: ${Math.round(scale.elapsedS)} s.`,
    '',
    scaleTable(scale),
  ];
  if (scale.skipped.length) out.push('', ...scale.skipped.map((x) => `- skipped: ${x}`));
  return out;
}

/**
 * The scale panel of report.svg: per row, a bar of idle RSS and one of start-up peak, MiB
 * (linear). Returned as lines of one `<g class="scale">` placed at (x, y), with its height.
 */
export function scaleSvg(scale: ScaleFigures, x: number, y: number, width: number, escape: (s: string) => string): { lines: string[]; height: number } {
  const rowH = 30;
  const labelW = 190;
  const barW = width - labelW - 60;
  const max = Math.max(1, ...scale.rows.flatMap((r) => [r.idleRssMiB ?? 0, r.peakRssMiB ?? 0]));
  const scaleX = (v: number) => (v / max) * barW;
  const lines: string[] = [];
  lines.push(`<g class="scale" transform="translate(${x},${y})">`);
  lines.push(`<text x="0" y="0" font-size="13" font-weight="bold">${escape('Agent memory by scale step (MiB): idle RSS (dark), start-up peak (light)')}</text>`);
  scale.rows.forEach((r, i) => {
    const yy = 16 + i * rowH;
    const idle = r.idleRssMiB ?? 0;
    const peak = r.peakRssMiB ?? 0;
    lines.push(`<g class="scale-row" data-series="${r.series}" data-pods="${r.enrolledPods}" data-services="${r.services}" data-idle="${idle}" data-peak="${peak}">`);
    lines.push(`<text x="${labelW - 6}" y="${yy + 10}" text-anchor="end" dominant-baseline="middle">${escape(rowLabel(r))}</text>`);
    lines.push(`<rect x="${labelW}" y="${yy}" width="${scaleX(peak).toFixed(1)}" height="9" fill="#9ecae1"/>`);
    lines.push(`<rect x="${labelW}" y="${yy + 11}" width="${scaleX(idle).toFixed(1)}" height="9" fill="#1f77b4"/>`);
    lines.push(`<text x="${(labelW + scaleX(Math.max(idle, peak)) + 4).toFixed(1)}" y="${yy + 10}" dominant-baseline="middle">${escape(`${num(r.idleRssMiB, 1)} / ${num(r.peakRssMiB, 1)}`)}</text>`);
    lines.push('</g>');
  });
  lines.push('</g>');
  return { lines, height: 16 + scale.rows.length * rowH + 10 };
}
