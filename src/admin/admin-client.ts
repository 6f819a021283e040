import { request } from 'node:http';
import { NodemeshError } from '../errors';

/** GET on a running agent's admin API over its unix socket; parses JSON responses. */
export function adminGet<T = unknown>(socketPath: string, path: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(refusal(path, res.statusCode, body));
          return;
        }
        const type = String(res.headers['content-type'] ?? '');
        resolve((type.includes('json') ? JSON.parse(body) : body) as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      reject(new NodemeshError('ERR_NM_AGENT_UNREACHABLE', `cannot reach the agent at ${socketPath}: ${err.message}`, {
        hint: 'is the agent running? `nodemesh agent --help`',
        cause: err,
      }));
    });
    req.end();
  });
}

/**
 * A 400 is the agent saying what is wrong with the question (admin-server.ts: a route's
 * NodemeshError, as `{error, code}`): its own code and words. Anything else is the admin
 * API failing.
 */
function refusal(path: string, status: number | undefined, body: string): NodemeshError {
  if (status === 400) {
    try {
      const answer = JSON.parse(body) as { error?: unknown; code?: unknown };
      if (typeof answer.error === 'string' && typeof answer.code === 'string') return new NodemeshError(answer.code, answer.error, { details: { path, status } });
    } catch {
      // not the admin server's JSON: reported as it came, below
    }
  }
  return new NodemeshError('ERR_NM_ADMIN', `admin ${path} answered ${status}: ${body.slice(0, 200)}`);
}
