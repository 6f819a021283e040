import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DirectorySource } from '../config/directory-source';
import { parseDuration } from '../config/duration';
import { describeError, NodemeshError } from '../errors';
import type { AgentAuthenticator, PodRegistry } from '../identity/agent-authentication';
import { CaServer, DEFAULT_CA_SERVER_NAME } from '../identity/ca-server';
import { generateCaFiles, readCaFiles, rotateRoot, tokenKey } from '../identity/ca-state';
import { LocalTokenAuthenticator, mintLocalToken } from '../identity/local-token';
import { checkTrustDomain } from '../identity/spiffe-id';
import { coreKinds } from '../kinds/registry';
import { logger } from '../log';
import { DEFAULT_TRUST_DOMAIN } from '../mesh/workload-identity';
import { stopOnSignal } from '../runtime/stop-on-signal';
import { LatestValuePublisher } from '../util/latest-value-publisher';
import { parseFlags } from './args';

const HELP = `usage: nodemesh identity serve --state-dir DIR (--source DIR | --kube) [flags]
       nodemesh identity token --state-dir DIR --node NAME [--audience A] [--out FILE]
       nodemesh identity rotate-root --state-dir DIR [--activate | --retire]

The mesh's CA: signs workload certificates (SPIFFE IDs spiffe://TD/ns/NS/sa/SA) for agents,
only for pods that run on the agent's own node.
serve:
  --state-dir DIR          the CA's key files (tls.crt, tls.key, ca.crt; a kubernetes.io/tls
                           Secret mounted there works); generated there when empty
  --listen ADDR            unix:PATH or HOST:PORT (default 127.0.0.1:15012)
  --trust-domain TD        default cluster.local
  --workload-lifetime D    certificate lifetime, e.g. 24h (default), 2m (at least 1m)
  --source DIR             local mode (simulator, --source agents): pods from this
                           configuration, agents with tokens from \`identity token\`
  --kube                   cluster mode: agents by TokenReview (audience nodemesh-ca), pods
                           from the API server (--kubeconfig, else in-cluster)
  --agent-service-account NS/NAME[,..]  cluster mode: the agents' service accounts
  --ca-secret NS/NAME      cluster mode: the key lives in this kubernetes.io/tls Secret,
                           generated and created by the first CA that starts
  --publish-bundle NS/NAME cluster mode: keep the trust bundle (ca.crt) in this ConfigMap,
                           which the agents mount
  --publish-bundle-all NAME cluster mode: keep it in a ConfigMap of this name in every
                           namespace, for the sidecars injected there (as istio-ca-root-cert)
  --serving-name NAME      the DNS name in the CA's certificate (default nodemesh-identity)
token (local mode): prints (or writes) an agent token for a node, signed with the state
  directory's token key; --audience other than nodemesh-ca makes one the CA refuses.
rotate-root: 1. (no flag) a new root joins the trust bundle, the old one still signs;
  2. --activate: the new root signs; 3. --retire: the old root leaves the bundle.`;

