/**
 * An HTTP path as a server resolves it (RFC 3986 §6.2.2): percent-encoded unreserved
 * characters decoded (`%61dmin` is `admin`, `%2e` is `.`), then dot segments removed
 * (§5.2.4: `/public/../admin` is `/admin`). What authorization matches, so that no
 * spelling of a path gets around a rule on it (Istio's default normalization, BASE).
 * Encoded reserved characters (`%2F`) stay encoded: they are not the same path.
 */
export function normalizePath(path: string): string {
  const decoded = path.includes('%') ? path.replace(/%([0-9a-fA-F]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : m.toUpperCase();
  }) : path;
  if (!decoded.includes('.')) return decoded;
  return removeDotSegments(decoded);
}

/** RFC 3986 §5.2.4. */
function removeDotSegments(input: string): string {
  const out: string[] = [];
  const segments = input.split('/');
  // A leading '' (absolute path) stays; the last segment decides a trailing slash.
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..' && out.length > 1) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  const joined = out.join('/');
  return input.startsWith('/') && !joined.startsWith('/') ? `/${joined}` : joined;
}
