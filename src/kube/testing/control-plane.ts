import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { NodemeshError } from '../../errors';
import { sleep } from '../../util/deadline';
import { freePort } from '../../util/free-port';
import { KubeTestClient } from './kube-test-client';
import { makeTestPki, type TestPki } from './test-pki';

/**
 * A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver and
 * kube-controller-manager, as scripts/install-control-plane.sh builds them.
 *
 * - Everything listens on 127.0.0.1 only, on free ports, and lives in one temporary
 *   directory (data, certificates, logs) that close() removes.
 * - kube-apiserver: a serving certificate for 127.0.0.1 from a test CA, RBAC, static
 *   tokens for the test's users (the admin is in system:masters), service-account tokens
 *   signed by a key of the test's, and Service ranges that hold the simulator's
 *   ClusterIPs (10.96.0.0/16 and fd00:96::/112). The endpoint reconciler is off: it would
 *   publish 127.0.0.1 as the `kubernetes` Service's endpoint, which EndpointSlices refuse.
 * - kube-controller-manager runs every controller but node lifecycle (no kubelet keeps the
 *   test's Nodes Ready, and it would evict their pods after 40 s): EndpointSlices from
 *   Services and ready Pods, ServiceAccounts and their tokens, garbage collection, and
 *   CSR signing with the test CA.
 * - No kubelet and no scheduler: a test binds pods itself (spec.nodeName) and writes their
 *   status as a kubelet would; pods bound to a node are deleted with grace 0.
 */

export const CONTROL_PLANE_BIN = resolve(__dirname, '..', '..', '..', '..', '.tools', 'control-plane', 'bin');
const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const;

/** Why the control plane cannot run here, or undefined when its binaries are installed. */
export function controlPlaneMissing(binDir = CONTROL_PLANE_BIN): string | undefined {
  const missing = BINARIES.filter((b) => !existsSync(join(binDir, b)));
  return missing.length ? `${missing.join(', ')} not in ${binDir}: run scripts/install-control-plane.sh (scripts/test.sh does)` : undefined;
}

export interface ControlPlaneOptions {
  binDir?: string;
  /** The API server's watch cache (default on, as on a cluster). Off, watches read etcd, and a compaction expires them. */
  watchCache?: boolean;
  /** Bound on start-up (ms, default 90 s). */
  startTimeoutMs?: number;
}

