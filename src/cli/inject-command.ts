import { readFileSync } from 'node:fs';
import { NodemeshError, hasCode } from '../errors';
import { logger } from '../log';
import { injectYaml, type InjectOptions } from '../sidecar/inject';
import { startWebhookServer } from '../sidecar/webhook';
import { parseFlags, parsePort } from './args';

/** The flags that give injected proxies the mesh's CA (both commands take them). */
const IDENTITY_INJECT_HELP = `  --ca-address ADDR        the mesh's CA (https://HOST:PORT): injected proxies get their
                           pod's certificate (with the pod's own projected token) and talk
                           mTLS; without it they talk plaintext
  --ca-server-name NAME    the DNS name in the CA's certificate (default nodemesh-identity)
  --ca-bundle-configmap N  the trust bundle's ConfigMap in each namespace (default
                           nodemesh-ca-root: what \`identity serve --publish-bundle-all\` writes)
  --trust-domain TD, --mesh-root-namespace NS   passed to the proxies (as for the agent)`;

const INJECT_HELP = `usage: nodemesh inject -f FILE|- --image IMAGE [flags] > injected.yaml

Adds the nodemesh sidecar to the workloads of Kubernetes manifests, like
\`istioctl kube-inject\`: Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
CronJobs, and Lists of them (multi-document YAML or JSON in, YAML out). Each pod gets
the init container nodemesh-init (iptables rules), the container nodemesh-proxy (uid
1337) and the annotation nodemesh.dev/mode: sidecar. Injecting twice gives the same
output. Pods annotated nodemesh.dev/mode: off, hostNetwork pods and other objects pass
through unchanged and are listed on stderr.
  -f, --filename FILE      the manifests ('-': standard input)
  --image IMAGE            the nodemesh image (default nodemesh/agent:0.1.0)
  --image-pull-policy P    IfNotPresent (default), Always or Never
  --log-level LEVEL        the containers' NODEMESH_LOG_LEVEL (default info)
  --quiet                  do not list skipped objects
${IDENTITY_INJECT_HELP}`;

const WEBHOOK_HELP = `usage: nodemesh webhook --tls-cert FILE --tls-key FILE [--port 9443] [--image IMAGE]

Serves the sidecar injector as a mutating admission webhook: AdmissionReview v1 on POST
/inject (HTTPS), answered with a JSON Patch doing what \`nodemesh inject\` does; GET
/healthz for probes. Every pod is admitted: one that should not be injected, or that
cannot be, is admitted unchanged. The certificate files are re-read when they change
(cert-manager renews them in place).
  --tls-cert FILE, --tls-key FILE   PEM certificate (chain) and key
  --port N                 HTTPS port (default 9443)
  --image IMAGE            the nodemesh image for injected containers (default nodemesh/agent:0.1.0)
  --image-pull-policy P    IfNotPresent (default), Always or Never
  --log-level LEVEL        the injected containers' NODEMESH_LOG_LEVEL (default info)
${IDENTITY_INJECT_HELP}`;

const DEFAULT_IMAGE = 'nodemesh/agent:0.1.0';
const DEFAULT_BUNDLE_CONFIGMAP = 'nodemesh-ca-root';

/** The flags both commands take for what they inject. */
const INJECT_FLAGS = {
  image: { type: 'string' },
  'image-pull-policy': { type: 'string' },
  'log-level': { type: 'string' },
  'ca-address': { type: 'string' },
  'ca-server-name': { type: 'string' },
  'ca-bundle-configmap': { type: 'string' },
  'trust-domain': { type: 'string' },
  'mesh-root-namespace': { type: 'string' },
} as const;

type InjectFlagValues = { image?: string; 'image-pull-policy'?: string; 'log-level'?: string; 'ca-address'?: string; 'ca-server-name'?: string; 'ca-bundle-configmap'?: string; 'trust-domain'?: string; 'mesh-root-namespace'?: string };

