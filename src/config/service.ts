import type { ServiceInfo, ServicePort } from '../mesh/model';
import { DNS1035_LABEL, DNS1123_LABEL, IANA_SVC_NAME, ip, metadata, name, portNumber, protocol, read, stringMap } from './core-fields';
import type { CoreKind } from './core-kind';
import { ipFamily } from './ip';
import type { K8sObject } from './k8s-yaml';
import { FieldError, isRecord, objectLabel } from './validation';

/** A v1 Service: cluster IPs (which the embedded source must be given), ports, selector. */
export function convertService(object: K8sObject): ServiceInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1035_LABEL, 63, 'service name (it must start with a letter)');
  const spec = read.record(object.spec, 'spec');
  if (!spec) throw new FieldError('spec', 'required');
  const type = read.string(spec.type, 'spec.type') ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type)) {
    throw new FieldError('spec.type', `"${type}" is not a Service type`);
  }

  const clusterIP = read.string(spec.clusterIP, 'spec.clusterIP');
  const listed = read.list(spec.clusterIPs, 'spec.clusterIPs');
  let clusterIPs: string[] = [];
  const headless = clusterIP === 'None' || listed[0] === 'None';
  if (!headless && type !== 'ExternalName') {
    if (clusterIP !== undefined && clusterIP !== '') clusterIPs.push(ip(clusterIP, 'spec.clusterIP'));
    listed.forEach((entry, i) => {
      const address = ip(entry, `spec.clusterIPs[${i}]`);
      if (i === 0 && clusterIPs.length > 0 && clusterIPs[0] !== address) {
        throw new FieldError('spec.clusterIPs[0]', `must equal spec.clusterIP (${clusterIPs[0]}), got ${address}`);
      }
      if (clusterIPs.includes(address)) return;
      if (clusterIPs.some((other) => ipFamily(other) === ipFamily(address))) {
        throw new FieldError(`spec.clusterIPs[${i}]`, `a Service has at most one cluster IP per IP family; ${address} repeats IPv${ipFamily(address)}`);
      }
      clusterIPs.push(address);
    });
    if (clusterIPs.length === 0) {
      throw new FieldError(
        'spec.clusterIP',
        "required in the embedded source (there is no API server to allocate one): set an address, or 'None' for a headless Service",
      );
    }
  } else {
    clusterIPs = [];
  }

  const rawPorts = read.list(spec.ports, 'spec.ports');
  const ports: ServicePort[] = rawPorts.map((raw, i) => {
    const path = `spec.ports[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${read.describe(raw)}`);
    const portName = read.string(raw.name, `${path}.name`);
    if (portName !== undefined && portName !== '' && (portName.length > 63 || !DNS1123_LABEL.test(portName))) {
      throw new FieldError(`${path}.name`, `"${portName}" is not a valid port name (lower-case letters, digits and '-')`);
    }
    if ((portName === undefined || portName === '') && rawPorts.length > 1) {
      throw new FieldError(`${path}.name`, 'required when a Service has more than one port');
    }
    const port = portNumber(raw.port, `${path}.port`);
    let targetPort: number | string = port;
    if (raw.targetPort !== undefined && raw.targetPort !== null) {
      if (typeof raw.targetPort === 'string') {
        if (/^[0-9]+$/.test(raw.targetPort)) targetPort = portNumber(Number(raw.targetPort), `${path}.targetPort`);
        else if (raw.targetPort.length > 15 || !IANA_SVC_NAME.test(raw.targetPort)) {
          throw new FieldError(`${path}.targetPort`, `"${raw.targetPort}" is neither a port number nor a container port name`);
        } else targetPort = raw.targetPort;
      } else targetPort = portNumber(raw.targetPort, `${path}.targetPort`);
    }
    const entry: ServicePort = { port, targetPort, protocol: protocol(raw.protocol, `${path}.protocol`) };
    if (portName !== undefined && portName !== '') entry.name = portName;
    const appProtocol = read.string(raw.appProtocol, `${path}.appProtocol`);
    if (appProtocol !== undefined) entry.appProtocol = appProtocol;
    return entry;
  });
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    if (p.name === undefined) return;
    if (seen.has(p.name)) throw new FieldError(`spec.ports[${i}].name`, `"${p.name}" is used by another port of this Service`);
    seen.add(p.name);
  });

  const selector = stringMap(spec.selector, 'spec.selector');
  return {
    name: meta.name,
    namespace: meta.namespace!,
    clusterIPs,
    ports,
    // Kubernetes treats an empty selector like none: endpoints are managed elsewhere.
    selector: Object.keys(selector).length > 0 ? selector : undefined,
  };
}

export const SERVICE_CONVERTER: CoreKind<'services'> = {
  kind: 'Service',
  collection: 'services',
  convert: convertService,
  key: (svc) => objectLabel('Service', svc.namespace, svc.name),
};
