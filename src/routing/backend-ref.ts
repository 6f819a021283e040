import { FieldError } from '../config/validation';
import type { Context } from './parse-context';
import { granted } from './reference-grant';
import { read, type Obj } from './route-fields';
import type { BackendTarget } from './types';

/**
 * A backendRef / mirror backendRef to a Service, with what makes it unusable: a missing
 * Service or port, or a cross-namespace reference no ReferenceGrant allows, is a warning
 * and an `unresolved` backend (the route still applies), not a rejection.
 */
export function readBackendTarget(ref: Obj, path: string, ctx: Context): BackendTarget {
  const group = read.string(ref.group, `${path}.group`) ?? '';
  const kind = read.string(ref.kind, `${path}.kind`) ?? 'Service';
  if ((group !== '' && group !== 'core') || kind !== 'Service') {
    throw new FieldError(
      kind !== 'Service' ? `${path}.kind` : `${path}.group`,
      `nodemesh routes only to core Services (group "", kind Service), got ${group === '' ? '' : `group "${group}" `}kind "${kind}"; point the backendRef at a Service`,
    );
  }
  const name = read.requiredString(ref.name, `${path}.name`, 'the Service name');
  const namespace = read.string(ref.namespace, `${path}.namespace`) || ctx.namespace;
  const port = read.integer(ref.port, `${path}.port`, 1, 65535, 'a Service port');
  if (port === undefined) throw new FieldError(`${path}.port`, 'required for a Service backend (the Service port to send to)');
  const target: BackendTarget = { serviceKey: `${namespace}/${name}`, port };
  const service = ctx.services.get(target.serviceKey);
  let unresolved: string | undefined;
  if (namespace !== ctx.namespace && !granted(ctx.grants, ctx.kind, ctx.namespace, namespace, name)) {
    unresolved = `Service ${target.serviceKey} is in another namespace and no ReferenceGrant in ${namespace} allows ${ctx.kind}s from ${ctx.namespace} to reference it (RefNotPermitted)`;
  } else if (!service) {
    unresolved = `Service ${target.serviceKey} does not exist (BackendNotFound)`;
  } else if (!service.ports.some((p) => p.port === port)) {
    unresolved = `Service ${target.serviceKey} has no port ${port} (BackendNotFound)`;
  }
  if (unresolved !== undefined) {
    target.unresolved = unresolved;
    ctx.warnings.push({ path, reason: `${unresolved}; requests sent to this backend get a 500 until it resolves` });
  }
  return target;
}