function injectOptions(values: InjectFlagValues): InjectOptions {
  const policy = values['image-pull-policy'] ?? 'IfNotPresent';
  if (policy !== 'IfNotPresent' && policy !== 'Always' && policy !== 'Never') {
    throw new NodemeshError('ERR_NM_USAGE', `--image-pull-policy must be IfNotPresent, Always or Never, not '${policy}'`);
  }
  const image = values.image ?? DEFAULT_IMAGE;
  if (!image.trim()) throw new NodemeshError('ERR_NM_USAGE', '--image must not be empty');
  const options: InjectOptions = { image, imagePullPolicy: policy, logLevel: values['log-level'] ?? 'info' };
  if (values['ca-address']) {
    if (!/^https:\/\/[^/]+$/.test(values['ca-address'])) throw new NodemeshError('ERR_NM_USAGE', `--ca-address must be https://HOST:PORT (the CA's Service), got '${values['ca-address']}'`);
    options.identity = {
      caAddress: values['ca-address'],
      bundleConfigMap: values['ca-bundle-configmap'] ?? DEFAULT_BUNDLE_CONFIGMAP,
      ...(values['ca-server-name'] && { caServerName: values['ca-server-name'] }),
      ...(values['trust-domain'] && { trustDomain: values['trust-domain'] }),
      ...(values['mesh-root-namespace'] && { meshRootNamespace: values['mesh-root-namespace'] }),
    };
  } else {
    for (const flag of ['ca-server-name', 'ca-bundle-configmap', 'trust-domain', 'mesh-root-namespace'] as const) {
      if (values[flag] !== undefined) throw new NodemeshError('ERR_NM_USAGE', `--${flag} is for injected proxies with the mesh's CA: give --ca-address too`);
    }
  }
  return options;
}

export interface InjectIo {
  readInput: (file: string) => string;
  out: (text: string) => void;
  err: (text: string) => void;
}

const defaultIo: InjectIo = {
  readInput: (file) => readFileSync(file === '-' ? 0 : file, 'utf8'),
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export async function injectCommand(argv: string[], io: InjectIo = defaultIo): Promise<number> {
  const { values } = parseFlags('inject', argv, {
    filename: { type: 'string', short: 'f' },
    ...INJECT_FLAGS,
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    io.out(`${INJECT_HELP}\n`);
    return 0;
  }
  if (!values.filename) throw new NodemeshError('ERR_NM_USAGE', 'nodemesh inject needs -f FILE (or -f - for standard input)', { hint: 'run `nodemesh inject --help`' });
  const options = injectOptions(values);
  let text: string;
  try {
    text = io.readInput(values.filename);
  } catch (err) {
    if (hasCode(err, 'ENOENT')) throw new NodemeshError('ERR_NM_USAGE', `${values.filename}: no such file`);
    throw err;
  }
  const result = injectYaml(text, options, values.filename === '-' ? '<stdin>' : values.filename);
  io.out(result.yaml);
  if (!values.quiet) {
    for (const s of result.skipped) io.err(`nodemesh inject: skipped ${s.object}: ${s.reason}\n`);
  }
  return 0;
}

export async function webhookCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('webhook', argv, {
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    port: { type: 'string', default: '9443' },
    ...INJECT_FLAGS,
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(WEBHOOK_HELP);
    return 0;
  }
  if (!values['tls-cert'] || !values['tls-key']) {
    throw new NodemeshError('ERR_NM_USAGE', 'nodemesh webhook needs --tls-cert FILE and --tls-key FILE (the API server only calls webhooks over HTTPS)');
  }
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  const options = injectOptions(values);
  const log = logger('webhook');
  let cert = readFileSync(certFile);
  let key = readFileSync(keyFile);
  const port = parsePort('--port', values.port)!;
  const server = await startWebhookServer({ ...options, cert, key, port });
  log.info({ port, image: options.image }, 'sidecar injector listening on /inject');

  // Certificate rotation: re-read the files and swap the TLS context when they change.
  const reload = setInterval(() => {
    try {
      const newCert = readFileSync(certFile);
      const newKey = readFileSync(keyFile);
      if (newCert.equals(cert) && newKey.equals(key)) return;
      server.setSecureContext({ cert: newCert, key: newKey });
      cert = newCert;
      key = newKey;
      log.info('TLS certificate reloaded');
    } catch (err) {
      log.warn({ err: String(err) }, 'could not reload the TLS certificate; keeping the current one');
    }
  }, 30_000);
  reload.unref();

  return new Promise<number>((done) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      clearInterval(reload);
      server.close(() => done(0));
      server.closeAllConnections();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
