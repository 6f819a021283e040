/**
 * The demo's application (`nodemesh demo`, deploy/examples/sim/demo): a frontend that calls
 * its backends by Service name, backends that answer with their version (one of them can
 * be told to fail), and the load generator that calls the frontend. Plain HTTP/1.1 and
 * JSON, so that what the mesh does to the calls is all there is to see.
 *
 *   node dist/src/sim/apps/shop-app.js frontend --name N --backends reviews,ratings [--port 8080]
 *       GET /   calls http://<backend>/ for each backend (Service port 80), answers
 *               {name, calls: {reviews: {status, version, servedBy}, ...}}; 200 when every
 *               backend answered 200, else 502 (a backend's status stays in the body).
 *   node dist/src/sim/apps/shop-app.js backend --name N --version V [--port 8080] [--fail-share S]
 *       GET /          {name, version} (200), or 503 for a share S of the requests (0..1,
 *                      spread evenly: 0.8 fails four requests of every five)
 *       POST /fail?share=S  sets S (the demo breaks a backend this way, and mends it)
 *       GET /stats     {name, version, served, failed} (not counting /stats and /fail)
 *   node dist/src/sim/apps/shop-app.js load URL [--count N] [--concurrency C] [--timeout MS]
 *       N requests (default 100) over C keep-alive connections (default 4); prints one JSON
 *       line {count, statuses: {"200": n}, errors: {CODE: n}, versions: {reviews: {v1: n}},
 *       backendStatuses: {ratings: {"200": n}}, ms} (versions and backend statuses from the
 *       frontend's bodies).
 *   node dist/src/sim/apps/shop-app.js get URL [--method M] [--timeout MS]
 *       one request; prints {status, body} or {error, message}.
 *
 * Servers print `listening PORT` once bound, and stop on SIGTERM/SIGINT.
 */
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { errorCode } from './l7-client';

export interface BackendCall { status: number | null; version?: string; servedBy?: string; error?: string }
export interface FrontendReply { name: string; calls: Record<string, BackendCall> }
export interface BackendStats { name: string; version: string; served: number; failed: number }
export interface LoadResult {
  count: number;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  /** Per backend of the frontend: how many answers each version gave. */
  versions: Record<string, Record<string, number>>;
  /** Per backend of the frontend: the status the frontend got (after the mesh's retries). */
  backendStatuses: Record<string, Record<string, number>>;
  ms: number;
}
export interface GetResult { status?: number; body?: string; error?: string; message?: string }

const DEFAULT_TIMEOUT_MS = 10_000;

/** One HTTP request, the body read whole. */
function fetchText(url: string, options: { method?: string; agent?: Agent; timeoutMs?: number }): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', agent: options.agent, timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url} within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function tryJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? v as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Whether request number `n` (0-based) of a backend failing `share` of its requests fails: evenly spread, exact over any run. */
export function failsAt(n: number, share: number): boolean {
  return Math.floor((n + 1) * share + 1e-9) > Math.floor(n * share + 1e-9);
}

export function backendHandler(name: string, version: string, initialShare: number): (req: IncomingMessage, res: ServerResponse) => void {
  let share = initialShare;
  let served = 0;
  let failed = 0;
  return (req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    res.setHeader('x-served-by', name);
    if (url.pathname === '/stats') return sendJson(res, 200, { name, version, served, failed } satisfies BackendStats);
    if (url.pathname === '/fail' && req.method === 'POST') {
      const s = Number(url.searchParams.get('share'));
      if (!Number.isFinite(s) || s < 0 || s > 1) return sendJson(res, 400, { error: 'share must be 0..1', name });
      share = s;
      return sendJson(res, 200, { name, version, share });
    }
    const fail = failsAt(served, share);
    served += 1;
    if (fail) {
      failed += 1;
      return sendJson(res, 503, { name, version, error: 'failing on purpose (shop-app --fail-share)' });
    }
    sendJson(res, 200, { name, version });
  };
}