/** Processes still running when the test process exits are killed with it. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A GET or JSON POST to etcd's plain-HTTP endpoints, bounded; rejects on a non-2xx status. */
async function etcdCall(url: string, timeoutMs: number, body?: unknown): Promise<{ text: string; json: () => Record<string, unknown> }> {
  const reply = await request(url, {
    method: body === undefined ? 'GET' : 'POST',
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await reply.body.text();
  if (reply.statusCode >= 300) throw new Error(`${body === undefined ? 'GET' : 'POST'} ${url}: HTTP ${reply.statusCode}: ${text}`);
  return { text, json: () => JSON.parse(text || '{}') as Record<string, unknown> };
}

interface Member {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<void>;
}

export class ControlPlane {
  readonly url: string;
  readonly caPem: string;
  /** The admin's bearer token (group system:masters). */
  readonly adminToken: string;
  private readonly members: Member[] = [];
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly pki: TestPki,
    readonly apiPort: number,
    readonly etcdUrl: string,
    private readonly tokens: { admin: string; controllerManager: string },
  ) {
    this.url = `https://127.0.0.1:${apiPort}`;
    this.caPem = readFileSync(pki.caCert, 'utf8');
    this.adminToken = tokens.admin;
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const binDir = options.binDir ?? CONTROL_PLANE_BIN;
    const missing = controlPlaneMissing(binDir);
    if (missing) throw new NodemeshError('ERR_NM_TEST_CONTROL_PLANE', missing);
    const dir = mkdtempSync(join(tmpdir(), 'nm-apiserver-'));
    try {
      const pki = await makeTestPki(dir);
      const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
      const tokens = { admin: randomBytes(16).toString('hex'), controllerManager: randomBytes(16).toString('hex') };
      const plane = new ControlPlane(dir, pki, apiPort, `http://127.0.0.1:${etcdClient}`, tokens);
      try {
        await plane.boot(binDir, etcdPeer, options);
      } catch (err) {
        await plane.close();
        throw err;
      }
      return plane;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private spawnMember(binDir: string, name: string, args: string[]): Member {
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(join(binDir, name), args, { stdio: ['ignore', fd, fd], cwd: this.dir });
    closeSync(fd);
    running.add(child);
    const exited = new Promise<void>((resolveExit) => {
      child.once('exit', () => {
        running.delete(child);
        resolveExit();
      });
      child.once('error', () => {
        running.delete(child);
        resolveExit();
      });
    });
    const member = { name, child, log, exited };
    this.members.push(member);
    return member;
  }

  /** Waits until `ready` answers true, failing at once if the member exits, or at the deadline. */
  private async waitReady(member: Member, what: string, deadlineAt: number, ready: () => Promise<boolean>): Promise<void> {
    let gone = false;
    void member.exited.then(() => (gone = true));
    for (;;) {
      if (gone) throw new NodemeshError('ERR_NM_TEST_CONTROL_PLANE', `${member.name} exited before ${what}:\n${tail(member.log)}`);
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadlineAt) throw new NodemeshError('ERR_NM_TEST_CONTROL_PLANE', `${member.name}: no ${what} in time:\n${tail(member.log)}`);
      await sleep(200);
    }
  }

  private async boot(binDir: string, etcdPeer: number, options: ControlPlaneOptions): Promise<void> {
    const deadlineAt = Date.now() + (options.startTimeoutMs ?? 90_000);
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = this.spawnMember(binDir, 'etcd', [
      '--name=default', `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${this.etcdUrl}`, `--advertise-client-urls=${this.etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=default=${peerUrl}`,
      // A test's data need not survive a power cut: skip fsync, which dominates on slow disks.
      '--unsafe-no-fsync', '--log-level=warn',
    ]);
    await this.waitReady(etcd, 'healthy answer', deadlineAt, async () => (await etcdCall(`${this.etcdUrl}/health`, 2000)).text.includes('"health":"true"'));

    writeFileSync(join(this.dir, 'tokens.csv'), `${this.tokens.admin},nodemesh-test-admin,admin,"system:masters"\n${this.tokens.controllerManager},system:kube-controller-manager,kcm,"system:masters"\n`, { mode: 0o600 });
    const issuer = 'https://kubernetes.default.svc.cluster.local';
    const api = this.spawnMember(binDir, 'kube-apiserver', [
      `--etcd-servers=${this.etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${this.apiPort}`,
      `--tls-cert-file=${this.pki.servingCert}`, `--tls-private-key-file=${this.pki.servingKey}`,
      `--client-ca-file=${this.pki.caCert}`, `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC', '--anonymous-auth=false',
      // As kubeadm, kind and managed clusters run it: without this, no privileged container
      // is admitted (the chart's bpffsMount init container is one).
      '--allow-privileged=true',
      `--service-account-issuer=${issuer}`, `--api-audiences=${issuer}`,
      `--service-account-key-file=${this.pki.serviceAccountPublicKey}`, `--service-account-signing-key-file=${this.pki.serviceAccountKey}`,
      '--service-cluster-ip-range=10.96.0.0/16,fd00:96::/112',
      '--endpoint-reconciler-type=none',
      `--cert-dir=${join(this.dir, 'apiserver-certs')}`,
      `--watch-cache=${options.watchCache === false ? 'false' : 'true'}`,
      '--profiling=false',
    ]);
    await this.waitReady(api, 'ready answer on /readyz', deadlineAt, async () => (await this.admin().send('GET', '/readyz')).status === 200);

    writeFileSync(join(this.dir, 'controller-manager.kubeconfig'), this.kubeConfigYaml(this.tokens.controllerManager, 'kube-controller-manager'), { mode: 0o600 });
    const cm = this.spawnMember(binDir, 'kube-controller-manager', [
      `--kubeconfig=${join(this.dir, 'controller-manager.kubeconfig')}`,
      '--bind-address=127.0.0.1', '--secure-port=0', '--leader-elect=false',
      '--controllers=*,-node-lifecycle-controller',
      `--service-account-private-key-file=${this.pki.serviceAccountKey}`, `--root-ca-file=${this.pki.caCert}`,
      `--cluster-signing-cert-file=${this.pki.caCert}`, `--cluster-signing-key-file=${this.pki.caKey}`,
      '--use-service-account-credentials=false',
    ]);
    // The ServiceAccount controller creating `default` in `default` shows the controllers run.
    await this.waitReady(cm, 'default ServiceAccount', deadlineAt, async () => (await this.admin().send('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200);
  }

  /** A client with the admin's token. */
  admin(): KubeTestClient {
    return this.client(this.adminToken);
  }

  client(token: string): KubeTestClient {
    return new KubeTestClient({ server: this.url, caPem: this.caPem, token });
  }

  /** A kubeconfig (YAML) that reaches this API server with a bearer token. */
  kubeConfigYaml(token: string, user = 'nodemesh-test'): string {
    return [
      'apiVersion: v1', 'kind: Config',
      'clusters:', `- name: test`, '  cluster:', `    server: ${this.url}`, `    certificate-authority: ${this.pki.caCert}`,
      'users:', `- name: ${user}`, '  user:', `    token: ${token}`,
      'contexts:', '- name: test', '  context:', '    cluster: test', `    user: ${user}`,
      'current-context: test', '',
    ].join('\n');
  }

  /** A token for a ServiceAccount (TokenRequest), as a pod running as it would be given. */
  async serviceAccountToken(namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
    const deadlineAt = Date.now() + 30_000;
    // A ServiceAccount created a moment ago may not be readable yet: retry a 404 briefly.
    for (;;) {
      const reply = await this.admin().send<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds },
      });
      if (reply.status === 201 && reply.body.status?.token) return reply.body.status.token;
      if (reply.status !== 404 || Date.now() > deadlineAt) throw new NodemeshError('ERR_NM_TEST_CONTROL_PLANE', `TokenRequest for ${namespace}/${name}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
      await sleep(200);
    }
  }

  /**
   * Compacts etcd's history up to its current revision, as kube-apiserver's compactor does
   * every five minutes: a watch that resumes from an older resourceVersion then gets 410
   * Gone (when it reads etcd, i.e. with the watch cache off). Resolves with the revision.
   */
  async compactEtcd(): Promise<number> {
    const range = (await etcdCall(`${this.etcdUrl}/v3/kv/range`, 5000, { key: Buffer.from('/').toString('base64') })).json();
    const revision = Number((range.header as { revision?: string } | undefined)?.revision);
    if (!Number.isFinite(revision)) throw new NodemeshError('ERR_NM_TEST_CONTROL_PLANE', `etcd gave no revision: ${JSON.stringify(range)}`);
    await etcdCall(`${this.etcdUrl}/v3/kv/compaction`, 10_000, { revision: String(revision), physical: true });
    return revision;
  }

  /** The last lines each member logged (for a failing test's message). */
  logs(lines = 20): string {
    return this.members.map((m) => `--- ${m.name}\n${tail(m.log, lines)}`).join('\n');
  }

  /** Stops every member (SIGTERM, then SIGKILL after 10 s) in reverse order and removes the directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const member of [...this.members].reverse()) {
      if (member.child.exitCode !== null || member.child.signalCode !== null) continue;
      member.child.kill('SIGTERM');
      const timer = setTimeout(() => member.child.kill('SIGKILL'), 10_000);
      await member.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
