/**
 * Weighted choice among backends. Weights are relative (Gateway API: "proportional to
 * the sum of all weights"); a weight of 0 is never chosen; with no positive weight there
 * is nothing to choose and the caller answers 500 (no backend).
 */
export function pickWeighted<T extends { weight: number }>(items: readonly T[], random: () => number = Math.random): T | undefined {
  let total = 0;
  for (const item of items) if (item.weight > 0) total += item.weight;
  if (total <= 0) return undefined;
  if (items.length === 1) return items[0];
  // random() is in [0, 1); clamp anyway so that a misbehaving source cannot fall off the end.
  let point = Math.min(Math.max(random(), 0), 1) * total;
  let last: T | undefined;
  for (const item of items) {
    if (item.weight <= 0) continue;
    if (point < item.weight) return item;
    point -= item.weight;
    last = item;
  }
  return last;
}
