import type { EndpointSliceEndpoint, EndpointSliceInfo, EndpointSlicePort } from '../mesh/model';
import { DNS1123_SUBDOMAIN, ip, metadata, name, portNumber, protocol, read } from './core-fields';
import type { CoreKind } from './core-kind';
import { ipFamily } from './ip';
import type { K8sObject } from './k8s-yaml';
import { FieldError, isRecord, objectLabel } from './validation';

export const ENDPOINT_SLICE_API_VERSION = 'discovery.k8s.io/v1';
/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'] as const;

/**
 * A discovery.k8s.io/v1 EndpointSlice. Conditions follow the API's defaults: ready absent
 * means true, serving absent means the same as ready, terminating absent means false.
 */
export function convertEndpointSlice(object: K8sObject): EndpointSliceInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1123_SUBDOMAIN, 253, 'EndpointSlice name');
  const addressType = read.requiredString(object.addressType, 'addressType');
  if (!(ADDRESS_TYPES as readonly string[]).includes(addressType)) {
    throw new FieldError('addressType', `"${addressType}" is not an address type (use IPv4, IPv6 or FQDN)`);
  }
  const family = addressType === 'IPv4' ? 4 : addressType === 'IPv6' ? 6 : undefined;
  const ports: EndpointSlicePort[] = read.list(object.ports, 'ports').map((raw, i) => {
    const path = `ports[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${read.describe(raw)}`);
    const port: EndpointSlicePort = {
      name: read.string(raw.name, `${path}.name`) ?? '',
      port: raw.port === undefined || raw.port === null ? undefined : portNumber(raw.port, `${path}.port`),
      protocol: protocol(raw.protocol, `${path}.protocol`),
    };
    const appProtocol = read.string(raw.appProtocol, `${path}.appProtocol`);
    if (appProtocol !== undefined) port.appProtocol = appProtocol;
    return port;
  });
  const endpoints: EndpointSliceEndpoint[] = read.list(object.endpoints, 'endpoints').map((raw, i) => {
    const path = `endpoints[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${read.describe(raw)}`);
    const addresses = read.list(raw.addresses, `${path}.addresses`);
    if (addresses.length === 0) throw new FieldError(`${path}.addresses`, 'required (at least one address)');
    let address: string;
    if (family === undefined) {
      address = read.requiredString(addresses[0], `${path}.addresses[0]`);
    } else {
      address = ip(addresses[0], `${path}.addresses[0]`);
      if (ipFamily(address) !== family) throw new FieldError(`${path}.addresses[0]`, `${address} is not an ${addressType} address (the slice's addressType)`);
    }
    const conditions = read.record(raw.conditions, `${path}.conditions`) ?? {};
    const ready = read.boolean(conditions.ready, `${path}.conditions.ready`) ?? true;
    const endpoint: EndpointSliceEndpoint = {
      address,
      ready,
      serving: read.boolean(conditions.serving, `${path}.conditions.serving`) ?? ready,
      terminating: read.boolean(conditions.terminating, `${path}.conditions.terminating`) ?? false,
    };
    const nodeName = read.string(raw.nodeName, `${path}.nodeName`);
    if (nodeName !== undefined && nodeName !== '') endpoint.nodeName = nodeName;
    const zone = read.string(raw.zone, `${path}.zone`);
    if (zone !== undefined && zone !== '') endpoint.zone = zone;
    const targetRef = read.record(raw.targetRef, `${path}.targetRef`);
    if (targetRef && targetRef.kind === 'Pod') {
      const podName = read.requiredString(targetRef.name, `${path}.targetRef.name`);
      const podNamespace = read.string(targetRef.namespace, `${path}.targetRef.namespace`) || meta.namespace!;
      endpoint.podKey = `${podNamespace}/${podName}`;
    }
    return endpoint;
  });
  const serviceName = meta.labels[SERVICE_NAME_LABEL];
  return {
    name: meta.name,
    namespace: meta.namespace!,
    serviceName: serviceName === undefined || serviceName === '' ? undefined : serviceName,
    addressType: addressType as EndpointSliceInfo['addressType'],
    ports,
    endpoints,
  };
}

/** Only discovery.k8s.io/v1 EndpointSlices are read; others of that kind name are kept as they are. */
export const ENDPOINT_SLICE_CONVERTER: CoreKind<'endpointSlices'> = {
  kind: 'EndpointSlice',
  apiVersion: ENDPOINT_SLICE_API_VERSION,
  collection: 'endpointSlices',
  convert: convertEndpointSlice,
  key: (slice) => `discovery.k8s.io:${objectLabel('EndpointSlice', slice.namespace, slice.name)}`,
};
