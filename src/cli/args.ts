import { parseArgs, type ParseArgsConfig } from 'node:util';
import { NodemeshError } from '../errors';

/** parseArgs with nodemesh's error: an unknown or malformed flag says how to get help. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new NodemeshError('ERR_NM_USAGE', `nodemesh ${command}: ${(err as Error).message}`, { hint: `run \`nodemesh ${command} --help\`` });
  }
}

export function parseList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

export function parsePorts(flag: string, text: string | undefined): number[] {
  return parseList(text).map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new NodemeshError('ERR_NM_USAGE', `${flag}: '${p}' is not a port number`);
    return n;
  });
}

export function parsePort(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const [port] = parsePorts(flag, text);
  return port;
}

/** `--drain-ms`: the grace for open connections on SIGTERM, a whole number of milliseconds. */
export function parseDrainMs(text: string | undefined): number {
  const ms = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(ms) || ms < 0) {
    throw new NodemeshError('ERR_NM_USAGE', `--drain-ms must be a whole number of milliseconds, got '${text ?? ''}'`);
  }
  return ms;
}
