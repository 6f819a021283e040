'use strict';
// The chart's pre-delete hook: sets data.uninstalling = "true" on the agents' lifecycle
// ConfigMap, then waits so that every agent's watch has seen it before Helm deletes the
// DaemonSet (the agents then release their pods and pins on SIGTERM). Runs in the agent
// image with Node's standard library only; talks to the API server as the hook's
// ServiceAccount. Exit 0: marked, or nothing to mark (the ConfigMap is gone). Exit 1: the
// mark failed, and Helm stops the uninstall, saying so.
//
// Environment: NODEMESH_NAMESPACE, NODEMESH_CONFIGMAP, NODEMESH_GRACE_SECONDS; the
// in-cluster KUBERNETES_SERVICE_HOST/PORT; NODEMESH_SA_DIR (default: the mounted token).
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');

const saDir = process.env.NODEMESH_SA_DIR || '/var/run/secrets/kubernetes.io/serviceaccount';
const namespace = process.env.NODEMESH_NAMESPACE;
const name = process.env.NODEMESH_CONFIGMAP;
const graceSeconds = Number(process.env.NODEMESH_GRACE_SECONDS || '5');
const host = process.env.KUBERNETES_SERVICE_HOST;
const port = Number(process.env.KUBERNETES_SERVICE_PORT || '443');

function fail(message) {
  console.error(`nodemesh uninstall hook: ${message}`);
  process.exit(1);
}

if (!namespace || !name) fail('NODEMESH_NAMESPACE and NODEMESH_CONFIGMAP must be set');
if (!host) fail('KUBERNETES_SERVICE_HOST is not set: not running in a pod?');
if (!Number.isFinite(graceSeconds) || graceSeconds < 0) fail(`NODEMESH_GRACE_SECONDS '${process.env.NODEMESH_GRACE_SECONDS}' is not a number of seconds`);

const body = JSON.stringify({ data: { uninstalling: 'true' } });
const request = https.request(
  {
    host,
    port,
    method: 'PATCH',
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`,
    ca: fs.readFileSync(path.join(saDir, 'ca.crt')),
    headers: {
      authorization: `Bearer ${fs.readFileSync(path.join(saDir, 'token'), 'utf8').trim()}`,
      'content-type': 'application/merge-patch+json',
      'content-length': Buffer.byteLength(body),
    },
    timeout: 15000,
  },
  (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => { text += chunk; });
    res.on('end', () => {
      if (res.statusCode === 404) {
        console.log(`nodemesh uninstall hook: ConfigMap ${namespace}/${name} not found; nothing to mark`);
        process.exit(0);
      }
      if (res.statusCode < 200 || res.statusCode > 299) {
        fail(`PATCH ConfigMap ${namespace}/${name} answered ${res.statusCode}: ${text.slice(0, 500)}` +
          (res.statusCode === 403 ? ' (check the hook Role)' : ''));
      }
      console.log(`nodemesh uninstall hook: marked ${namespace}/${name} uninstalling=true; waiting ${graceSeconds}s for the agents to see it`);
      setTimeout(() => process.exit(0), graceSeconds * 1000);
    });
  },
);
request.on('timeout', () => request.destroy(new Error('no answer in 15s')));
request.on('error', (err) => fail(`PATCH ConfigMap ${namespace}/${name} failed: ${err.message} (is the API server reachable from pods?)`));
request.end(body);
