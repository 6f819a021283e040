import { parseGatewayDuration } from '../config/duration';
import { FieldError, FieldReader } from '../config/validation';
import { NodemeshError } from '../errors';
import { fullRegex } from './matchers';

/** The field readers of Gateway API routes (the validation kit, without "quote it" hints), and their own checks. */

export type Obj = Record<string, unknown>;

export const read = new FieldReader();

export function duration(value: unknown, path: string): number | undefined {
  const text = read.string(value, path);
  if (text === undefined) return undefined;
  try {
    return parseGatewayDuration(text);
  } catch (err) {
    if (err instanceof NodemeshError) throw new FieldError(path, err.message);
    throw err;
  }
}

export function regex(source: string, path: string, against: string): RegExp {
  try {
    return fullRegex(source);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err);
    throw new FieldError(path, `"${source}" is not a valid regular expression (${why}); write a JavaScript RegExp, matched against the whole ${against} (RE2 inline flags such as (?i) are not supported)`);
  }
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
export const REDIRECT_CODES = [301, 302, 303, 307, 308];
export const MAX_WEIGHT = 1_000_000;
export const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
export const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

export function headerName(value: unknown, path: string): string {
  const name = read.requiredString(value, path, 'a header name');
  if (name.length > 256 || !HEADER_NAME.test(name)) throw new FieldError(path, `"${name}" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256 characters)`);
  return name;
}

export function hostname(value: unknown, path: string): string | undefined {
  const text = read.string(value, path);
  if (text === undefined) return undefined;
  if (text.length > 253 || !PRECISE_HOSTNAME.test(text)) throw new FieldError(path, `"${text}" is not a valid hostname (lower-case DNS name, no wildcard, no port)`);
  return text;
}