export function frontendHandler(name: string, backends: string[], timeoutMs = DEFAULT_TIMEOUT_MS): (req: IncomingMessage, res: ServerResponse) => void {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  return (req, res) => {
    req.resume();
    void Promise.all(backends.map(async (b): Promise<[string, BackendCall]> => {
      try {
        const r = await fetchText(`http://${b}/`, { agent, timeoutMs });
        const body = tryJson(r.body);
        const served = r.headers['x-served-by'];
        return [b, {
          status: r.status,
          ...(typeof body?.version === 'string' ? { version: body.version } : {}),
          ...(typeof served === 'string' ? { servedBy: served } : {}),
        }];
      } catch (err) {
        return [b, { status: null, error: errorCode(err) }];
      }
    })).then((calls) => {
      const reply: FrontendReply = { name, calls: Object.fromEntries(calls) };
      sendJson(res, calls.every(([, c]) => c.status === 200) ? 200 : 502, reply);
    });
  };
}

/** N requests to the frontend over C connections; what came back, tallied. */
export async function runLoad(url: string, count: number, concurrency: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const result: LoadResult = { count, statuses: {}, errors: {}, versions: {}, backendStatuses: {}, ms: 0 };
  const bump = (o: Record<string, number>, k: string) => { o[k] = (o[k] ?? 0) + 1; };
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      try {
        const r = await fetchText(url, { agent, timeoutMs });
        bump(result.statuses, String(r.status));
        const calls = (tryJson(r.body) as FrontendReply | undefined)?.calls ?? {};
        for (const [backend, call] of Object.entries(calls)) {
          bump(result.backendStatuses[backend] ??= {}, call.status === null ? (call.error ?? 'error') : String(call.status));
          if (call.status === 200 && call.version) bump(result.versions[backend] ??= {}, call.version);
        }
      } catch (err) {
        bump(result.errors, errorCode(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  agent.destroy();
  result.ms = Date.now() - started;
  return result;
}

// ------------------------------------------------------------------------------ command line

function flags(argv: string[]): { positional: string[]; values: Record<string, string> } {
  const positional: string[] = [];
  const values: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${a} needs a value`);
    values[a.slice(2)] = v;
    i += 1;
  }
  return { positional, values };
}

function numberFlag(values: Record<string, string>, key: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (values[key] === undefined) return fallback;
  const n = Number(values[key]);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${key} must be a number from ${min} to ${max}, got '${values[key]}'`);
  return n;
}

function serve(handler: (req: IncomingMessage, res: ServerResponse) => void, port: number): void {
  const server = createServer({ keepAliveTimeout: 30_000 }, handler);
  server.listen({ port, host: '::', ipv6Only: false }, () => console.log(`listening ${port}`));
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const { positional, values } = flags(rest);
  const port = numberFlag(values, 'port', 8080, 1, 65535);
  const timeoutMs = numberFlag(values, 'timeout', DEFAULT_TIMEOUT_MS, 1);
  switch (mode) {
    case 'frontend':
      return serve(frontendHandler(values.name ?? 'frontend', (values.backends ?? '').split(',').filter(Boolean), timeoutMs), port);
    case 'backend':
      return serve(backendHandler(values.name ?? 'backend', values.version ?? 'v1', numberFlag(values, 'fail-share', 0, 0, 1)), port);
    case 'load': {
      if (!positional[0]) throw new Error('load needs a URL');
      console.log(JSON.stringify(await runLoad(positional[0], numberFlag(values, 'count', 100, 1), numberFlag(values, 'concurrency', 4, 1), timeoutMs)));
      return;
    }
    case 'get': {
      if (!positional[0]) throw new Error('get needs a URL');
      const out: GetResult = await fetchText(positional[0], { method: values.method ?? 'GET', timeoutMs })
        .then((r) => ({ status: r.status, body: r.body.trim() }), (err: unknown) => ({ error: errorCode(err), message: err instanceof Error ? err.message : String(err) }));
      console.log(JSON.stringify(out));
      return;
    }
    default:
      throw new Error(`unknown mode '${mode ?? ''}'`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`shop-app: ${err instanceof Error ? err.message : String(err)}\nusage: shop-app frontend|backend|load|get ... (see the comment at the top of src/sim/apps/shop-app.ts)`);
    process.exit(2);
  });
}
