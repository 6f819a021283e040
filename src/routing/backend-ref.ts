import { FieldError } from '../config/validation';
import type { Context } from './parse-context';
import { read, type Obj } from './route-fields';
import type { RefProblem } from './route-status';
import type { BackendTarget } from './types';

/**
 * A backendRef / mirror backendRef to a Service, with what makes it unusable: a missing
 * Service or port, or a backend that is not a core Service, is a warning and an
 * `unresolved` backend (the route still applies; requests sent to it get a 500), and
 * ResolvedRefs=False in the route's status.
 *
 * A backend in another namespace needs no ReferenceGrant: mesh routes augment Services
 * that callers can already reach, so GEP-1294 lets them send to any namespace, and
 * nodemesh exposes nothing a caller could not reach without the route.
 */
export function readBackendTarget(ref: Obj, path: string, ctx: Context): BackendTarget {
  const group = read.string(ref.group, `${path}.group`) ?? '';
  const kind = read.string(ref.kind, `${path}.kind`) ?? 'Service';
  const name = read.requiredString(ref.name, `${path}.name`, 'the Service name');
  const namespace = read.string(ref.namespace, `${path}.namespace`) || ctx.namespace;
  const port = read.integer(ref.port, `${path}.port`, 1, 65535, 'a Service port');
  const target: BackendTarget = { serviceKey: `${namespace}/${name}`, port: port ?? 0 };
  let problem: RefProblem | undefined;
  if ((group !== '' && group !== 'core') || kind !== 'Service') {
    problem = {
      reason: 'InvalidKind',
      message: `backend ${group === '' ? '' : `${group}/`}${kind} ${target.serviceKey} is not a core Service (group "", kind Service), the only kind nodemesh routes to; point the backendRef at a Service`,
    };
  } else if (port === undefined) {
    // The API server's CEL rule refuses it too (a rejection, like every such rule).
    throw new FieldError(`${path}.port`, 'required for a Service backend (the Service port to send to)');
  } else {
    const service = ctx.services.get(target.serviceKey);
    if (!service) problem = { reason: 'BackendNotFound', message: `Service ${target.serviceKey} does not exist (BackendNotFound)` };
    else if (!service.ports.some((p) => p.port === port)) problem = { reason: 'BackendNotFound', message: `Service ${target.serviceKey} has no port ${port} (BackendNotFound)` };
  }
  if (problem !== undefined) {
    target.unresolved = problem.message;
    ctx.refProblems.push(problem);
    ctx.warnings.push({ path, reason: `${problem.message}; requests sent to this backend get a 500 until it resolves` });
  }
  return target;
}
