import pino from 'pino';

/**
 * Structured JSON logs. Every logger carries a `component` field, so that one agent's
 * stream can be filtered by subsystem (capture, proxy, sim, ...).
 *
 * NODEMESH_LOG_LEVEL sets the level (default info; tests run with 'warn' unless told).
 */
const root = pino({
  level: process.env.NODEMESH_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type Logger = pino.Logger;

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}
