import { H1ParseError } from './parse-error';

/**
 * The four forms of request-target (RFC 9112 §3.2), reduced to what routing matches and
 * what is forwarded: the origin-form (path and query), and the authority when the target
 * carries one. An absolute-form target (`GET http://other.test/admin HTTP/1.1`) must be
 * matched as `/admin` with the authority `other.test` (§3.2.2: the target's authority
 * wins over Host); kept whole, it would match no path rule, and an authorization rule on
 * `/admin` would not see it while the app behind does.
 */
export interface RequestTarget {
  /** origin-form: absolute-path ["?" query]; "*" for OPTIONS *; CONNECT: its authority. */
  path: string;
  /** From an absolute-form or authority-form target; undefined: Host says. */
  authority: string | undefined;
}

/**
 * uri-host [":" port] (RFC 3986 §3.2.2, RFC 9110 §4.2.1): an IP-literal or a non-empty
 * reg-name (unreserved, pct-encoded, sub-delims); no userinfo (§4.2.4: an error), a port
 * of digits when there is a colon.
 */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::[0-9]{1,5})?$/;
/** The schemes this proxy serves; any other absolute-URI (ftp:, urn:) is not for it. */
const SCHEME = /^https?:\/\//i;

function fail400(reason: string): never {
  throw new H1ParseError(400, reason);
}

/** Reads a request-target (already checked to be visible ASCII without SP). */
export function parseRequestTarget(method: string, target: string): RequestTarget {
  // No form allows a fragment (§3.2); a path that carries one would compare unequal to the
  // rule written for it, while the app drops the fragment and serves the path.
  if (target.includes('#')) fail400('a fragment (#) in the request-target');
  if (method === 'CONNECT') {
    if (!AUTHORITY.test(target) || !target.includes(':', target.lastIndexOf(']') + 1)) fail400('malformed request-target (CONNECT needs host:port)');
    return { path: target, authority: target };
  }
  if (target.charCodeAt(0) === 0x2f /* / */) return { path: target, authority: undefined };
  // Meant for OPTIONS (§3.2.4), accepted for any method as llhttp does (SSDP's M-SEARCH *):
  // "*" names no resource a path rule could be about.
  if (target === '*') return { path: '*', authority: undefined };
  const scheme = SCHEME.exec(target);
  if (!scheme) fail400('malformed request-target (neither a path nor an http(s) URL)');
  const rest = target.slice(scheme[0].length);
  let end = 0;
  while (end < rest.length && rest.charCodeAt(end) !== 0x2f && rest.charCodeAt(end) !== 0x3f /* ? */) end++;
  const authority = rest.slice(0, end);
  if (authority.length === 0) fail400('an absolute-form request-target without a host');
  if (authority.includes('@')) fail400('userinfo in the request-target');
  if (!AUTHORITY.test(authority)) fail400('malformed authority in the request-target');
  let path = rest.slice(end);
  // An empty path is "/", and "*" for OPTIONS (§3.2.1, §3.2.4).
  if (path.length === 0) path = method === 'OPTIONS' ? '*' : '/';
  else if (path.charCodeAt(0) === 0x3f) path = `/${path}`;
  return { path, authority };
}