export async function identityCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === 'help') {
    console.log(HELP);
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'serve': return serve(rest);
    case 'token': return token(rest);
    case 'rotate-root': return rotate(rest);
    default:
      throw new NodemeshError('ERR_NM_USAGE', `nodemesh identity: unknown subcommand '${sub}'`, { hint: 'serve, token or rotate-root; run `nodemesh identity --help`' });
  }
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseFlags('identity serve', argv, {
    'state-dir': { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:15012' },
    'trust-domain': { type: 'string', default: DEFAULT_TRUST_DOMAIN },
    'workload-lifetime': { type: 'string', default: '24h' },
    source: { type: 'string' },
    kube: { type: 'boolean', default: false },
    kubeconfig: { type: 'string' },
    'agent-service-account': { type: 'string', default: 'nodemesh-system/nodemesh-agent' },
    'serving-name': { type: 'string', default: DEFAULT_CA_SERVER_NAME },
    'ca-secret': { type: 'string' },
    'publish-bundle': { type: 'string' },
    'publish-bundle-all': { type: 'string' },
  });
  const stateDir = resolve(required(values['state-dir'], '--state-dir'));
  const trustDomain = checkTrustDomain(values['trust-domain']!);
  const lifetime = parseDuration(values['workload-lifetime']!);
  if (lifetime === undefined || lifetime < 60_000) throw new NodemeshError('ERR_NM_USAGE', `--workload-lifetime must be a duration of at least 1m (e.g. 24h, 2m), got '${values['workload-lifetime']}'`);
  if (Boolean(values.source) === values.kube) throw new NodemeshError('ERR_NM_USAGE', 'nodemesh identity serve needs one of --source DIR (local mode) or --kube (cluster mode)');
  if (!values.kube && (values['ca-secret'] || values['publish-bundle'] || values['publish-bundle-all'])) throw new NodemeshError('ERR_NM_USAGE', '--ca-secret, --publish-bundle and --publish-bundle-all are for cluster mode (--kube)');
  const log = logger('identity');
  let authenticator: AgentAuthenticator;
  let pods: PodRegistry;
  let onTrustBundle: ((pem: string) => void) | undefined;
  let stopPublishing = (): void => undefined;
  if (values.kube) {
    const [{ loadKubeConfig }, { TokenReviewAuthenticator, ApiPodRegistry }, caSecret, { TrustBundleDistributor }] = await Promise.all([
      import('../kube/kube-source'),
      import('../kube/token-review-authenticator'),
      import('../kube/ca-secret'),
      import('../kube/bundle-distributor'),
    ]);
    const kubeConfig = loadKubeConfig(values.kubeconfig);
    if (values['ca-secret']) {
      const ref = caSecret.parseObjectRef(values['ca-secret'], '--ca-secret');
      log.info({ secret: values['ca-secret'], result: await caSecret.syncCaSecret(kubeConfig, ref, stateDir, trustDomain, log) }, 'CA key from its Secret');
    }
    if (values['publish-bundle']) {
      const ref = caSecret.parseObjectRef(values['publish-bundle'], '--publish-bundle');
      const publisher = new LatestValuePublisher<string>(
        (pem) => caSecret.publishTrustBundle(kubeConfig, ref, pem),
        (err, retryMs) => log.error({ configMap: values['publish-bundle'], err: describeError(err), retryMs }, 'trust bundle not published; retrying'),
      );
      onTrustBundle = (pem) => publisher.publish(pem);
      stopPublishing = () => publisher.stop();
    }
    const everywhere = values['publish-bundle-all'];
    if (everywhere) {
      if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(everywhere)) throw new NodemeshError('ERR_NM_USAGE', `--publish-bundle-all takes a ConfigMap name, got '${everywhere}'`);
      const distributor = new TrustBundleDistributor(kubeConfig, everywhere, log.child({ part: 'bundle-distributor' }));
      distributor.start();
      const before = onTrustBundle;
      const stopBefore = stopPublishing;
      onTrustBundle = (pem) => { before?.(pem); distributor.publish(pem); };
      stopPublishing = () => { stopBefore(); void distributor.stop(); };
    }
    const accounts = values['agent-service-account']!.split(',').map((a) => {
      const [ns, name] = a.trim().split('/');
      if (!ns || !name) throw new NodemeshError('ERR_NM_USAGE', `--agent-service-account takes NAMESPACE/NAME, got '${a}'`);
      return `system:serviceaccount:${ns}:${name}`;
    });
    authenticator = new TokenReviewAuthenticator(kubeConfig, accounts);
    pods = new ApiPodRegistry(kubeConfig);
  } else {
    const key = tokenKey(stateDir);
    authenticator = new LocalTokenAuthenticator(() => key);
    pods = directoryPods(resolve(values.source!));
  }
  if (!readCaFiles(stateDir)) {
    await generateCaFiles(stateDir, trustDomain);
    log.info({ stateDir }, 'no CA key material: generated a root');
  }
  const server = new CaServer({ stateDir, trustDomain, workloadLifetimeMs: lifetime, authenticator, pods, servingNames: [values['serving-name']!, 'localhost'], log, ...(onTrustBundle ? { onTrustBundle } : {}) });
  const listen = values.listen!;
  if (listen.startsWith('unix:')) await server.listen({ path: listen.slice(5) });
  else {
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) throw new NodemeshError('ERR_NM_USAGE', `--listen takes unix:PATH or HOST:PORT, got '${listen}'`);
    await server.listen({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
  }
  log.info({ listen, trustDomain, mode: values.kube ? 'kube' : 'local', lifetimeMs: lifetime }, 'CA ready');
  return stopOnSignal({ log, drainMs: 0, marginMs: () => 5000, stopping: 'stopping the CA', stop: () => { stopPublishing(); return server.close(); } });
}

/** Local mode: the pods of the configuration directory (read again at each request: the files are the truth). */
function directoryPods(dir: string): PodRegistry {
  const source = new DirectorySource(dir, { kinds: coreKinds() });
  return {
    async get(namespace, name) {
      const { pods } = await source.load();
      const pod = pods.find((p) => p.namespace === namespace && p.name === name);
      return pod ? { namespace, name, nodeName: pod.nodeName || undefined, serviceAccount: pod.serviceAccount || 'default', terminated: false } : undefined;
    },
  };
}

async function token(argv: string[]): Promise<number> {
  const { values } = parseFlags('identity token', argv, {
    'state-dir': { type: 'string' },
    node: { type: 'string' },
    audience: { type: 'string' },
    out: { type: 'string' },
  });
  const key = tokenKey(resolve(required(values['state-dir'], '--state-dir')));
  const jwt = mintLocalToken(key, { node: required(values.node, '--node'), ...(values.audience ? { audience: values.audience } : {}) });
  if (values.out) writeFileSync(values.out, `${jwt}\n`, { mode: 0o600 });
  else console.log(jwt);
  return 0;
}

async function rotate(argv: string[]): Promise<number> {
  const { values } = parseFlags('identity rotate-root', argv, {
    'state-dir': { type: 'string' },
    activate: { type: 'boolean', default: false },
    retire: { type: 'boolean', default: false },
    'trust-domain': { type: 'string', default: DEFAULT_TRUST_DOMAIN },
  });
  if (values.activate && values.retire) throw new NodemeshError('ERR_NM_USAGE', '--activate and --retire are separate steps');
  const step = values.activate ? 'activate' : values.retire ? 'retire' : 'stage';
  console.log(await rotateRoot(resolve(required(values['state-dir'], '--state-dir')), step, checkTrustDomain(values['trust-domain']!)));
  return 0;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new NodemeshError('ERR_NM_USAGE', `nodemesh identity needs ${flag}`, { hint: 'run `nodemesh identity --help`' });
  return value;
}
